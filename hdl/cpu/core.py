"""The eBPF CPU: its units wired into a four-stage pipeline, and the hazard control.

::

    F/B: FrontEnd    pc -> program memory port A -> IR      (port B: the target D names)
    D:   decode (hdl/decode.py), RegisterFile reads (+ W bypass), MemoryUnit's address,
         branch target                                       -> payload ``x`` (dx_layout)
    X:   ALU, Compare, Multiplier / SerialMultiplier, Divider, MemoryUnit (window check,
         atomics), CallFrames, helper port; forwarding of X's last result at X's input
    W:   ld_q (the bus's data, registered) extended by the MemoryUnit, written back

X finishes an instruction (``fin``) or holds it; D stalls on ``d_stall`` (a load in X whose
register D reads, or that an instruction reading registers directly in X needs; a pending
register copy) and its slot is killed by a redirect (a taken branch, call or exit) or when it
is lddw's second slot. Traps are precise: the trapping instruction is not counted, nothing
after it runs, its pc is reported. docs/cpu.md has the timing of each class.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga import isa, memmap, traps
from bpfpga.hdl.bus import DataBusSignature, HelperSignature
from bpfpga.hdl.decode import K, decoder
from bpfpga.hdl.cpu.alu import ALU
from bpfpga.hdl.cpu.compare import Compare
from bpfpga.hdl.cpu.divider import Divider
from bpfpga.hdl.cpu.frames import CallFrames
from bpfpga.hdl.cpu.frontend import FrontEnd
from bpfpga.hdl.cpu.memory_unit import MemoryUnit
from bpfpga.hdl.cpu.multiplier import Multiplier
from bpfpga.hdl.cpu.regfile import RegisterFile
from bpfpga.hdl.cpu.serial_multiplier import SerialMultiplier
from bpfpga.hdl.cpu.stages import W_LOAD, Cond, dx_layout


def _base_is_src(opc: int) -> bool:
    # classes LDX (1) and LD with mode IND (0x40) take src, ST/STX/atomics, ALU and JMP
    # classes (bit 1 or 2 set) take dst: opcode bits, not the decoded kind (several LUT
    # levels deeper)
    return not opc & 4 and not opc & 2 and bool(opc & 1 or opc & 0x40)


def _imm_operand(spec: isa.InsnSpec) -> bool:
    # what use_imm below computes from the decoded kind
    return (spec.src_mode != isa.BPF_X and spec.kind in (isa.ALU, isa.JCOND)) \
        or spec.kind == isa.ST


# the fast forms of the ISA's operand facts must agree with bpfpga/isa.py: operand a is the
# base register of a memory access, else dst; operand b the immediate where the ISA says so
for _s in isa.SPECS:
    _o = _s.operands
    assert _base_is_src(_s.opcode) == (_o.base == "src"), _s.name
    assert _imm_operand(_s) == _o.imm, _s.name


class CPU(wiring.Component):
    """One eBPF core.

    Control: ``start`` (a pulse while ``busy`` is low) runs the program from pc 0 with
    r1 = ``r1_init``, r2 = ``r2_init``, r10 = frame_top(0), the others 0. ``done`` pulses when
    it ends; ``r0``, ``trap`` (0 = exit), ``trap_pc``, ``insns`` (executed, the trapping one not
    counted) and ``cycles`` (start to done) then hold until the next start.
    Program memory: ``pm_we``/``pm_addr``/``pm_data`` write one 64-bit slot; ``prog_len`` is
    the number of valid slots (fetching beyond it traps).
    Windows: the packet window is [``pkt_lo``, ``pkt_hi``); ctx is [CTX_BASE, +``ctx_len``)
    read-only; map memory is [MAP_BASE, +``map_len``); the stack window is fixed.

    Options: ``target_port`` (a second program-memory read port: taken branches cost 2
    cycles instead of 3, for a second copy of the program memory's block RAM),
    ``frame_bram`` (the call frames' saved registers in block RAM instead of LUT RAM, same
    cycles), ``mul_serial`` (SerialMultiplier: one MULT18X18D, mul64 in 11 cycles).
    """

    def __init__(self, pm_depth: int = 4096, target_port: bool = True,
                 frame_bram: bool = False, mul_serial: bool = False):
        self.pm_depth = pm_depth
        self.mul_serial = mul_serial
        self.frame_bram = frame_bram
        self.target_port = target_port
        self.pw = (pm_depth - 1).bit_length()
        super().__init__({
            "start": In(1),
            "r1_init": In(64),
            "r2_init": In(64),
            "budget": In(32),
            "busy": Out(1),
            "done": Out(1),
            "r0": Out(64),
            "trap": Out(4),
            "trap_pc": Out(32),
            "insns": Out(32),
            "cycles": Out(32),
            "pm_we": In(1),
            "pm_addr": In(self.pw),
            "pm_data": In(64),
            "prog_len": In(self.pw + 1),
            "pkt_lo": In(32),
            "pkt_hi": In(32),
            "ctx_len": In(16),
            "map_len": In(29),
            "dbus": Out(DataBusSignature),
            "helper": Out(HelperSignature),
        })

    def elaborate(self, platform):
        m = Module()
        pw = self.pw

        m.submodules.fe = fe = FrontEnd(self.pm_depth, self.target_port)
        m.submodules.rf = rf = RegisterFile()
        m.submodules.frames = frames = CallFrames(pw, self.frame_bram)
        m.submodules.alu = alu = ALU()
        m.submodules.cmp = cmp = Compare()
        m.submodules.mul = mul = SerialMultiplier() if self.mul_serial else Multiplier()
        m.submodules.div = div = Divider()
        m.submodules.mem = mem = MemoryUnit()

        # ------------------------------------------------------------------ state
        running = Signal()
        init = Signal()         # start while idle
        count = Signal(32)
        cycles = Signal(32)
        trap_r = Signal(4)
        trap_pc_r = Signal(32)
        budget_hit = Signal()   # count == budget, kept as a flip-flop
        m.d.comb += [init.eq(self.start & ~running), self.busy.eq(running),
                     self.insns.eq(count), self.cycles.eq(cycles)]
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
        regs = rf.r
        m.d.comb += [fe.pm_we.eq(self.pm_we), fe.pm_addr.eq(self.pm_addr),
                     fe.pm_data.eq(self.pm_data), fe.init.eq(init), fe.running.eq(running),
                     rf.init.eq(init), rf.running.eq(running), rf.r1_init.eq(self.r1_init),
                     rf.r2_init.eq(self.r2_init), frames.init.eq(init)]

        # ------------------------------------------------------------------ W
        ld_q = Signal(64)
        m.d.sync += ld_q.eq(self.dbus.rdata)
        w_valid = Signal()
        w = Signal(W_LOAD)
        w_data = mem.w_data
        m.d.comb += [mem.ld_q.eq(ld_q), mem.w_load.eq(w),
                     rf.w_en.eq(w_valid), rf.w_idx.eq(w.idx), rf.w_data.eq(w_data),
                     self.r0.eq(Mux(w_valid & (w.idx == 0), w_data, regs[0]))]

        # ------------------------------------------------------------------ D
        insn, pc_ir, ir_valid = fe.ir, fe.pc_ir, fe.ir_valid
        dec = decoder(m, insn)
        d_dst, d_src, d_off, d_imm = insn[8:12], insn[12:16], insn[16:32], insn[32:64]
        d_trap = Signal(4)
        m.d.comb += d_trap.eq(Mux(pc_ir >= self.prog_len, traps.TRAP_PC, dec.trap))

        def dk(k):
            return dec.kind == K[k]

        opc = insn[0:8]
        ia = Signal(4)          # operand a: the base register of a memory access, else dst
        m.d.comb += ia.eq(Mux(~opc[2] & ~opc[1] & (opc[0] | opc[6]), d_src, d_dst))
        m.d.comb += [rf.a_idx.eq(ia), rf.b_idx.eq(d_src)]
        a_val = rf.a_data
        use_imm = ((~dec.srcx & (dk(isa.ALU) | dk(isa.JCOND))) | dk(isa.ST))
        b_val = Mux(use_imm, d_imm.as_signed(), rf.b_data)
        # branch and call targets, 34-bit signed so that any imm fits
        jimm = Mux((dk(isa.JA) & ~dec.is64) | dk(isa.CALL), d_imm.as_signed(), d_off.as_signed())
        d_target = Signal(signed(34))
        m.d.comb += d_target.eq(pc_ir + 1 + jimm)
        d_tbad = Signal()
        m.d.comb += d_tbad.eq((d_target < 0) | (d_target >= self.prog_len))
        ret_pc = frames.ret_pc
        m.d.comb += fe.b_addr.eq(Mux(dk(isa.EXIT), ret_pc, d_target[0:pw]))
        m.d.comb += [mem.d_base.eq(a_val), mem.d_off.eq(d_off), mem.d_size.eq(dec.size)]
        d_abs = dk(isa.LDABS) | dk(isa.LDIND)

        # ------------------------------------------------------------------ X
        x_valid = Signal()
        x = Signal(dx_layout(pw))
        xc = Signal(7)          # cycles spent in X by a multi-cycle instruction
        first = xc == 0
        last_wb = Signal(64)    # the last value X wrote: the forwarding source
        m_went = Signal()       # the access was issued (valid raised) already
        mem_bad = Signal()      # the window check failed at issue: trap (acted on a cycle later)
        at_phase = Signal()     # an atomic's write phase
        at_p1_first = Signal()

        def is_k(k):
            return x.kind == K[k]

        a = Signal(64)
        b = Signal(64)
        m.d.comb += [a.eq(Mux(x.fwd_a, last_wb, x.a)), b.eq(Mux(x.fwd_b, last_wb, x.b))]
        w64 = x.is64
        for u in (alu, cmp, mul, div):
            m.d.comb += [u.a.eq(a), u.b.eq(b), u.is64.eq(w64)]
        for u in (mul, div):
            m.d.comb += u.step.eq(xc)
        is_div = x.op == (isa.BPF_DIV >> 4)
        m.d.comb += [alu.op.eq(x.op), alu.size.eq(x.size), alu.swap.eq(x.swap),
                     cmp.op.eq(x.op), div.neg_a.eq(alu.neg_a), div.signed.eq(x.signed),
                     div.is_div.eq(is_div)]
        taken = cmp.taken
        divmod_op = is_k(isa.ALU) & (is_div | (x.op == (isa.BPF_MOD >> 4)))
        mul_op = is_k(isa.ALU) & (x.op == (isa.BPF_MUL >> 4))

        ldabs = is_k(isa.LDABS) | is_k(isa.LDIND)
        is_store = is_k(isa.ST) | is_k(isa.STX)
        is_load = is_k(isa.LDX) | is_k(isa.LDXSX)
        is_atomic = is_k(isa.ATOMIC)
        m.d.comb += [mem.x_addr.eq(x.mem), mem.a.eq(a), mem.b.eq(b), mem.off.eq(x.off),
                     mem.imm.eq(x.imm), mem.size.eq(x.size), mem.is_store.eq(is_store),
                     mem.is_atomic.eq(is_atomic), mem.is_ldind.eq(is_k(isa.LDIND)),
                     mem.is_ldabs.eq(ldabs), mem.r0.eq(regs[0]), mem.pkt_lo.eq(self.pkt_lo),
                     mem.pkt_hi.eq(self.pkt_hi), mem.ctx_len.eq(self.ctx_len),
                     mem.map_len.eq(self.map_len), mem.at_p1_first.eq(at_p1_first)]
        win_ok, at_old = mem.win_ok, mem.at_old
        issue = x.mem.rdy & ~m_went

        # ------------------------------------------------------------------ X control
        fin = Signal()          # X finishes its instruction this cycle (or holds none)
        stop = Signal()         # the program ends this cycle
        stop_trap = Signal(4)
        redirect = Signal()     # a call or exit: D is killed, the target goes to D
        kill_lddw = Signal()    # the second slot of lddw, now in D, is not an instruction
        count_it = Signal()
        to_w = Signal()         # a load finishes X: its data is written back in W
        wb_en = Signal()
        wb_idx = Signal(4)
        wb_data = Signal(64)
        push, pop = Signal(), Signal()

        dbus, hlp = self.dbus, self.helper
        m.d.comb += [
            dbus.addr.eq(x.mem.addr), dbus.size.eq(x.size), dbus.wdata.eq(mem.wdata),
            hlp.id.eq(Mux(is_k(isa.CALLX), a[0:32], x.imm)),
            hlp.arg1.eq(regs[1]), hlp.arg2.eq(regs[2]), hlp.arg3.eq(regs[3]),
            hlp.arg4.eq(regs[4]), hlp.arg5.eq(regs[5]),
            frames.push.eq(push), frames.pop.eq(pop), frames.push_pc.eq(x.pc + 1),
            frames.regs.eq(Cat(regs[6], regs[7], regs[8], regs[9])),
            rf.push.eq(push), rf.pop.eq(pop), rf.restore.eq(frames.saved),
        ]

        fin0, cnt0, kill0, stop0, x_wr = Signal(), Signal(), Signal(), Signal(), Signal()

        def trap(code):
            m.d.comb += [stop0.eq(1), stop_trap.eq(code)]

        def write(idx, val):
            m.d.comb += [x_wr.eq(1), wb_idx.eq(idx), wb_data.eq(val)]

        def done():
            m.d.comb += [fin0.eq(1), cnt0.eq(1)]

        def narrow(v):
            return Mux(w64, v, v[0:32])

        with m.If(~x_valid):
            m.d.comb += fin0.eq(1)
        with m.Elif(first & budget_hit):
            trap(traps.TRAP_BUDGET)
        with m.Elif(x.trap != 0):
            trap(x.trap)
        with m.Elif(is_k(isa.ALU) | is_k(isa.NEG)):
            with m.If(mul_op):
                with m.If(mul.done):
                    done()
                    write(x.dst, narrow(mul.res))
            with m.Elif(divmod_op):
                with m.If(div.done):
                    done()
                    write(x.dst, narrow(div.res))
            with m.Else():
                done()
                write(x.dst, narrow(alu.result))
        with m.Elif(is_k(isa.MOVSX)):
            done()
            write(x.dst, narrow(alu.movsx))
        with m.Elif(is_k(isa.END)):
            done()
            write(x.dst, alu.endr)
        with m.Elif(is_k(isa.LDDW)):
            with m.If(pc_ir >= self.prog_len):
                trap(traps.TRAP_PC)
            with m.Elif(insn[0:32] != 0):
                trap(traps.TRAP_RESERVED)
            with m.Else():
                done()
                m.d.comb += kill0.eq(1)
                write(x.dst, Cat(x.imm, d_imm))
        with m.Elif(is_k(isa.JA) | is_k(isa.JCOND)):
            with m.If(x.tbad & (is_k(isa.JA) | taken)):
                trap(traps.TRAP_PC)
            with m.Else():
                done()          # a taken one redirects the front end through redirect_br
        with m.Elif(is_load | is_store | ldabs):
            with m.If(~x.mem.rdy):
                pass                     # the address is being computed
            with m.Elif(mem_bad):
                with m.If(ldabs):
                    # the kernel ends a legacy packet load outside the packet with r0 = 0
                    m.d.comb += [stop0.eq(1), cnt0.eq(1)]
                    write(0, 0)
                with m.Else():
                    trap(traps.TRAP_MEM)
            with m.Else():
                m.d.comb += [dbus.valid.eq(Mux(issue, win_ok, 1)), dbus.we.eq(is_store)]
                with m.If(dbus.ready):
                    with m.If(dbus.err):
                        trap(traps.TRAP_MEM)
                    with m.Else():
                        done()
                        m.d.comb += to_w.eq(~is_store)
        with m.Elif(is_atomic):
            with m.If(~x.mem.rdy):
                pass
            with m.Elif(mem_bad):
                trap(traps.TRAP_MEM)
            with m.Else():
                m.d.comb += [dbus.valid.eq(Mux(issue, win_ok, 1)), dbus.lock.eq(1),
                             dbus.we.eq(at_phase)]
                with m.If(dbus.ready & dbus.err):
                    trap(traps.TRAP_MEM)
                with m.Elif(dbus.ready & at_phase):
                    done()
                    with m.If(mem.cmpxchg):
                        write(0, at_old)
                    with m.Elif(x.imm[0]):      # BPF_FETCH: the old value into src
                        write(x.src, at_old)
        with m.Elif(is_k(isa.CALL) & (x.src == isa.BPF_PSEUDO_CALL)):
            with m.If(frames.depth == memmap.MAX_CALL_FRAMES - 1):
                trap(traps.TRAP_CALL_DEPTH)
            with m.Elif(x.tbad):
                trap(traps.TRAP_PC)
            with m.Else():
                done()
                m.d.comb += [redirect.eq(1), push.eq(1)]
        with m.Elif(is_k(isa.CALL) | is_k(isa.CALLX)):
            m.d.comb += hlp.req.eq(1)
            with m.If(hlp.ack):
                with m.If(hlp.trap != 0):
                    trap(hlp.trap)
                with m.Else():
                    done()
                    m.d.comb += stop0.eq(hlp.exit)
                    write(0, hlp.r0)
        with m.Elif(is_k(isa.EXIT)):
            m.d.comb += cnt0.eq(1)
            with m.If(frames.depth == 0):
                m.d.comb += stop0.eq(1)
            with m.Else():
                # x.target is the return pc D read from the top frame
                m.d.comb += [fin0.eq(1), redirect.eq(1), pop.eq(1)]
        with m.Else():
            trap(traps.TRAP_ILLEGAL)

        # one write port into the register file: the load in W has it; a one-cycle
        # instruction that writes in the same cycle (its first in X) waits a cycle
        x_stall = Cond(m, "x_stall").on("wport", x_wr & w_valid)
        m.d.comb += [fin.eq(fin0 & ~x_stall.value), count_it.eq(cnt0 & ~x_stall.value),
                     kill_lddw.eq(kill0 & ~x_stall.value), stop.eq(stop0 & ~x_stall.value),
                     wb_en.eq(x_wr & ~x_stall.value)]
        m.d.comb += [rf.x_en.eq(wb_en & running), rf.x_idx.eq(wb_idx), rf.x_data.eq(wb_data)]

        # multi-cycle bookkeeping
        is_mem = is_load | is_store | ldabs | is_atomic
        m.d.sync += at_p1_first.eq(0)
        with m.If(x_valid & ~fin & ~stop):
            m.d.sync += xc.eq(xc + 1)
            with m.If(~x.mem.rdy):
                g = mem.agu
                m.d.sync += [x.mem.rdy.eq(1), x.mem.addr.eq(g.addr), x.mem.end.eq(g.end),
                             x.mem.ecarry.eq(g.ecarry), x.mem.ecross.eq(g.ecross),
                             x.mem.offneg.eq(0), x.mem.carry.eq(0), x.mem.ahz.eq(g.ahz)]
            with m.Elif(issue):
                m.d.sync += m_went.eq(1)
                with m.If(~win_ok & is_mem):
                    m.d.sync += mem_bad.eq(1)
            with m.If(is_atomic & dbus.ready & ~at_phase):
                m.d.sync += [at_phase.eq(1), at_p1_first.eq(1), m_went.eq(0)]
        with m.Else():
            m.d.sync += [xc.eq(0), at_phase.eq(0), mem_bad.eq(0), m_went.eq(0)]

        # ------------------------------------------------------------------ commit
        with m.If(wb_en):
            m.d.sync += last_wb.eq(wb_data)
        m.d.sync += w_valid.eq(0)
        with m.If(to_w & running):
            m.d.sync += [w_valid.eq(1), w.idx.eq(Mux(ldabs, 0, x.dst)), w.size.eq(x.size),
                         w.sx.eq(is_k(isa.LDXSX)), w.abs.eq(ldabs)]
        with m.If(count_it & running):
            m.d.sync += count.eq(count + 1)
        cnt1 = Signal(32)
        m.d.comb += cnt1.eq(count + 1)
        m.d.sync += budget_hit.eq(Mux(count_it, cnt1 == self.budget, count == self.budget))

        # ------------------------------------------------------------------ hazards
        # the load in X is written back in W: an instruction in D that reads its register,
        # or reads registers directly in X (calls, exit, atomics), waits one cycle; so does
        # one that reads a register whose LUT RAM copy is pending
        x_ld = x_valid & (is_load | ldabs)
        x_ld_dst = Mux(ldabs, 0, x.dst)
        d_stall = Cond(m, "d_stall")
        d_stall.on("load_a", ir_valid & x_ld & (ia == x_ld_dst))
        d_stall.on("load_b", ir_valid & x_ld & ~use_imm & (d_src == x_ld_dst))
        d_stall.on("load_direct", ir_valid & x_ld & (dk(isa.CALL) | dk(isa.CALLX)
                                                     | dk(isa.EXIT) | dk(isa.ATOMIC)))
        d_stall.on("pending", ir_valid & (rf.a_pend | (~use_imm & rf.b_pend)))
        hazard = d_stall.value
        # a taken jump: its X cycle always finishes (x.br: in range, no trap; the budget is
        # a flip-flop), so the comparison drives only the front end's last override
        redirect_br = Signal()
        m.d.comb += redirect_br.eq(x_valid & x.br & ~budget_hit & (x.ja | taken))
        step = Signal()
        m.d.comb += step.eq(fin & ~stop)
        m.d.comb += [fe.step.eq(step), fe.redirect.eq(redirect), fe.kill.eq(kill_lddw),
                     fe.hold.eq(hazard), fe.redirect_br.eq(redirect_br),
                     fe.target.eq(x.target)]

        # ------------------------------------------------------------------ D -> X
        nf_a = wb_en & (wb_idx == ia)
        payload = Signal.like(x)
        m.d.comb += [
            payload.pc.eq(pc_ir), payload.kind.eq(dec.kind), payload.op.eq(dec.op),
            payload.is64.eq(dec.is64), payload.srcx.eq(dec.srcx), payload.size.eq(dec.size),
            payload.signed.eq(dec.signed), payload.swap.eq(dec.swap), payload.trap.eq(d_trap),
            payload.dst.eq(d_dst), payload.src.eq(d_src), payload.off.eq(d_off),
            payload.imm.eq(d_imm), payload.a.eq(a_val), payload.b.eq(b_val),
            payload.fwd_a.eq(nf_a), payload.fwd_b.eq(wb_en & (wb_idx == d_src) & ~use_imm),
            payload.br.eq((dk(isa.JA) | dk(isa.JCOND)) & ~d_tbad & (d_trap == 0)),
            payload.ja.eq(dk(isa.JA)),
            payload.target.eq(Mux(dk(isa.EXIT), ret_pc, d_target[0:pw + 1])),
            payload.tbad.eq(d_tbad & ~dk(isa.EXIT)),
            payload.mem.eq(mem.d_addr), payload.mem.rdy.eq(~nf_a & ~d_abs),
        ]
        with m.If(init):
            m.d.sync += [running.eq(1), x_valid.eq(0), w_valid.eq(0), count.eq(0),
                         cycles.eq(0), trap_r.eq(0), trap_pc_r.eq(0),
                         budget_hit.eq(self.budget == 0)]
        with m.Elif(running & step):
            with m.If(redirect | kill_lddw | hazard):
                m.d.sync += x_valid.eq(0)
            with m.Else():
                m.d.sync += [x_valid.eq(ir_valid), x.eq(payload)]
        with m.If(redirect_br):
            m.d.sync += x_valid.eq(0)

        # the trap and its pc are outputs in the cycle done rises (an engine latches them
        # there, with r0) and held in trap_r/trap_pc_r until the next start
        end_pc = Signal(32)
        m.d.comb += end_pc.eq(Mux(stop_trap != 0, x.pc, 0))
        with m.If(running & stop):
            m.d.sync += [running.eq(0), x_valid.eq(0), trap_r.eq(stop_trap),
                         trap_pc_r.eq(end_pc)]
            m.d.comb += self.done.eq(1)
        m.d.comb += [self.trap.eq(Mux(self.done, stop_trap, trap_r)),
                     self.trap_pc.eq(Mux(self.done, end_pc, trap_pc_r))]
        return m
