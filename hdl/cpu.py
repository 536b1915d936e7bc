"""The eBPF CPU: a three-stage pipeline (fetch, decode/read, execute/write back).

* F: the program memory is block RAM with a synchronous read port. Its address input is the
  next pc, chosen in the same cycle from pc+1 or the target of a branch resolved in X, so a
  taken branch costs one bubble and a not-taken one none.
* D: the block RAM output is decoded (hdl/decode.py, generated from bpfpga/isa.py) and both
  operands are read from the register file, bypassing the value X writes back in the same
  cycle; everything is registered into X, so X starts from flip-flops.
* X: executes and writes back at the end of the cycle. ALU ops, jumps, lddw, calls and exits
  finish in one cycle; loads and stores hold X until the data bus says ready (two cycles on
  block RAM); mul takes four (a pipelined 16x16 partial-product multiplier), div/mod 34 or
  66 (a radix-2 divider), atomics two bus accesses, helper calls until the helper acks.
  While X is held, D and F hold too (the program memory read port's enable).

The register file is flip-flops: X reads r0 (cmpxchg), r1..r5 (helper arguments) and r6..r9
(call frames) directly, which is why it is not LUT RAM. Call frames (return pc, r6..r9) live
in a small LUT RAM; r10 is recomputed as frame_top(depth) moves. Traps (bpfpga/traps.py) are
precise: the trapping instruction is not counted, nothing after it runs, pc is its own.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga import isa, memmap, traps
from bpfpga.hdl.bus import DataBusSignature, HelperSignature
from bpfpga.hdl.decode import K, KIND_BITS, decoder

M32 = 0xFFFF_FFFF


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
    """

    def __init__(self, pm_depth: int = 4096, target_port: bool = True,
                 frame_bram: bool = False, mul_serial: bool = False):
        self.pm_depth = pm_depth
        # mul_serial: one 16x16 multiplier (one MULT18X18D) and a 64-bit accumulator, one
        # partial product a cycle: mul64 takes 11 cycles, mul32 4 (as before); the
        # parallel multiplier's ten MULT18X18D, their product registers and adder tree are
        # some 280 LUT4, 38 CCU2C and 285 flip-flops more (yosys, the Colorlight's SoC)
        self.mul_serial = mul_serial
        # frame_bram: the call frames' saved r6..r9 in block RAM (256 bits wide: 8 DP16KD)
        # instead of LUT RAM (67 LUT-RAM blocks, some 400 logic sites on an ECP5), for parts
        # with more block RAM than logic to spare; same cycles (see the frames below)
        self.frame_bram = frame_bram
        # target_port: a second program-memory read port fetches the target of the branch,
        # call or exit in D, so a taken one costs 2 cycles instead of 3; it costs a second
        # copy of the program memory's block RAM (yosys does not merge the write port into
        # a read port when there are two read ports), pm_depth / 256 DP16KD
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

        # ------------------------------------------------------------------ state
        running = Signal()
        m.d.comb += self.busy.eq(running)
        regs = [Signal(64, name=f"r{i}") for i in range(11)]
        count = Signal(32)
        cycles = Signal(32)
        m.d.comb += [self.insns.eq(count), self.cycles.eq(cycles)]
        trap_r = Signal(4)
        trap_pc_r = Signal(32)
        depth = Signal(range(memmap.MAX_CALL_FRAMES))
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)

        # ------------------------------------------------------------------ program memory
        # port A reads the sequential stream (and, while idle, takes the host's writes: one
        # address for both, so the block RAM port is read/write); port B reads the target of
        # the branch, call or exit in D, so a taken one finds its target already read.
        pm = Memory(shape=unsigned(64), depth=self.pm_depth, init=[])
        m.submodules.pm = pm
        pa = pm.read_port(domain="sync")
        pm_wp = pm.write_port()
        fa_addr = Signal(pw)
        m.d.comb += [pa.addr.eq(fa_addr), pm_wp.addr.eq(fa_addr), pm_wp.data.eq(self.pm_data),
                     pm_wp.en.eq(self.pm_we & ~running)]
        if self.target_port:
            pb = pm.read_port(domain="sync")
            m.d.comb += pb.en.eq(1)

        # call frames: return pc and r6..r9, in LUT RAM (asynchronous read). Its one read
        # address is the top frame: D takes the return pc, X the saved registers.
        fr = Memory(shape=unsigned(pw + 1 + (0 if self.frame_bram else 4 * 64)),
                    depth=memmap.MAX_CALL_FRAMES, init=[])
        m.submodules.frames = fr
        fr_rp = fr.read_port(domain="comb")
        fr_wp = fr.write_port()
        m.d.comb += fr_rp.addr.eq(depth - 1)
        if self.frame_bram:
            # r6..r9 of the frames apart, in block RAM read synchronously at depth - 1: X
            # uses them only in an exit, which comes two cycles or more after the call or
            # exit that last moved depth (through D), so the read has caught up by then
            frs = Memory(shape=unsigned(4 * 64), depth=memmap.MAX_CALL_FRAMES, init=[],
                         attrs={"ram_style": "block"})
            m.submodules.frame_regs = frs
            frs_rp = frs.read_port(domain="sync")
            frs_wp = frs.write_port()
            m.d.comb += [frs_rp.addr.eq(depth - 1), frs_wp.addr.eq(fr_wp.addr),
                         frs_wp.en.eq(fr_wp.en)]
            fr_saved = frs_rp.data
        else:
            fr_saved = fr_rp.data[pw + 1:]

        # register file copies for D's two operand reads: LUT RAM (asynchronous read), one
        # per operand, written with every register write. The flip-flops regs[] stay the
        # architectural registers (X reads r0..r10 directly: helper arguments, call frames,
        # cmpxchg). rf_live: the entry was written since start (else it reads 0); rf_pend:
        # the flip-flop holds a newer value than the RAM (r1, r2, r10 at start; r6..r10 after
        # an exit, r10 after a call), copied in a cycle the write port is free; D waits
        # while it reads a pending register.
        rfa = Memory(shape=unsigned(64), depth=16, init=[])
        rfb = Memory(shape=unsigned(64), depth=16, init=[])
        m.submodules.rfa, m.submodules.rfb = rfa, rfb
        rfa_r, rfb_r = rfa.read_port(domain="comb"), rfb.read_port(domain="comb")
        rfa_w, rfb_w = rfa.write_port(), rfb.write_port()
        rf_live = Signal(16)
        rf_pend = Signal(16)
        pend_set = Signal(16)   # registers made pending this cycle (call, exit)

        # ------------------------------------------------------------------ F / B
        # pc_b: the slot port A's output holds; ir: the instruction register (block RAM
        # output straight into flip-flops, nothing in between)
        pc_b = Signal(pw + 1)
        ir = Signal(64)
        ir_valid = Signal()
        pc_ir = Signal(pw + 1)

        # ------------------------------------------------------------------ W stage
        # a load's data is registered as it arrives (ld_q) and written back the cycle after
        ld_q = Signal(64)
        m.d.sync += ld_q.eq(self.dbus.rdata)
        w_valid = Signal()
        w_idx = Signal(4)
        w_size = Signal(2)
        w_sx = Signal()
        w_abs = Signal()

        def bswap(v, nbytes):
            return Cat(*[v[8 * i:8 * i + 8] for i in reversed(range(nbytes))])

        w_data = Signal(64)
        with m.Switch(w_size):
            with m.Case(0):
                m.d.comb += w_data.eq(Mux(w_sx, ld_q[0:8].as_signed(), ld_q[0:8]))
            with m.Case(1):
                m.d.comb += w_data.eq(Mux(w_sx, ld_q[0:16].as_signed(),
                                          Mux(w_abs, bswap(ld_q, 2), ld_q[0:16])))
            with m.Case(2):
                m.d.comb += w_data.eq(Mux(w_sx, ld_q[0:32].as_signed(),
                                          Mux(w_abs, bswap(ld_q, 4), ld_q[0:32])))
            with m.Default():
                m.d.comb += w_data.eq(ld_q)
        m.d.comb += self.r0.eq(Mux(w_valid & (w_idx == 0), w_data, regs[0]))

        # ------------------------------------------------------------------ D stage
        insn = ir
        dec = decoder(m, insn)
        d_dst, d_src, d_off, d_imm = insn[8:12], insn[12:16], insn[16:32], insn[32:64]
        d_trap = Signal(4)
        m.d.comb += d_trap.eq(Mux(pc_ir >= self.prog_len, traps.TRAP_PC, dec.trap))

        def dk(k):
            return dec.kind == K[k]

        def read(port, idx):
            m.d.comb += port.addr.eq(idx)
            v = Mux(rf_live.bit_select(idx, 1), port.data, 0)
            # the load in W writes at the end of this cycle
            return Mux(w_valid & (w_idx == idx), w_data, v)

        # the base register of a memory access straight from the opcode (not the decoded
        # kind, which is several LUT levels deep): classes LDX (1) and LD with mode IND
        # (0x40) take src, ST/STX/atomics, ALU and JMP classes (bit 1 or 2 set) take dst
        opc = insn[0:8]
        base_is_src = ~opc[2] & ~opc[1] & (opc[0] | opc[6])
        ia = Signal(4)
        m.d.comb += ia.eq(Mux(base_is_src, d_src, d_dst))
        a_val = Signal(64)
        m.d.comb += a_val.eq(read(rfa_r, ia))
        b_reg = read(rfb_r, d_src)
        use_imm = ((~dec.srcx & (dk(isa.ALU) | dk(isa.JCOND))) | dk(isa.ST))
        b_val = Mux(use_imm, d_imm.as_signed(), b_reg)
        # branch and call targets, 34-bit signed so that any imm fits
        jimm = Mux((dk(isa.JA) & ~dec.is64) | dk(isa.CALL), d_imm.as_signed(), d_off.as_signed())
        d_target = Signal(signed(34))
        m.d.comb += d_target.eq(pc_ir + 1 + jimm)
        d_tbad = Signal()
        m.d.comb += d_tbad.eq((d_target < 0) | (d_target >= self.prog_len))
        ret_pc = fr_rp.data[0:pw + 1]
        if self.target_port:
            m.d.comb += pb.addr.eq(Mux(dk(isa.EXIT), ret_pc, d_target[0:pw]))
        # the address of a memory access, from the operand D reads (X recomputes it when the
        # base register comes from X's forwarding path, or for ld_abs/ld_ind)
        # and its end (address + size), added in parallel from off + size (IR bits only),
        # so that X's window check is a compare of registers. The upper-word flags and the
        # carry are registered apart and combined in X (hi_ok below).
        d_off32 = Signal(32)
        d_offn = Signal(32)
        d_lo = Signal(33)
        d_end = Signal(32)
        m.d.comb += [d_off32.eq(d_off.as_signed()),
                     d_offn.eq(d_off.as_signed() + (1 << dec.size)),
                     d_lo.eq(a_val[0:32] + d_off32), d_end.eq(a_val[0:32] + d_offn)]
        ahi = a_val[32:64]
        # the access crosses into the next nibble (size <= 8), or wraps past 2^32 (from F to 0)
        d_ecross = d_end[28:32] != d_lo[28:32]

        # ------------------------------------------------------------------ X stage regs
        x_valid = Signal()
        x_pc = Signal(pw + 1)
        x_kind = Signal(KIND_BITS)
        x_op = Signal(4)
        x_is64 = Signal()
        x_srcx = Signal()
        x_size = Signal(2)
        x_signed = Signal()
        x_swap = Signal()
        x_trap = Signal(4)
        x_dst = Signal(4)
        x_src = Signal(4)
        x_off = Signal(16)
        x_imm = Signal(32)
        x_a = Signal(64)
        x_b = Signal(64)
        x_target = Signal(pw + 1)
        x_tbad = Signal()
        x_br = Signal()         # a jump with its target in range and no trap
        x_ja = Signal()
        fwd_a = Signal()        # the operand is the value X wrote as this one left D
        fwd_b = Signal()
        last_wb = Signal(64)
        m_rdy = Signal()        # m_addr/m_end and the m_* flags hold this access's address
        m_addr = Signal(32)
        m_end = Signal(32)      # m_addr + the access size (low 32 bits)
        m_ecross = Signal()     # the end lies past the address's 256 MiB window nibble
        m_ecarry = Signal()     # the end's carry out of bit 31
        # the upper 32 bits of the 64-bit address are zero when: the base's upper word is
        # 0 (no carry from a positive off / a carry from a negative one), 1 - carry, or
        # all ones + carry (negative off); kept as flags, combined in X
        m_offneg = Signal()
        m_carry = Signal()
        m_ahz = Signal()
        m_ah1 = Signal()
        m_ahm = Signal()
        m_hiok = Signal()
        m_went = Signal()       # the access was issued (valid raised) already
        xc = Signal(7)          # cycles spent in X by a multi-cycle instruction

        def is_k(k):
            return x_kind == K[k]

        a = Signal(64)
        b = Signal(64)
        m.d.comb += [a.eq(Mux(fwd_a, last_wb, x_a)), b.eq(Mux(fwd_b, last_wb, x_b))]
        w64 = x_is64

        # ------------------------------------------------------------------ ALU (1 cycle)
        sh = Signal(6)
        m.d.comb += sh.eq(Mux(w64, b[0:6], b[0:5]))
        arsh = x_op == (isa.BPF_ARSH >> 4)
        lsh = x_op == (isa.BPF_LSH >> 4)
        # one barrel shifter: a left shift is the right shift of the bit-reversed operand,
        # reversed back (64-bit either way; narrow() keeps the low word of a 32-bit shift)
        rin = Signal(signed(65))
        m.d.comb += rin.eq(Mux(lsh, Cat(a[::-1], 0),
                               Mux(w64, Cat(a, arsh & a[63]),
                                   Cat(a[0:32], Mux(arsh & a[31], 0x1_FFFF_FFFF, 0)))))
        shr = Signal(64)
        m.d.comb += shr.eq((rin >> sh)[0:64])
        alu = Signal(64)
        neg_a = Signal(64)      # -a: NEG, and the divider's |a|
        m.d.comb += neg_a.eq(-a)
        is_sub = x_op == (isa.BPF_SUB >> 4)
        addsub = Signal(64)
        m.d.comb += addsub.eq(a + Mux(is_sub, ~b, b) + is_sub)     # one carry chain
        with m.Switch(x_op):
            with m.Case(isa.BPF_ADD >> 4, isa.BPF_SUB >> 4):
                m.d.comb += alu.eq(addsub)
            with m.Case(isa.BPF_OR >> 4):
                m.d.comb += alu.eq(a | b)
            with m.Case(isa.BPF_AND >> 4):
                m.d.comb += alu.eq(a & b)
            with m.Case(isa.BPF_XOR >> 4):
                m.d.comb += alu.eq(a ^ b)
            with m.Case(isa.BPF_LSH >> 4):
                m.d.comb += alu.eq(shr[::-1])
            with m.Case(isa.BPF_RSH >> 4, isa.BPF_ARSH >> 4):
                m.d.comb += alu.eq(shr)
            with m.Case(isa.BPF_NEG >> 4):
                m.d.comb += alu.eq(neg_a)
            with m.Case(isa.BPF_MOV >> 4):
                m.d.comb += alu.eq(b)
        movsx = Signal(64)
        with m.Switch(x_size):
            with m.Case(0):
                m.d.comb += movsx.eq(b[0:8].as_signed())
            with m.Case(1):
                m.d.comb += movsx.eq(b[0:16].as_signed())
            with m.Default():
                m.d.comb += movsx.eq(b[0:32].as_signed())
        endr = Signal(64)
        with m.Switch(Cat(x_size, x_swap)):
            with m.Case(0b001):
                m.d.comb += endr.eq(a[0:16])
            with m.Case(0b010):
                m.d.comb += endr.eq(a[0:32])
            with m.Case(0b011):
                m.d.comb += endr.eq(a)
            with m.Case(0b101):
                m.d.comb += endr.eq(bswap(a, 2))
            with m.Case(0b110):
                m.d.comb += endr.eq(bswap(a, 4))
            with m.Case(0b111):
                m.d.comb += endr.eq(bswap(a, 8))

        # ------------------------------------------------------------------ compare (jumps)
        # two 32-bit comparators combined (no 64-bit operand muxes for jmp32)
        lo_eq, hi_eq = Signal(), Signal()
        lo_lt, hi_lt = Signal(), Signal()
        m.d.comb += [lo_eq.eq(a[0:32] == b[0:32]), hi_eq.eq(a[32:64] == b[32:64]),
                     lo_lt.eq(a[0:32] < b[0:32]), hi_lt.eq(a[32:64] < b[32:64])]
        eq = lo_eq & (~w64 | hi_eq)
        ult = Mux(w64, hi_lt | (hi_eq & lo_lt), lo_lt)
        sga = Mux(w64, a[63], a[31])
        sgb = Mux(w64, b[63], b[31])
        slt = Mux(sga ^ sgb, sga, ult)     # signed from the unsigned comparator
        jset = (a[0:32] & b[0:32]).any() | (w64 & (a[32:64] & b[32:64]).any())
        taken = Signal()
        with m.Switch(x_op):
            for op, expr in ((isa.BPF_JEQ, eq), (isa.BPF_JNE, ~eq),
                             (isa.BPF_JGT, ~ult & ~eq), (isa.BPF_JGE, ~ult),
                             (isa.BPF_JLT, ult), (isa.BPF_JLE, ult | eq),
                             (isa.BPF_JSGT, ~slt & ~eq), (isa.BPF_JSGE, ~slt),
                             (isa.BPF_JSLT, slt), (isa.BPF_JSLE, slt | eq),
                             (isa.BPF_JSET, jset)):
                with m.Case(op >> 4):
                    m.d.comb += taken.eq(expr)

        # ------------------------------------------------------------------ multiplier
        # 64x64 -> low 64 bits from ten 16x16 partial products (ten MULT18X18D); the products
        # that only reach bits >= 64 are never formed. mul32 uses the same unit: products of
        # the upper limbs land at bit 32 and above, which the 32-bit result drops.
        la = [a[16 * i:16 * i + 16] for i in range(4)]
        lb = [b[16 * i:16 * i + 16] for i in range(4)]
        mres = Signal(64)
        if self.mul_serial:
            # the ten products in order of their limb offset i + j, the three that make the
            # low 32 bits first; product k is formed in X's cycle k (registered) and added
            # at offset 16 (i + j) in cycle k + 1
            seq = [(i, j) for d in range(4) for i in range(d + 1) for j in range(4)
                   if i + j == d]
            mi, mj = Signal(2), Signal(2)
            with m.Switch(xc):
                for k, (i, j) in enumerate(seq):
                    with m.Case(k):
                        m.d.comb += [mi.eq(i), mj.eq(j)]
            pr = Signal(32)
            prs = Signal(2)
            m.d.sync += [pr.eq(Array(la)[mi] * Array(lb)[mj]), prs.eq(mi + mj)]
            shifted = Signal(64)
            with m.Switch(prs):
                for d in range(4):
                    with m.Case(d):
                        m.d.comb += shifted.eq(pr << (16 * d))
            with m.If(xc == 1):
                m.d.sync += mres.eq(shifted)
            with m.Elif(xc <= len(seq)):
                m.d.sync += mres.eq(mres + shifted)
            mul_done = xc == Mux(w64, len(seq) + 1, 4)
        else:
            # 64x64 -> low 64 bits from ten 16x16 partial products (ten MULT18X18D)
            pp = {(i, j): Signal(32, name=f"pp{i}{j}") for i in range(4) for j in range(4)
                  if i + j <= 3}
            ms0 = Signal(32)
            ms1 = Signal(33)
            ms2 = Signal(32)
            ms3 = Signal(16)
            m.d.sync += [p.eq(la[i] * lb[j]) for (i, j), p in pp.items()]
            m.d.sync += [
                ms0.eq(pp[0, 0]),
                ms1.eq(pp[0, 1] + pp[1, 0]),
                ms2.eq(pp[0, 2] + pp[1, 1] + pp[2, 0]),
                ms3.eq(pp[0, 3] + pp[1, 2] + pp[2, 1] + pp[3, 0]),
                mres.eq(ms0 + (ms1 << 16) + (ms2 << 32) + (ms3 << 48)),
            ]
            mul_done = xc == 3

        # ------------------------------------------------------------------ divider
        dv_n = Signal(64)      # dividend, shifted out at the top; the quotient shifts in below
        dv_d = Signal(64)
        dv_r = Signal(64)
        dv_negq = Signal()
        dv_negr = Signal()
        dv_zero = Signal()
        av = Mux(w64, a, a[0:32])
        bv = Mux(w64, b, b[0:32])
        sa = x_signed & Mux(w64, a[63], a[31])
        sb = x_signed & Mux(w64, b[63], b[31])
        # one negator per operand (a's is the ALU's): the low half of a 64-bit negation is
        # the 32-bit one
        nb = Signal(64)
        m.d.comb += nb.eq(-bv)
        a_abs = Mux(sa, Mux(w64, neg_a, neg_a[0:32]), av)
        b_abs = Mux(sb, Mux(w64, nb, nb[0:32]), bv)
        r2 = Cat(dv_n[63], dv_r)
        diff = Signal(66)
        m.d.comb += diff.eq(r2 - dv_d)
        is_div = x_op == (isa.BPF_DIV >> 4)
        divmod_op = is_k(isa.ALU) & (is_div | (x_op == (isa.BPF_MOD >> 4)))
        mul_op = is_k(isa.ALU) & (x_op == (isa.BPF_MUL >> 4))
        dv_last = Mux(w64, 64, 32) + 1
        with m.If(xc == 0):
            m.d.sync += [dv_n.eq(Mux(w64, a_abs, a_abs << 32)), dv_d.eq(b_abs), dv_r.eq(0),
                         dv_negq.eq(sa ^ sb), dv_negr.eq(sa), dv_zero.eq(bv == 0)]
        with m.Else():
            # the dividend's bits leave dv_n at the top as the quotient's enter at the bottom:
            # after 64 (32) steps dv_n is the quotient (the 32-bit dividend started at bit 32)
            with m.If(diff[65]):
                m.d.sync += [dv_r.eq(r2), dv_n.eq(Cat(0, dv_n[0:63]))]
            with m.Else():
                m.d.sync += [dv_r.eq(diff), dv_n.eq(Cat(1, dv_n[0:63]))]
        qr = Mux(is_div, dv_n, dv_r)
        qr_neg = Signal(64)
        m.d.comb += qr_neg.eq(-qr)
        qr_fin = Mux(Mux(is_div, dv_negq, dv_negr), qr_neg, qr)
        # by zero: div gives 0 (at once); mod runs the steps, which leave the remainder
        # |a| (every step subtracts 0), turned back into a by the dividend's sign as usual
        div_res = Mux(dv_zero & is_div, 0, qr_fin)

        # ------------------------------------------------------------------ memory access
        nbytes = Signal(4)
        m.d.comb += nbytes.eq(1 << x_size)
        ldabs = is_k(isa.LDABS) | is_k(isa.LDIND)
        is_store = is_k(isa.ST) | is_k(isa.STX)
        is_load = is_k(isa.LDX) | is_k(isa.LDXSX)
        # the address computed in X (a cycle of its own) when D's could not be used
        agu = Signal(64)
        agu_abs = Signal(33)
        m.d.comb += [agu.eq(a + x_off.as_signed()),
                     agu_abs.eq(self.pkt_lo + (Mux(is_k(isa.LDIND), a[0:32], 0) + x_imm)[0:32])]
        agu_addr = Mux(ldabs, agu_abs[0:32], agu[0:32])
        agu_hiok = Mux(ldabs, ~agu_abs[32], agu[32:64] == 0)
        agu_end = Signal(33)
        m.d.comb += agu_end.eq(agu_addr + nbytes)
        # the window check, on the registered address and end
        m.d.comb += m_hiok.eq(Mux(m_offneg, Mux(m_carry, m_ahz, m_ah1),
                                  Mux(m_carry, m_ahm, m_ahz)))
        nib = m_addr[28:32]
        end28 = Cat(m_end[0:28], m_ecross)
        mend = Cat(m_end, m_ecarry)

        def in_win(base, length):
            return (nib == base >> 28) & (end28 <= length)
        win_ok = Signal()
        m.d.comb += win_ok.eq(m_hiok & (
            in_win(memmap.STACK_BASE, memmap.STACK_SIZE)
            | (in_win(memmap.CTX_BASE, self.ctx_len) & ~is_store & ~is_k(isa.ATOMIC))
            | in_win(memmap.MAP_BASE, self.map_len)
            | ((m_addr >= self.pkt_lo) & (mend <= self.pkt_hi))))
        # atomics: phase 0 reads, phase 1 writes; the old value is ld_q in phase 1's first
        # cycle and held in at_old_r after it
        at_phase = Signal()
        at_p1_first = Signal()
        at_old_r = Signal(64)
        at_old = Signal(64)
        m.d.comb += at_old.eq(Mux(at_p1_first, ld_q, at_old_r))
        m.d.sync += at_old_r.eq(at_old)
        aimm = x_imm[0:8]
        is_atomic = is_k(isa.ATOMIC)
        at_cmpxchg = is_atomic & (aimm == isa.BPF_CMPXCHG)
        vmask = Mux(x_size == 3, (1 << 64) - 1, M32)
        at_new = Signal(64)
        # the store data of every store: other kinds than atomics take the xchg case (b)
        with m.Switch(Mux(is_atomic, aimm & 0xF0, isa.BPF_XCHG & 0xF0)):
            with m.Case(isa.BPF_ADD):
                m.d.comb += at_new.eq(at_old + b)
            with m.Case(isa.BPF_OR):
                m.d.comb += at_new.eq(at_old | b)
            with m.Case(isa.BPF_AND):
                m.d.comb += at_new.eq(at_old & b)
            with m.Case(isa.BPF_XOR):
                m.d.comb += at_new.eq(at_old ^ b)
            with m.Default():       # xchg, cmpxchg
                m.d.comb += at_new.eq(b)
        # a failed cmpxchg writes the old value back (under lock, invisible): finishing early
        # would make X's end depend on read data
        with m.If(at_cmpxchg & (at_old != (regs[0] & vmask))):
            m.d.comb += at_new.eq(at_old)

        # ------------------------------------------------------------------ X control
        fin = Signal()          # X finishes its instruction this cycle (or holds none)
        stop = Signal()         # the program ends this cycle
        stop_trap = Signal(4)
        redirect = Signal()     # D is squashed; the target (port B's output) goes to D
        kill_lddw = Signal()    # the second slot of lddw, now in D, is not an instruction
        count_it = Signal()
        to_w = Signal()         # a load finishes X: its data is written back in W
        first = xc == 0
        issue = m_rdy & ~m_went
        mem_bad = Signal()      # the window check failed at issue: trap (acted on a cycle later)
        budget_hit = Signal()   # count == budget, kept as a flip-flop
        wb_en = Signal()
        wb_idx = Signal(4)
        wb_data = Signal(64)

        dbus, hlp = self.dbus, self.helper
        m.d.comb += [
            dbus.addr.eq(m_addr), dbus.size.eq(x_size),
            dbus.wdata.eq(at_new),
            hlp.id.eq(Mux(is_k(isa.CALLX), a[0:32], x_imm)),
            hlp.arg1.eq(regs[1]), hlp.arg2.eq(regs[2]), hlp.arg3.eq(regs[3]),
            hlp.arg4.eq(regs[4]), hlp.arg5.eq(regs[5]),
        ]

        fin0, cnt0, kill0, stop0, x_wr = Signal(), Signal(), Signal(), Signal(), Signal()

        def trap(code):
            m.d.comb += [stop0.eq(1), stop_trap.eq(code)]

        def write(idx, val):
            m.d.comb += [x_wr.eq(1), wb_idx.eq(idx), wb_data.eq(val)]

        def narrow(v):
            return Mux(w64, v, v[0:32])

        with m.If(~x_valid):
            m.d.comb += fin0.eq(1)
        with m.Elif(first & budget_hit):
            trap(traps.TRAP_BUDGET)
        with m.Elif(x_trap != 0):
            trap(x_trap)
        with m.Elif(is_k(isa.ALU) | is_k(isa.NEG)):
            with m.If(mul_op):
                with m.If(mul_done):
                    m.d.comb += [fin0.eq(1), cnt0.eq(1)]
                    write(x_dst, narrow(mres))
            with m.Elif(divmod_op):
                with m.If((xc == dv_last) | ((xc == 1) & dv_zero & is_div)):
                    m.d.comb += [fin0.eq(1), cnt0.eq(1)]
                    write(x_dst, narrow(div_res))
            with m.Else():
                m.d.comb += [fin0.eq(1), cnt0.eq(1)]
                write(x_dst, narrow(alu))
        with m.Elif(is_k(isa.MOVSX)):
            m.d.comb += [fin0.eq(1), cnt0.eq(1)]
            write(x_dst, narrow(movsx))
        with m.Elif(is_k(isa.END)):
            m.d.comb += [fin0.eq(1), cnt0.eq(1)]
            write(x_dst, endr)
        with m.Elif(is_k(isa.LDDW)):
            with m.If(pc_ir >= self.prog_len):
                trap(traps.TRAP_PC)
            with m.Elif(insn[0:32] != 0):
                trap(traps.TRAP_RESERVED)
            with m.Else():
                m.d.comb += [fin0.eq(1), cnt0.eq(1), kill0.eq(1)]
                write(x_dst, Cat(x_imm, d_imm))
        with m.Elif(is_k(isa.JA) | is_k(isa.JCOND)):
            with m.If(x_tbad & (is_k(isa.JA) | taken)):
                trap(traps.TRAP_PC)
            with m.Else():
                # a taken one redirects the front end through redirect_br below
                m.d.comb += [fin0.eq(1), cnt0.eq(1)]
        with m.Elif(is_load | is_store | ldabs):
            with m.If(~m_rdy):
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
                        m.d.comb += [fin0.eq(1), cnt0.eq(1), to_w.eq(~is_store)]
        with m.Elif(is_k(isa.ATOMIC)):
            with m.If(~m_rdy):
                pass
            with m.Elif(mem_bad):
                trap(traps.TRAP_MEM)
            with m.Else():
                m.d.comb += [dbus.valid.eq(Mux(issue, win_ok, 1)), dbus.lock.eq(1),
                             dbus.we.eq(at_phase)]
                with m.If(dbus.ready & dbus.err):
                    trap(traps.TRAP_MEM)
                with m.Elif(dbus.ready & at_phase):
                    m.d.comb += [fin0.eq(1), cnt0.eq(1)]
                    with m.If(at_cmpxchg):
                        write(0, at_old)
                    with m.Elif(aimm[0]):
                        write(x_src, at_old)
        with m.Elif(is_k(isa.CALL) & (x_src == isa.BPF_PSEUDO_CALL)):
            with m.If(depth == memmap.MAX_CALL_FRAMES - 1):
                trap(traps.TRAP_CALL_DEPTH)
            with m.Elif(x_tbad):
                trap(traps.TRAP_PC)
            with m.Else():
                m.d.comb += [fin0.eq(1), cnt0.eq(1), redirect.eq(1),
                             fr_wp.addr.eq(depth), fr_wp.en.eq(1),
                             fr_wp.data.eq(Cat((x_pc + 1)[0:pw + 1], regs[6], regs[7],
                                               regs[8], regs[9]))]
                if self.frame_bram:
                    m.d.comb += frs_wp.data.eq(Cat(regs[6], regs[7], regs[8], regs[9]))
                m.d.sync += [depth.eq(depth + 1), regs[10].eq(regs[10] - memmap.STACK_FRAME)]
                m.d.comb += pend_set.eq(1 << 10)
        with m.Elif(is_k(isa.CALL) | is_k(isa.CALLX)):
            m.d.comb += hlp.req.eq(1)
            with m.If(hlp.ack):
                with m.If(hlp.trap != 0):
                    trap(hlp.trap)
                with m.Else():
                    m.d.comb += [fin0.eq(1), cnt0.eq(1), stop0.eq(hlp.exit)]
                    write(0, hlp.r0)
        with m.Elif(is_k(isa.EXIT)):
            m.d.comb += cnt0.eq(1)
            with m.If(depth == 0):
                m.d.comb += stop0.eq(1)
            with m.Else():
                # x_target is the return pc D read from the top frame
                m.d.comb += [fin0.eq(1), redirect.eq(1)]
                rest = fr_saved
                m.d.sync += [depth.eq(depth - 1),
                             regs[10].eq(regs[10] + memmap.STACK_FRAME)]
                m.d.sync += [regs[6 + i].eq(rest[64 * i:64 * i + 64]) for i in range(4)]
                m.d.comb += pend_set.eq(0b111_1100_0000)
        with m.Else():
            trap(traps.TRAP_ILLEGAL)

        # one write port into the register file: the load in W has it; a one-cycle
        # instruction that writes in the same cycle (its first in X) waits a cycle
        wconf = Signal()
        m.d.comb += [wconf.eq(x_wr & w_valid), fin.eq(fin0 & ~wconf), count_it.eq(cnt0 & ~wconf),
                     kill_lddw.eq(kill0 & ~wconf), stop.eq(stop0 & ~wconf),
                     wb_en.eq(x_wr & ~wconf)]

        # multi-cycle bookkeeping
        is_mem = is_load | is_store | ldabs | is_k(isa.ATOMIC)
        m.d.sync += at_p1_first.eq(0)
        with m.If(x_valid & ~fin & ~stop):
            m.d.sync += xc.eq(xc + 1)
            with m.If(~m_rdy):
                m.d.sync += [m_rdy.eq(1), m_addr.eq(agu_addr), m_end.eq(agu_end[0:32]),
                             m_ecarry.eq(agu_end[32]),
                             m_ecross.eq(agu_end[28:32] != agu_addr[28:32]),
                             m_offneg.eq(0), m_carry.eq(0), m_ahz.eq(agu_hiok)]
            with m.Elif(issue):
                m.d.sync += m_went.eq(1)
                with m.If(~win_ok & is_mem):
                    m.d.sync += mem_bad.eq(1)
            with m.If(is_k(isa.ATOMIC) & dbus.ready & ~at_phase):
                m.d.sync += [at_phase.eq(1), at_p1_first.eq(1), m_went.eq(0)]
        with m.Else():
            m.d.sync += [xc.eq(0), at_phase.eq(0), mem_bad.eq(0), m_went.eq(0)]

        # ------------------------------------------------------------------ commit
        rf_data = Signal(64)
        m.d.comb += rf_data.eq(Mux(w_valid, w_data, wb_data))
        for i in range(10):
            with m.If((w_valid & (w_idx == i)) | (wb_en & (wb_idx == i) & running)):
                m.d.sync += regs[i].eq(rf_data)
        # the LUT RAM copies: the same write, or else the copy of the lowest pending register
        com_en = Signal()
        com_idx = Signal(4)
        m.d.comb += [com_en.eq(w_valid | (wb_en & running)),
                     com_idx.eq(Mux(w_valid, w_idx, wb_idx))]
        seq_idx = Signal(4)
        seq_val = Signal(64)
        pend_src = (1, 2, 6, 7, 8, 9, 10)
        for i in reversed(pend_src):
            with m.If(rf_pend[i]):
                m.d.comb += [seq_idx.eq(i), seq_val.eq(regs[i])]
        rf_we = Signal()
        rf_wa = Signal(4)
        rf_wd = Signal(64)
        with m.If(com_en):
            m.d.comb += [rf_we.eq(com_idx != 10), rf_wa.eq(com_idx), rf_wd.eq(rf_data)]
        with m.Elif(rf_pend.any() & running):
            m.d.comb += [rf_we.eq(1), rf_wa.eq(seq_idx), rf_wd.eq(seq_val)]
        for wp in (rfa_w, rfb_w):
            m.d.comb += [wp.addr.eq(rf_wa), wp.data.eq(rf_wd), wp.en.eq(rf_we)]
        rf_wbit = Signal(16)
        m.d.comb += rf_wbit.eq(Mux(rf_we, 1 << rf_wa, 0))
        m.d.sync += [rf_live.eq(rf_live | rf_wbit), rf_pend.eq((rf_pend & ~rf_wbit) | pend_set)]
        with m.If(wb_en):
            m.d.sync += last_wb.eq(wb_data)
        m.d.sync += w_valid.eq(0)
        with m.If(to_w & running):
            m.d.sync += [w_valid.eq(1), w_idx.eq(Mux(ldabs, 0, x_dst)), w_size.eq(x_size),
                         w_sx.eq(is_k(isa.LDXSX)), w_abs.eq(ldabs)]
        with m.If(count_it & running):
            m.d.sync += count.eq(count + 1)
        cnt1 = Signal(32)
        m.d.comb += cnt1.eq(count + 1)
        m.d.sync += budget_hit.eq(Mux(count_it, cnt1 == self.budget, count == self.budget))

        # the load in X is written back in W: an instruction in D that reads its register
        # (or reads registers directly in X: calls, exit, atomics) waits one cycle
        x_ld = x_valid & (is_load | ldabs)
        x_ld_dst = Mux(ldabs, 0, x_dst)
        hazard = Signal()
        pend_hit = rf_pend.bit_select(ia, 1) | (~use_imm & rf_pend.bit_select(d_src, 1))
        m.d.comb += hazard.eq(ir_valid & ((x_ld & (
            (ia == x_ld_dst) | (~use_imm & (d_src == x_ld_dst))
            | dk(isa.CALL) | dk(isa.CALLX) | dk(isa.EXIT) | dk(isa.ATOMIC))) | pend_hit))

        d_abs = dk(isa.LDABS) | dk(isa.LDIND)
        nf_a = wb_en & (wb_idx == ia)

        def front_advance():
            m.d.comb += [fa_addr.eq(pc_b + 1), pa.en.eq(1)]
            m.d.sync += [ir.eq(pa.data), pc_ir.eq(pc_b), ir_valid.eq(1), pc_b.eq(pc_b + 1)]

        with m.If(self.start & ~running):
            m.d.comb += [fa_addr.eq(0), pa.en.eq(1)]
            m.d.sync += [pc_b.eq(0), ir_valid.eq(0), running.eq(1), x_valid.eq(0),
                         w_valid.eq(0), count.eq(0), cycles.eq(0), trap_r.eq(0),
                         trap_pc_r.eq(0), depth.eq(0), budget_hit.eq(self.budget == 0)]
            m.d.sync += [rf_live.eq(0), rf_pend.eq(0b100_0000_0110)]
            for i in range(11):
                m.d.sync += regs[i].eq({1: self.r1_init, 2: self.r2_init,
                                        10: memmap.frame_top(0)}.get(i, 0))
        with m.Elif(~running):
            m.d.comb += [fa_addr.eq(self.pm_addr), pa.en.eq(0)]
        def do_redirect():
            if self.target_port:
                # the target was read on port B while the branch was in D
                m.d.comb += [fa_addr.eq(x_target + 1), pa.en.eq(1)]
                m.d.sync += [x_valid.eq(0), ir.eq(pb.data), pc_ir.eq(x_target),
                             ir_valid.eq(1), pc_b.eq(x_target + 1)]
            else:
                m.d.comb += [fa_addr.eq(x_target), pa.en.eq(1)]
                m.d.sync += [x_valid.eq(0), ir_valid.eq(0), pc_b.eq(x_target)]

        with m.Elif(fin & ~stop):
            with m.If(redirect):
                do_redirect()
            with m.Elif(kill_lddw):
                m.d.sync += x_valid.eq(0)
                front_advance()
            with m.Elif(hazard):
                # port A reads its slot again (rather than a disabled port): its enable
                # then does not depend on the redirect, i.e. on the branch comparison
                m.d.sync += x_valid.eq(0)
                m.d.comb += [fa_addr.eq(pc_b), pa.en.eq(1)]
            with m.Else():
                front_advance()
                m.d.sync += [x_valid.eq(ir_valid), x_pc.eq(pc_ir),
                             x_kind.eq(dec.kind), x_op.eq(dec.op), x_is64.eq(dec.is64),
                             x_srcx.eq(dec.srcx), x_size.eq(dec.size), x_signed.eq(dec.signed),
                             x_swap.eq(dec.swap), x_trap.eq(d_trap), x_dst.eq(d_dst),
                             x_src.eq(d_src), x_off.eq(d_off), x_imm.eq(d_imm), x_a.eq(a_val),
                             x_b.eq(b_val), fwd_a.eq(nf_a),
                             fwd_b.eq(wb_en & (wb_idx == d_src) & ~use_imm),
                             x_br.eq((dk(isa.JA) | dk(isa.JCOND)) & ~d_tbad & (d_trap == 0)),
                             x_ja.eq(dk(isa.JA)),
                             x_target.eq(Mux(dk(isa.EXIT), ret_pc, d_target[0:pw + 1])),
                             x_tbad.eq(d_tbad & ~dk(isa.EXIT)),
                             m_rdy.eq(~nf_a & ~d_abs), m_addr.eq(d_lo[0:32]),
                             m_end.eq(d_end), m_ecross.eq(d_ecross),
                             m_ecarry.eq(d_ecross & (d_end[28:32] == 0)),
                             m_offneg.eq(d_off[15]), m_carry.eq(d_lo[32]),
                             m_ahz.eq(ahi == 0), m_ah1.eq(ahi == 1), m_ahm.eq(ahi == M32)]
        with m.Else():
            m.d.comb += pa.en.eq(0)
        # a taken jump: its X cycle always finishes (x_br: in range, no trap; the budget is
        # a flip-flop), so the comparison drives only this last override of the front end
        # (the muxes into IR, pc and port A's address), not fin, stop or any enable chain
        redirect_br = Signal()
        m.d.comb += redirect_br.eq(x_valid & x_br & ~budget_hit & (x_ja | taken))
        with m.If(redirect_br):
            do_redirect()
        # the trap and its pc are outputs in the cycle done rises (an engine latches them
        # there, with r0) and held in trap_r/trap_pc_r until the next start
        end_pc = Signal(32)
        m.d.comb += end_pc.eq(Mux(stop_trap != 0, x_pc, 0))
        with m.If(running & stop):
            m.d.sync += [running.eq(0), x_valid.eq(0), trap_r.eq(stop_trap),
                         trap_pc_r.eq(end_pc)]
            m.d.comb += self.done.eq(1)
        m.d.comb += [self.trap.eq(Mux(self.done, stop_trap, trap_r)),
                     self.trap_pc.eq(Mux(self.done, end_pc, trap_pc_r))]
        return m
