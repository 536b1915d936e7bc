"""The XDP engine: packet buffers, cores, helper units, maps, output queues and the control
port, around the eBPF CPU of hdl/cpu.py.

    rx<p> --\\                      /-- lane 0: packet buffer, CPU, stack, ctx, helper unit --\\
    inject --+-- dispatch (free lane) -- lane 1 ...                                            +-- tx<p>
                                     \\-- map memory (arbiter: cores, host)                    +-- output ring
    wb (control port, Wishbone B4 classic) -- registers, counters, map descriptors,
        program staging + CRC + commit, inject / output rings, map memory

* Streams (amaranth.lib.stream): 64-bit ``data``, ``keep`` (bytes valid, a prefix, on the last
  beat), ``first``, ``last``. RX is always ready except for the one cycle at a frame's start in
  which it is given a lane; a frame that finds every lane busy is dropped whole and counted
  (C_NOBUF): RX never stalls, a buffer is never shared.
* A lane owns one packet buffer (headroom 256 B, the frame, tailroom 320 B: as the kernel's
  BPF_PROG_TEST_RUN lays it out), one core, its stack and its helper unit. Frames shorter than
  14 bytes are dropped as runts (C_RUNT); longer than the buffer takes (cfg.max_frame), as
  oversize (C_OVERSIZE).
* Programs: every program of the object is linked into one image (host side, see
  sim/rtl_xdp.py): slot 0 is ``jne r2, 0, +L`` (not taken for a packet's first program),
  the entry program follows, then the others, then a table of ``jeq r2, k + 1, entry_k``. A
  tail call ends the run (the helper's ``exit``) and the lane restarts the core with r1 = ctx,
  r2 = k + 1. (The CPU starts at pc 0 only: a start-pc input would remove the trampoline.)
* Verdicts: TX leaves on the port it came in on, REDIRECT on port ifindex - 1 (or the output
  ring when that is no port), PASS goes to the output ring (towards the host), DROP and ABORTED
  nowhere. In CAPTURE mode every result goes to the output ring with its packet (simulation,
  and boards without Ethernet).
* The stack words a program wrote, and the headroom words written below ``data``, are zeroed
  after each packet (only those: a packet costs no clearing it did not cause), so no packet
  sees another's data.
"""
from __future__ import annotations

from collections import defaultdict

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga import memmap
from bpfpga.hdl import control as C
from bpfpga.hdl.bus import DataBusSignature, DualBankRAM, HostMemSignature, WindowRouter
from bpfpga.hdl.config import DEFAULT, EngineConfig
from bpfpga.hdl.cpu import CPU
from bpfpga.hdl.helpers_hw import HelperUnit
from bpfpga.hdl.maps_hw import MapArbiter, hdl_crc_update

PAYLOAD = data.StructLayout({"data": 64, "keep": 8, "first": 1, "last": 1})
StreamSignature = stream.Signature(PAYLOAD)

WishboneSignature = wiring.Signature({
    "cyc": Out(1), "stb": Out(1), "we": Out(1), "sel": Out(4),
    "adr": Out(C.ADR_BITS), "dat_w": Out(32), "dat_r": In(32), "ack": In(1),
})

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)


class CtxTarget(wiring.Component):
    """xdp_md as a read-only data-bus target built from the lane's registers (24 bytes: data,
    data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex), any alignment, two
    cycles like block RAM.

    ``strict``: only what the kernel's verifier lets an XDP program do with its context
    (``__is_valid_xdp_access``: a 4-byte load at a multiple of 4); any other access ends with
    ``err`` (a memory trap). One 32-bit word choice instead of a byte funnel over 24 bytes
    (some 300 logic cells less, for the smallest boards)."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        super().__init__({"bus": In(DataBusSignature), "fields": In(6 * 32)})

    def elaborate(self, platform):
        m = Module()
        b = self.bus
        busy = Signal()
        if self.strict:
            word = Signal(32)
            bad = Signal()
            with m.If(~busy & b.valid):
                m.d.sync += [busy.eq(1), bad.eq((b.size != 2) | (b.addr[0:2] != 0)),
                             word.eq(Array(self.fields.word_select(i, 32) for i in range(6))
                                     [b.addr[2:5]])]
            with m.Elif(busy):
                m.d.sync += busy.eq(0)
            m.d.comb += [b.ready.eq(busy), b.err.eq(busy & bad), b.rdata.eq(word)]
            return m
        off = Signal(5)
        size = Signal(2)
        with m.If(~busy & b.valid):
            m.d.sync += [busy.eq(1), off.eq(b.addr[0:5]), size.eq(b.size)]
        with m.Elif(busy):
            m.d.sync += busy.eq(0)
        vec = Cat(self.fields, Const(0, 64))
        raw = Signal(64)
        m.d.comb += raw.eq((vec >> (off * 8))[0:64])
        mask = Signal(64)
        with m.Switch(size):
            for s in range(4):
                with m.Case(s):
                    m.d.comb += mask.eq((1 << (8 << s)) - 1)
        m.d.comb += [b.ready.eq(busy), b.rdata.eq(raw & mask)]
        return m


def _thermo(m, n):
    """bytes (0..8) -> keep mask"""
    k = Signal(8)
    with m.Switch(n):
        for i in range(9):
            with m.Case(i):
                m.d.comb += k.eq((1 << i) - 1)
    return k


def _popcount_keep(keep):
    """keep (a prefix mask) -> byte count"""
    return sum(keep[i] for i in range(8))


class XDPEngine(wiring.Component):
    def __init__(self, config: EngineConfig = DEFAULT):
        self.cfg = cfg = config
        assert cfg.inj_words & (cfg.inj_words - 1) == 0
        assert cfg.out_words & (cfg.out_words - 1) == 0
        members = {"wb": In(WishboneSignature)}
        for p in range(cfg.ports):
            members[f"rx{p}"] = In(StreamSignature)
            members[f"tx{p}"] = Out(StreamSignature)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        P, N = cfg.ports, cfg.cores
        HOST = P                            # destination index of the output ring
        pw = (cfg.pm_depth - 1).bit_length()
        bumps = defaultdict(list)

        def bump(idx, cond=1):
            # a counter increment where it is written: the enclosing If/State is the condition
            b = Signal(name=f"bump{idx}_{len(bumps[idx])}")
            m.d.comb += b.eq(cond)
            bumps[idx].append(b)

        # ------------------------------------------------------------------ control registers
        enable = Signal()
        capture = Signal()
        budget = Signal(32, init=memmap.INSN_BUDGET)
        map_len = Signal(29)
        nmaps = Signal(8)
        prog_len = Signal(pw + 1)
        commits = Signal(32)
        crc = Signal(32)
        ktime = Signal(64, init=1_000_000_000)
        m.d.sync += ktime.eq(ktime + cfg.ns_per_cycle)
        seed_we = Signal()
        seed = Signal(32)
        clear_counters = Signal()
        cnt_rd = Signal()               # the control port reads counter cnt_host (its index
        cnt_host = Signal(6)            # cnt_idx in the counter RAM, cnt_has: it exists)
        cnt_idx = Signal(6)
        cnt_has = Signal()
        cnt_val = Signal(32)            # the counter's value, the cycle after cnt_rd
        cnt_valid = Signal()

        # ------------------------------------------------------------------ shared memories
        m.submodules.mapmem = mapmem = DualBankRAM(cfg.map_bytes)
        m.submodules.maparb = arb = MapArbiter(N + 1)
        wiring.connect(m, arb.o, mapmem.bus)
        host_mbus = getattr(arb, f"i{N}")

        # the descriptors: 256-bit words in LUT RAM by default (6 logic sites per 16 x 4-bit
        # block; 36 blocks as yosys built them for 16 maps), or (desc_bram, where logic is scarcer than block RAM) four
        # 64-bit words each in block RAM (two DP16KD per core's read port), which the helper
        # unit reads one a cycle; its read is synchronous either way
        DW = cfg.desc_words
        desc = Memory(shape=unsigned(256 // DW), depth=cfg.max_maps * DW, init=[],
                      attrs={"ram_style": "block"} if cfg.desc_bram else {})
        m.submodules.desc = desc
        desc_wp = desc.write_port(granularity=32)
        dsh = {1: 3, 4: 1}[DW]      # 32-bit host words per descriptor word: 1 << dsh
        # the host reads the descriptors back from a copy of its own, one 32-bit word per
        # entry, in block RAM: a second 256-bit read port would be some 64 more LUT-RAM
        # blocks and their 256 output flip-flops, and then an 8:1 word mux
        desc_host = Memory(shape=unsigned(32), depth=8 * cfg.max_maps, init=[],
                           attrs={"ram_style": "block"})
        m.submodules.desc_host = desc_host
        desc_host_wp = desc_host.write_port()
        desc_rp_wb = desc_host.read_port()

        stage = Memory(shape=unsigned(64), depth=cfg.pm_depth, init=[])
        m.submodules.stage = stage
        stage_wp = stage.write_port(granularity=32)
        stage_rp = stage.read_port()
        stage_rp_wb = stage.read_port()

        inj = Memory(shape=unsigned(64), depth=cfg.inj_words, init=[])
        m.submodules.inj = inj
        inj_wp = inj.write_port(granularity=32)
        inj_rp = inj.read_port()
        inj_rp_wb = inj.read_port()
        outr = Memory(shape=unsigned(64), depth=cfg.out_words, init=[])
        m.submodules.outr = outr
        out_wp = outr.write_port()
        out_rp_wb = outr.read_port()

        # program image broadcast to every core
        pm_we = Signal()
        pm_addr = Signal(pw)
        pm_data = Signal(64)
        commit_busy = Signal()

        # ------------------------------------------------------------------ inputs
        inputs = [getattr(self, f"rx{p}") for p in range(P)]
        inj_s = stream.Signature(PAYLOAD).flip().create()     # the injector's stream
        inputs.append(inj_s)
        NI = len(inputs)
        in_state = [Signal(2, name=f"in{i}_state") for i in range(NI)]   # 0 idle 1 lane 2 drop
        in_lane = [Signal(range(max(2, N)), name=f"in{i}_lane") for i in range(NI)]

        # ------------------------------------------------------------------ lanes
        lanes = []
        rxseq = Signal(24)          # frames given a lane, in arrival order
        any_running = Signal()
        running_terms = []
        for n in range(N):
            L = type("Lane", (), {})()
            lanes.append(L)
            cpu = CPU(cfg.pm_depth, target_port=cfg.target_port, frame_bram=cfg.frame_bram,
                      mul_serial=cfg.mul_serial)
            m.submodules[f"cpu{n}"] = cpu
            if cfg.shared_lane_ram:
                # the packet buffer and the stack in one DualBankRAM (one byte funnel and
                # one set of port muxes instead of two: some 900 LUT4): packet bytes at
                # [0, pkt_bytes), the stack at [half, half + STACK_SIZE). The lane's two host
                # users get stand-in bundles muxed onto the one host port below.
                half = 1 << (max(cfg.pkt_bytes, memmap.STACK_SIZE) - 1).bit_length()
                lram = DualBankRAM(2 * half)
                m.submodules[f"lram{n}"] = lram
                stack = type("Half", (), {})()
                pkt = type("Half", (), {})()
                stack.host = HostMemSignature.create(path=(f"l{n}_stack_host",))
                pkt.host = HostMemSignature.create(path=(f"l{n}_pkt_host",))
            else:
                stack = DualBankRAM(memmap.STACK_SIZE)
                m.submodules[f"stack{n}"] = stack
                pkt = DualBankRAM(cfg.pkt_bytes)
                m.submodules[f"pkt{n}"] = pkt
            ctx = CtxTarget(strict=cfg.strict_ctx)
            m.submodules[f"ctx{n}"] = ctx
            router = WindowRouter({memmap.STACK_BASE >> 28: "stack",
                                   memmap.PKT_BASE >> 28: "pkt",
                                   memmap.CTX_BASE >> 28: "ctx",
                                   memmap.MAP_BASE >> 28: "map"})
            m.submodules[f"router{n}"] = router
            hu = HelperUnit(cfg, n)
            m.submodules[f"helper{n}"] = hu
            desc_rp = desc.read_port()
            m.d.comb += [desc_rp.addr.eq(hu.desc_addr), hu.desc_data.eq(desc_rp.data)]
            wiring.connect(m, cpu.helper, hu.helper)
            if cfg.shared_lane_ram:
                # the router's stack and packet buses share address and data (only valid
                # is per target); the window nibble picks the half
                rs, rp, lb_ = router.stack, router.pkt, lram.bus
                m.d.comb += [lb_.valid.eq(rs.valid | rp.valid),
                             lb_.addr.eq(Cat(rs.addr[0:(half - 1).bit_length()],
                                             rs.addr[28:32] == memmap.STACK_BASE >> 28)),
                             lb_.size.eq(rs.size), lb_.we.eq(rs.we), lb_.wdata.eq(rs.wdata),
                             lb_.lock.eq(rs.lock)]
                for t in (rs, rp):
                    m.d.comb += [t.ready.eq(lb_.ready), t.rdata.eq(lb_.rdata),
                                 t.err.eq(lb_.err)]
                # the host port: the packet's users (RX writes, egress reads, headroom
                # clearing) first; the stack cleaner takes the cycles they leave
                pkt_host_use = Signal(name=f"l{n}_pkt_host_use")
                with m.If(pkt_host_use):
                    m.d.comb += [lram.host.addr.eq(pkt.host.addr), lram.host.we.eq(pkt.host.we),
                                 lram.host.wdata.eq(pkt.host.wdata)]
                with m.Else():
                    m.d.comb += [lram.host.addr.eq(stack.host.addr + half // 8),
                                 lram.host.we.eq(stack.host.we),
                                 lram.host.wdata.eq(stack.host.wdata)]
                m.d.comb += pkt.host.rdata.eq(lram.host.rdata)
            else:
                wiring.connect(m, router.stack, stack.bus)
                wiring.connect(m, router.pkt, pkt.bus)
                pkt_host_use = Const(0, 1)
            wiring.connect(m, router.ctx, ctx.bus)
            wiring.connect(m, getattr(router, "map"), getattr(arb, f"i{n}"))
            # the helper unit owns the core's bus while the CPU waits on it
            rb, cb, hb = router.bus, cpu.dbus, hu.bus
            hsel = cpu.helper.req
            for f in ("valid", "addr", "size", "we", "wdata", "lock"):
                m.d.comb += getattr(rb, f).eq(Mux(hsel, getattr(hb, f), getattr(cb, f)))
            m.d.comb += [cb.rdata.eq(rb.rdata), hb.rdata.eq(rb.rdata), cb.err.eq(rb.err),
                         hb.err.eq(rb.err), cb.ready.eq(rb.ready & ~hsel),
                         hb.ready.eq(rb.ready & hsel)]
            m.d.comb += [cpu.pm_we.eq(pm_we), cpu.pm_addr.eq(pm_addr), cpu.pm_data.eq(pm_data),
                         cpu.prog_len.eq(prog_len),
                         cpu.ctx_len.eq(24), cpu.map_len.eq(map_len),
                         cpu.pkt_lo.eq(hu.data_meta), cpu.pkt_hi.eq(hu.data_end),
                         cpu.r1_init.eq(memmap.CTX_BASE),
                         hu.nmaps.eq(nmaps), hu.map_len.eq(map_len), hu.cpu_r0.eq(cpu.r0),
                         hu.ktime.eq(ktime), hu.seed_we.eq(seed_we), hu.seed.eq(seed)]
            in_port = Signal(4, name=f"l{n}_in_port")
            m.d.comb += ctx.fields.eq(Cat(hu.data, hu.data_end, hu.data_meta,
                                          (in_port + 1)[0:32], Const(0, 32), Const(0, 32)))

            # ---- dirty tracking: stack words and headroom words written in this run
            smin = Signal(13, name=f"l{n}_smin", init=memmap.STACK_SIZE)
            hmin = Signal(9, name=f"l{n}_hmin", init=256)
            sb, pb = router.stack, router.pkt
            soff = sb.addr[0:12]
            poff = (pb.addr - memmap.PKT_BASE)[0:16]
            with m.If(sb.valid & sb.we & (soff < smin)):
                m.d.sync += smin.eq(soff)
            with m.If(pb.valid & pb.we & (poff < hmin)):
                m.d.sync += hmin.eq(poff)
            sclean = Signal(name=f"l{n}_sclean")      # stack cleaning in progress
            sptr = Signal(10, name=f"l{n}_sptr")
            with m.If(sclean & ~pkt_host_use):
                m.d.comb += [stack.host.addr.eq(sptr), stack.host.we.eq(0xFF),
                             stack.host.wdata.eq(0)]
                m.d.sync += sptr.eq(sptr + 1)
                with m.If(sptr == memmap.STACK_SIZE // 8 - 1):
                    m.d.sync += [sclean.eq(0), smin.eq(memmap.STACK_SIZE)]

            # ---- lane state
            src = Signal(range(NI), name=f"l{n}_src")
            widx = Signal(10, name=f"l{n}_widx")
            length = Signal(16, name=f"l{n}_len")
            over = Signal(name=f"l{n}_over")
            r0 = Signal(64, name=f"l{n}_r0")
            trapr = Signal(4, name=f"l{n}_trap")
            trap_pc = Signal(32, name=f"l{n}_trap_pc")
            insns = Signal(32, name=f"l{n}_insns")
            cycles = Signal(32, name=f"l{n}_cycles")
            verdict = Signal(3, name=f"l{n}_verdict")
            dest = Signal(range(P + 1), name=f"l{n}_dest")
            eg = stream.Signature(PAYLOAD).create(path=(f"l{n}_eg",))
            eg_req = Signal(name=f"l{n}_eg_req")
            if cfg.shared_lane_ram:
                # the packet side uses the host port: egress (EG_*) reads, RX and headroom
                # writes
                m.d.comb += pkt_host_use.eq(eg_req | pkt.host.we.any())
            free = Signal(name=f"l{n}_free")
            claim = Signal(name=f"l{n}_claim")
            claim_src = Signal(range(NI), name=f"l{n}_claim_src")
            runs = Signal(name=f"l{n}_runs")
            hold = Signal(name=f"l{n}_hold")        # holds a packet (RECV .. EGRESS)
            lseq = Signal(24, name=f"l{n}_seq")
            cur_r2 = Signal(16, name=f"l{n}_r2")    # the trampoline's jumps in this run
            # the CPU's budget for this start: what is left of the packet's instruction budget
            # (tail calls share it, as on the reference machine) plus the trampoline's 1 + r2
            # instructions, which the CPU counts too; a register, kept off the CPU's compare
            lbudget = Signal(32, name=f"l{n}_budget")
            m.d.comb += cpu.budget.eq(lbudget)

            def set_budget(used, r2):
                left = Signal(34, name=f"l{n}_bleft")
                m.d.comb += left.eq(budget + 1 + r2 - used)
                m.d.sync += lbudget.eq(Mux(left[32:34] != 0, 0xFFFF_FFFF, left[0:32]))
            L.__dict__.update(dict(free=free, claim=claim, claim_src=claim_src, eg=eg,
                                   eg_req=eg_req, dest=dest, length=length, verdict=verdict,
                                   r0=r0, trap=trapr, trap_pc=trap_pc, insns=insns,
                                   cycles=cycles, in_port=in_port, hu=hu, hold=hold,
                                   seq=lseq))
            running_terms.append(runs)

            # rx beat mux
            rv = Signal(name=f"l{n}_rv")
            rlast = Signal(name=f"l{n}_rlast")
            rdata = Signal(64, name=f"l{n}_rdata")
            rkeep = Signal(8, name=f"l{n}_rkeep")
            for i, s in enumerate(inputs):
                with m.If(src == i):
                    m.d.comb += [rv.eq(s.valid & (in_state[i] == 1) & (in_lane[i] == n)),
                                 rlast.eq(s.payload.last), rdata.eq(s.payload.data),
                                 rkeep.eq(s.payload.keep)]

            max_words = cfg.max_frame // 8
            start_off = Signal(12, name=f"l{n}_start")
            eg_b = Signal(10, name=f"l{n}_egb")
            eg_nb = Signal(10, name=f"l{n}_egnb")
            eg_ra = Signal(10, name=f"l{n}_egra")
            prev = Signal(64, name=f"l{n}_prev")
            hptr = Signal(6, name=f"l{n}_hptr")
            m.d.comb += free.eq(0)
            # the egress beat's data whatever the state (valid says when it counts)
            m.d.comb += eg.payload.data.eq(
                (Cat(prev, pkt.host.rdata) >> (start_off[0:3] * 8))[0:64])
            with m.FSM(name=f"lane{n}"):
                with m.State("IDLE"):
                    m.d.comb += free.eq(1)
                    set_budget(0, 0)
                    with m.If(claim):
                        m.d.sync += [src.eq(claim_src), widx.eq(0), over.eq(0),
                                     in_port.eq(claim_src), lseq.eq(rxseq)]
                        m.next = "RECV"
                with m.State("RECV"):
                    m.d.comb += hold.eq(1)
                    with m.If(rv):
                        with m.If(widx < max_words):
                            m.d.comb += [pkt.host.addr.eq(memmap.PKT_HEADROOM // 8 + widx),
                                         pkt.host.we.eq(rkeep), pkt.host.wdata.eq(rdata)]
                            m.d.sync += widx.eq(widx + 1)
                        with m.Else():
                            m.d.sync += over.eq(1)
                        with m.If(rlast):
                            nbytes = (widx << 3) + _popcount_keep(rkeep)
                            m.d.sync += length.eq(nbytes)
                            big = over | (widx >= max_words)
                            with m.If(big):
                                bump(C.C_OVERSIZE, 1)
                                m.next = "IDLE"
                            with m.Elif(nbytes < 14):
                                bump(C.C_RUNT, 1)
                                m.next = "IDLE"
                            with m.Else():
                                m.next = "READY"
                with m.State("READY"):
                    m.d.comb += hold.eq(1)
                    with m.If(enable & ~commit_busy & ~sclean):
                        m.d.comb += [hu.new_packet.eq(1), hu.pkt_len.eq(length),
                                     cpu.start.eq(1), cpu.r2_init.eq(0)]
                        m.d.sync += [insns.eq(0), cycles.eq(0), cur_r2.eq(0)]
                        m.next = "RUN"
                with m.State("RUN"):
                    m.d.comb += [hold.eq(1), runs.eq(1)]
                    m.d.sync += cycles.eq(cycles + 1)
                    bump(C.C_BUSY + n, 1)
                    with m.If(cpu.done):
                        # cpu.insns does not count the last instruction yet (the exit; a
                        # trapping one is never counted); the trampoline ran 1 + r2 of them
                        # (jne, then r2 jeq of the tail-call table)
                        used = insns + cpu.insns - cur_r2 - (cpu.trap != 0)
                        set_budget(used, hu.tail_prog)
                        m.d.sync += [insns.eq(used), r0.eq(cpu.r0),
                                     trapr.eq(cpu.trap), trap_pc.eq(cpu.trap_pc)]
                        with m.If(hu.tail_pending & (cpu.trap == 0)):
                            m.d.comb += hu.tail_clear.eq(1)
                            bump(C.C_TAILCALL, 1)
                            m.next = "TAIL"
                        with m.Else():
                            m.next = "DONE"
                with m.State("TAIL"):
                    m.d.comb += [hold.eq(1), runs.eq(1), cpu.start.eq(1),
                                 cpu.r2_init.eq(hu.tail_prog)]
                    m.d.sync += cur_r2.eq(hu.tail_prog)
                    m.d.sync += cycles.eq(cycles + 1)
                    bump(C.C_BUSY + n, 1)
                    m.next = "RUN"
                with m.State("DONE"):
                    m.d.comb += hold.eq(1)
                    v = Signal(3, name=f"l{n}_v")
                    with m.If((trapr != 0) | (r0[0:32] > XDP_REDIRECT)):
                        m.d.comb += v.eq(XDP_ABORTED)
                    with m.Else():
                        m.d.comb += v.eq(r0[0:3])
                    m.d.sync += verdict.eq(v)
                    for k in range(5):
                        bump(C.C_VERDICT + k, v == k)
                    for t in range(1, 16):
                        bump(C.C_TRAP + t, trapr == t)
                    bump(C.C_PKTS + n, 1)
                    # the stack words this run wrote are zeroed while the packet leaves
                    with m.If(smin < memmap.STACK_SIZE):
                        m.d.sync += [sclean.eq(1), sptr.eq(smin[3:])]
                    so = (hu.data_meta - memmap.PKT_BASE)[0:12]
                    ln = (hu.data_end - hu.data_meta)[0:13]
                    m.d.sync += [start_off.eq(so), eg_b.eq(0), eg_nb.eq((ln + 7) >> 3),
                                 length.eq(ln)]
                    redir = hu.redirect
                    with m.If(capture):
                        m.d.sync += dest.eq(HOST)
                        m.next = "EG_P0"
                    with m.Elif(v == XDP_PASS):
                        m.d.sync += dest.eq(HOST)
                        m.next = "EG_P0"
                    with m.Elif(v == XDP_TX):
                        m.d.sync += dest.eq(Mux(in_port < P, in_port, HOST))
                        m.next = "EG_P0"
                    with m.Elif(v == XDP_REDIRECT):
                        m.d.sync += dest.eq(Mux((redir >= 1) & (redir <= P), redir - 1, HOST))
                        m.next = "EG_P0"
                    with m.Else():
                        m.next = "CLEAN"
                # egress: beats of [data_meta, data_end), any alignment
                w0 = start_off[3:12]
                sh = start_off[0:3]
                with m.State("EG_P0"):
                    m.d.comb += [hold.eq(1), eg_req.eq(1), pkt.host.addr.eq(w0)]
                    m.next = "EG_P1"
                with m.State("EG_P1"):
                    m.d.comb += [hold.eq(1), eg_req.eq(1), pkt.host.addr.eq(w0 + 1)]
                    m.d.sync += [prev.eq(pkt.host.rdata), eg_ra.eq(w0 + 1)]
                    m.next = "EG_S"
                with m.State("EG_S"):
                    m.d.comb += [hold.eq(1), eg_req.eq(1)]
                    lastb = eg_b == eg_nb - 1
                    rem = (length - (eg_b << 3))[0:4]
                    m.d.comb += [eg.valid.eq(1),
                                 eg.payload.first.eq(eg_b == 0), eg.payload.last.eq(lastb),
                                 eg.payload.keep.eq(Mux(lastb, _thermo(m, rem), 0xFF))]
                    acc = eg.ready
                    m.d.comb += pkt.host.addr.eq(Mux(acc, eg_ra + 1, eg_ra))
                    with m.If(acc):
                        m.d.sync += [prev.eq(pkt.host.rdata), eg_ra.eq(eg_ra + 1),
                                     eg_b.eq(eg_b + 1)]
                        with m.If(lastb):
                            m.next = "CLEAN"
                # zero the headroom words the run wrote (below the original data)
                with m.State("CLEAN"):
                    m.d.comb += hold.eq(1)
                    with m.If(hmin < 256):
                        m.d.sync += [hptr.eq(hmin[3:]), hmin.eq(256)]
                        m.next = "CLEAN_H"
                    with m.Else():
                        m.next = "IDLE"
                with m.State("CLEAN_H"):
                    m.d.comb += [hold.eq(1), pkt.host.addr.eq(hptr), pkt.host.we.eq(0xFF),
                                 pkt.host.wdata.eq(0)]
                    m.d.sync += hptr.eq(hptr + 1)
                    with m.If(hptr == 31):
                        m.next = "IDLE"
        self._dbg = lanes
        m.d.comb += any_running.eq(Cat(*running_terms).any())
        m.d.sync += rxseq.eq(rxseq + sum(L.claim.as_unsigned() for L in lanes))

        # ------------------------------------------------------------------ dispatch
        taken = [Const(0, 1)] * N
        for i, s in enumerate(inputs):
            with m.Switch(in_state[i]):
                with m.Case(0):
                    m.d.comb += s.ready.eq(0)
                    with m.If(s.valid):
                        bump(C.C_RX + i, 1)
                        got = Const(0, 1)
                        for n, L in enumerate(lanes):
                            can = s.valid & L.free & ~taken[n] & ~got
                            with m.If(s.valid & can):
                                m.d.comb += [L.claim.eq(1), L.claim_src.eq(i)]
                                m.d.sync += [in_state[i].eq(1), in_lane[i].eq(n)]
                            taken[n] = taken[n] | can
                            got = got | can
                        with m.If(~got):
                            m.d.sync += in_state[i].eq(2)
                            bump(C.C_NOBUF, 1)
                with m.Default():
                    m.d.comb += s.ready.eq(1)
                    with m.If(s.valid & s.payload.last):
                        m.d.sync += in_state[i].eq(0)

        # ------------------------------------------------------------------ egress crossbar
        outs = [getattr(self, f"tx{p}") for p in range(P)]
        ring_in = stream.Signature(PAYLOAD).flip().create()       # into the ring writer
        outs.append(ring_in)
        ring_owner = Signal(range(max(2, N)))
        for d, o in enumerate(outs):
            busy = Signal(name=f"o{d}_busy")
            owner = Signal(range(max(2, N)), name=f"o{d}_owner")
            with m.If(~busy):
                for n in reversed(range(N)):
                    with m.If(lanes[n].eg_req & (lanes[n].dest == d)):
                        m.d.sync += [busy.eq(1), owner.eq(n)]
            for n, L in enumerate(lanes):
                with m.If(busy & (owner == n)):
                    m.d.comb += [o.valid.eq(L.eg.valid),
                                 L.eg.ready.eq(o.ready)]
                    with m.If(L.eg.valid & o.ready & L.eg.payload.last):
                        m.d.sync += busy.eq(0)
                        if d < P:
                            bump(C.C_TX + d, 1)
            # the payload is not gated (valid is): the owner's, or the one lane's
            m.d.comb += o.payload.eq(Array(L.eg.payload for L in lanes)[owner] if N > 1
                                     else lanes[0].eg.payload)
            if d == HOST:
                m.d.comb += ring_owner.eq(owner)

        # ------------------------------------------------------------------ output ring writer
        ow = Signal(16)
        orr = Signal(16)
        ow_cur = Signal(16)
        seq = Signal(24)
        used = Signal(16)
        m.d.comb += used.eq(ow - orr)
        OL = Array(lanes)

        def lf(name):
            return Array(getattr(L, name) for L in lanes)[ring_owner]
        hdr = Array([
            Cat(lf("length"), lf("verdict"), Const(0, 1), lf("trap"), lf("in_port"),
                ring_owner.as_unsigned()[0:4] if N > 1 else Const(0, 4), lf("hu").redirect
                if False else Array(L.hu.redirect for L in lanes)[ring_owner]),
            lf("r0"),
            Cat(lf("trap_pc"), lf("insns")),
            Cat(lf("cycles"), Array(L.hu.tailcalls for L in lanes)[ring_owner], lf("seq")),
        ])
        hk = Signal(2)
        odepth = cfg.out_words
        with m.FSM(name="ring"):
            with m.State("IDLE"):
                with m.If(ring_in.valid):
                    need = C.HDR_WORDS + ((lf("length") + 7) >> 3)
                    with m.If(odepth - used >= need):
                        m.d.sync += [hk.eq(0), ow_cur.eq(ow)]
                        m.next = "HDR"
                    with m.Else():
                        bump(C.C_HOST_DROP, 1)
                        m.next = "DROP"
            with m.State("HDR"):
                m.d.comb += [out_wp.addr.eq(ow_cur), out_wp.en.eq(1), out_wp.data.eq(hdr[hk])]
                m.d.sync += [hk.eq(hk + 1), ow_cur.eq(ow_cur + 1)]
                with m.If(hk == C.HDR_WORDS - 1):
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += ring_in.ready.eq(1)
                with m.If(ring_in.valid):
                    m.d.comb += [out_wp.addr.eq(ow_cur), out_wp.en.eq(1),
                                 out_wp.data.eq(ring_in.payload.data)]
                    m.d.sync += ow_cur.eq(ow_cur + 1)
                    with m.If(ring_in.payload.last):
                        m.d.sync += [ow.eq(ow_cur + 1), seq.eq(seq + 1)]
                        bump(C.C_HOST, 1)
                        m.next = "IDLE"
            with m.State("DROP"):
                m.d.comb += ring_in.ready.eq(1)
                with m.If(ring_in.valid & ring_in.payload.last):
                    m.next = "IDLE"

        # ------------------------------------------------------------------ trace FIFO
        # trace_printk records (control.py TRACE_*), one slot of 8 64-bit words each; the
        # helper units queue for the one writer (a record takes 6 cycles). A full FIFO loses
        # the record and counts it: a program never waits for the host.
        TD = cfg.trace_depth
        tw = Signal(16)
        trd = Signal(16)
        if TD:
            assert TD & (TD - 1) == 0, "trace_depth must be a power of two"
            trm = Memory(shape=unsigned(64), depth=TD * C.TRACE_SLOT_WORDS, init=[])
            m.submodules.trace = trm
            tr_wp = trm.write_port()
            tr_rp_wb = trm.read_port()
            tsel = Signal(range(max(2, N)))
            tk = Signal(3)
            tack = Signal()
            treq = Cat(*[L.hu.tr_req for L in lanes])
            tpick = Signal(range(max(2, N)))
            for n in reversed(range(N)):
                with m.If(treq[n]):
                    m.d.comb += tpick.eq(n)
            trec = Array(Cat(L.hu.tr_rec[0:96], L.seq, Const(0, 8), L.hu.tr_rec[128:])
                         for L in lanes)
            for n, L in enumerate(lanes):
                m.d.comb += L.hu.tr_ack.eq(tack & (Mux(treq.any() & (tk == 0), tpick, tsel)
                                                   == n))
            tslot = tw[0:(TD - 1).bit_length()] if TD > 1 else Const(0, 1)
            m.d.comb += tr_wp.data.eq(trec[tsel].word_select((tk - 1)[0:3], 64))
            with m.FSM(name="trace"):
                with m.State("IDLE"):
                    m.d.sync += tk.eq(0)
                    with m.If(treq.any()):
                        with m.If((tw - trd)[0:16] >= TD):
                            m.d.comb += tack.eq(1)
                            bump(C.C_TRACE_DROP, 1)
                        with m.Else():
                            m.d.sync += [tsel.eq(tpick), tk.eq(1)]
                            m.next = "WRITE"
                with m.State("WRITE"):
                    k = (tk - 1)[0:3]
                    m.d.comb += [tr_wp.addr.eq(Cat(k, tslot)), tr_wp.en.eq(1)]
                    m.d.sync += tk.eq(tk + 1)
                    with m.If(tk == C.TRACE_REC_WORDS):
                        m.d.comb += tack.eq(1)
                        m.d.sync += [tw.eq(tw + 1), tk.eq(0)]
                        bump(C.C_TRACE, 1)
                        m.next = "IDLE"
        else:
            for L in lanes:
                m.d.comb += L.hu.tr_ack.eq(0)

        # ------------------------------------------------------------------ injector
        iw = Signal(16)
        ir = Signal(16)
        ip = Signal(16)
        ilen = Signal(16)
        iport = Signal(4)
        ib = Signal(10)
        inb = Signal(10)
        m.d.comb += [inj_rp.addr.eq(ip), inj_s.payload.data.eq(inj_rp.data)]
        with m.FSM(name="inject"):
            with m.State("IDLE"):
                with m.If(iw != ir):
                    m.d.sync += ip.eq(ir)
                    m.next = "HDR0"
            with m.State("HDR0"):
                m.next = "HDR1"          # the header word is being read
            with m.State("HDR1"):
                ln = inj_rp.data[0:16]
                m.d.sync += [ilen.eq(ln), iport.eq(inj_rp.data[16:20]), ib.eq(0),
                             inb.eq(Mux(ln == 0, 1, (ln + 7) >> 3)), ip.eq(ip + 1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.next = "DATA"
            with m.State("DATA"):
                lastb = ib == inb - 1
                rem = (ilen - (ib << 3))[0:4]
                m.d.comb += [inj_s.valid.eq(1),
                             inj_s.payload.first.eq(ib == 0), inj_s.payload.last.eq(lastb),
                             inj_s.payload.keep.eq(Mux(lastb, _thermo(m, Mux(ilen == 0, 0, rem)),
                                                       0xFF))]
                with m.If(inj_s.ready):
                    m.d.comb += inj_rp.addr.eq(ip + 1)
                    m.d.sync += [ip.eq(ip + 1), ib.eq(ib + 1)]
                    with m.If(lastb):
                        m.d.sync += ir.eq(ip + 1)
                        m.next = "IDLE"
        # the injector's frames keep their virtual port: the lane's in_port comes from the
        # header, not from the input index
        for n, L in enumerate(lanes):
            with m.If(L.claim & (L.claim_src == NI - 1)):
                m.d.sync += L.in_port.eq(iport)

        # ------------------------------------------------------------------ program check / commit
        ck_n = Signal(pw + 1)
        ck_i = Signal(pw + 1)
        ck_busy = Signal()
        ck_v = Signal()
        ck_h = Signal()                  # the slot's high half is next into the CRC
        ck_hold = Signal()               # keep the slot on the read port for its high half
        m.d.comb += [stage_rp.addr.eq(ck_i), stage_rp.en.eq(~ck_hold)]
        cm_req = Signal()
        cm_n = Signal(pw + 1)
        cm_v = Signal()
        # a commit carries its key: the hardware computes the CRC of staging [0, n) itself
        # and copies only when it equals the key the host wrote (R_COMMIT_KEY, one use), so
        # a write garbled into R_COMMIT, or a staging word changed after the host's check,
        # commits nothing
        commit_key = Signal(32)
        key_valid = Signal()
        cm_key = Signal(32)
        cm_ok = Signal()                 # key present and n within the program memory
        ck_cm = Signal()                 # the running check is a commit's
        cm_bad = Signal(8)
        prog_crc = Signal(32)
        # 32 bits a cycle (two per slot): half the XOR network of a 64-bit update, and a
        # check of the whole program memory still takes only 2 * pm_depth cycles
        new_crc = hdl_crc_update(m, crc, Mux(ck_h, stage_rp.data[32:], stage_rp.data[:32]))
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(ck_busy):
                    m.d.sync += [ck_i.eq(0), ck_v.eq(0), ck_h.eq(0), crc.eq(0xFFFFFFFF),
                                 ck_cm.eq(0)]
                    m.next = "CHECK"
                with m.Elif(cm_req):
                    m.d.sync += [ck_i.eq(0), ck_v.eq(0), ck_h.eq(0), crc.eq(0xFFFFFFFF),
                                 ck_cm.eq(1), ck_n.eq(cm_n)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                # slot i is presented, slot i-1 is read out: its low half, then (the read
                # port held) its high half
                with m.If(ck_v):
                    m.d.sync += [crc.eq(new_crc), ck_h.eq(~ck_h)]
                    m.d.comb += ck_hold.eq(~ck_h)
                with m.If(~ck_v | ck_h):
                    with m.If(ck_i < ck_n):
                        m.d.sync += [ck_i.eq(ck_i + 1), ck_v.eq(1)]
                    with m.Else():
                        m.next = "CHECK_END"
            with m.State("CHECK_END"):
                m.d.sync += crc.eq(~crc)
                with m.If(ck_cm):
                    m.next = "VERIFY"
                with m.Else():
                    m.d.sync += ck_busy.eq(0)
                    m.next = "IDLE"
            with m.State("VERIFY"):
                with m.If(~cm_ok | (crc != cm_key)):
                    m.d.sync += [cm_bad.eq(cm_bad + 1), cm_req.eq(0)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += commit_busy.eq(1)
                    with m.If(~any_running):
                        m.d.sync += [ck_i.eq(0), cm_v.eq(0)]
                        m.next = "COPY"
            with m.State("COPY"):
                m.d.comb += commit_busy.eq(1)
                with m.If(cm_v):
                    m.d.comb += [pm_we.eq(1), pm_addr.eq(ck_i - 1), pm_data.eq(stage_rp.data)]
                with m.If(ck_i < cm_n):
                    m.d.sync += [ck_i.eq(ck_i + 1), cm_v.eq(1)]
                with m.Else():
                    m.d.sync += [prog_len.eq(cm_n), commits.eq(commits + 1), cm_req.eq(0),
                                 prog_crc.eq(cm_key)]
                    m.next = "IDLE"

        # ------------------------------------------------------------------ control port
        wb = self.wb
        adr = Signal(C.ADR_BITS)
        wdat = Signal(32)
        rdat = Signal(32)
        region = Signal(4)
        off = Signal(16)
        rsel = Signal(4)
        roff = Signal(16)
        m.d.comb += [region.eq(wb.adr[16:20]), off.eq(wb.adr[0:16])]
        m.d.comb += [desc_rp_wb.addr.eq(off), stage_rp_wb.addr.eq(off[1:]),
                     inj_rp_wb.addr.eq(off[1:]), out_rp_wb.addr.eq(off[1:])]
        if TD:
            m.d.comb += tr_rp_wb.addr.eq(off[1:])
        # the host's write ports see address and data all the time; only their enables are
        # decoded (a write port's data gated by the region decode was an AND per bit)
        m.d.comb += [desc_wp.addr.eq(off[dsh:]), desc_wp.data.eq(wb.dat_w.replicate(1 << dsh)),
                     desc_host_wp.addr.eq(off), desc_host_wp.data.eq(wb.dat_w),
                     stage_wp.addr.eq(off[1:]), stage_wp.data.eq(wb.dat_w.replicate(2)),
                     inj_wp.addr.eq(off[1:]), inj_wp.data.eq(wb.dat_w.replicate(2))]
        clr_busy = Signal()
        clr_n = Signal(32)
        clr_a = Signal(32)
        with m.If(clr_busy):
            m.d.comb += [host_mbus.valid.eq(1), host_mbus.addr.eq(memmap.MAP_BASE + clr_a),
                         host_mbus.size.eq(3), host_mbus.we.eq(1), host_mbus.wdata.eq(0)]
            with m.If(host_mbus.ready):
                m.d.sync += clr_a.eq(clr_a + 8)
                with m.If(clr_a + 8 >= clr_n):
                    m.d.sync += clr_busy.eq(0)
        # the write guard: a write lands only inside the window the host opened just before
        # it (R_WIN, then R_WIN_CHECK = ~R_WIN), in order, each word once; anything else is
        # refused, counted and closes the window, so a write whose address was garbled on
        # the link changes nothing
        win_pend = Signal(32)
        win_next = Signal(C.ADR_BITS)
        win_left = Signal(range(C.WIN_MAX + 1))
        wr_ok = Signal(16)
        wr_bad = Signal(8)
        is_win = Signal()
        allowed = Signal()
        m.d.comb += [is_win.eq((region == C.REGS >> 16) &
                               ((off == C.R_WIN) | (off == C.R_WIN_CHECK))),
                     allowed.eq(~is_win & (win_left != 0) & (wb.adr == win_next))]
        status = Cat(~any_running, commit_busy | cm_req, ck_busy, clr_busy, Const(0, 4),
                     Cat(*[L.hold for L in lanes]))
        info = Const(N, 8) | (Const(P, 8) << 8) | (Const(pw, 8) << 16) | (Const(cfg.max_maps, 8) << 24)
        regs_r = {C.R_IDENT: C.IDENT, C.R_VERSION: C.VERSION, C.R_INFO: info,
                  C.R_MAP_BYTES: cfg.map_bytes, C.R_PKT_BYTES: cfg.pkt_bytes,
                  C.R_INJ_WORDS: cfg.inj_words, C.R_OUT_WORDS: cfg.out_words,
                  C.R_NS_PER_CYCLE: cfg.ns_per_cycle,
                  C.R_CTRL: Cat(enable, capture), C.R_STATUS: status,
                  C.R_PROG_LEN: prog_len, C.R_BUDGET: budget, C.R_MAP_LEN: map_len,
                  C.R_NMAPS: nmaps, C.R_CRC: crc, C.R_COMMITS: commits,
                  C.R_INJ_WR: iw, C.R_INJ_RD: ir, C.R_OUT_WR: ow, C.R_OUT_RD: orr,
                  C.R_KTIME_LO: ktime[0:32], C.R_KTIME_HI: ktime[32:64],
                  C.R_TRACE_DEPTH: cfg.trace_depth, C.R_TRACE_WR: tw, C.R_TRACE_RD: trd,
                  C.R_GUARD: Cat(wr_ok, wr_bad, cm_bad), C.R_PROG_CRC: prog_crc,
                  C.R_MAP_TYPES: cfg.map_type_mask(),
                  **{C.R_HELPERS0 + k: w for k, w in enumerate(cfg.helper_masks())}}
        mapdat = Signal(32)
        m.d.comb += cnt_host.eq(off[0:6])
        m.d.sync += cnt_valid.eq(cnt_has)
        # the register read mux is registered at the request (IDLE), so the acknowledge
        # cycle has only the region mux between flip-flops / block RAM and dat_r; registers
        # read as zero, as before, above the 64 register offsets
        reg_q = Signal(32)
        reg_now = Signal(32)
        with m.Switch(off[0:6]):
            for k, v in regs_r.items():
                with m.Case(k):
                    m.d.comb += reg_now.eq(v)
        m.d.sync += reg_q.eq(Mux(off[6:] == 0, reg_now, 0))
        with m.FSM(name="wb"):
            with m.State("IDLE"):
                m.d.comb += cnt_rd.eq(wb.cyc & wb.stb & ~wb.we & (region == C.COUNTERS >> 16))
                with m.If(wb.cyc & wb.stb):
                    m.d.sync += [rsel.eq(region), roff.eq(off), adr.eq(wb.adr),
                                 wdat.eq(wb.dat_w)]
                    with m.If(wb.we & is_win):
                        with m.If(off == C.R_WIN):
                            m.d.sync += [win_pend.eq(wb.dat_w), win_left.eq(0)]
                        with m.Elif((wb.dat_w == ~win_pend) &
                                    (win_pend[28:32] == C.WIN_TAG)):
                            m.d.sync += [win_next.eq(win_pend[0:20]),
                                         win_left.eq(win_pend[20:28] + 1), win_pend.eq(0)]
                        with m.Else():
                            m.d.sync += [win_left.eq(0), win_pend.eq(0), wr_bad.eq(wr_bad + 1)]
                    with m.Elif(wb.we & allowed):
                        m.d.sync += [win_next.eq(win_next + 1), win_left.eq(win_left - 1),
                                     wr_ok.eq(wr_ok + 1)]
                    with m.Elif(wb.we):
                        m.d.sync += [win_left.eq(0), wr_bad.eq(wr_bad + 1)]
                    with m.If(wb.adr[19] & (~wb.we | allowed)):
                        m.next = "MAP"
                    with m.Else():
                        m.next = "ACK"
                        with m.If(wb.we & allowed):
                            with m.Switch(region):
                                with m.Case(C.REGS >> 16):
                                    with m.Switch(off):
                                        with m.Case(C.R_CTRL):
                                            m.d.sync += [enable.eq(wb.dat_w[0]),
                                                         capture.eq(wb.dat_w[1])]
                                            m.d.comb += clear_counters.eq(wb.dat_w[2])
                                        with m.Case(C.R_BUDGET):
                                            m.d.sync += budget.eq(wb.dat_w)
                                        with m.Case(C.R_MAP_LEN):
                                            m.d.sync += map_len.eq(wb.dat_w)
                                        with m.Case(C.R_NMAPS):
                                            m.d.sync += nmaps.eq(wb.dat_w)
                                        with m.Case(C.R_CHECK):
                                            with m.If(~cm_req):     # not under a commit
                                                m.d.sync += [ck_n.eq(wb.dat_w),
                                                             ck_busy.eq(1)]
                                        with m.Case(C.R_COMMIT):
                                            m.d.sync += key_valid.eq(0)
                                            with m.If(~cm_req):
                                                m.d.sync += [
                                                    cm_n.eq(wb.dat_w), cm_req.eq(1),
                                                    cm_key.eq(commit_key),
                                                    cm_ok.eq(key_valid &
                                                             (wb.dat_w <= cfg.pm_depth))]
                                            with m.Else():
                                                m.d.sync += cm_bad.eq(cm_bad + 1)
                                        with m.Case(C.R_COMMIT_KEY):
                                            m.d.sync += [commit_key.eq(wb.dat_w),
                                                         key_valid.eq(1)]
                                        with m.Case(C.R_INJ_WR):
                                            m.d.sync += iw.eq(wb.dat_w)
                                        with m.Case(C.R_OUT_RD):
                                            m.d.sync += orr.eq(wb.dat_w)
                                        with m.Case(C.R_TRACE_RD):
                                            m.d.sync += trd.eq(wb.dat_w)
                                        with m.Case(C.R_MAPCLR):
                                            m.d.sync += [clr_n.eq(wb.dat_w), clr_a.eq(0),
                                                         clr_busy.eq(wb.dat_w != 0)]
                                        with m.Case(C.R_SEED):
                                            m.d.comb += [seed_we.eq(1), seed.eq(wb.dat_w)]
                                with m.Case(C.MAPDESC >> 16):
                                    m.d.comb += [desc_wp.en.eq(1 << off[0:dsh]),
                                                 desc_host_wp.en.eq(1)]
                                with m.Case(C.PM_STAGE >> 16):
                                    m.d.comb += stage_wp.en.eq(1 << off[0])
                                with m.Case(C.INJ_RING >> 16):
                                    m.d.comb += inj_wp.en.eq(1 << off[0])
            with m.State("MAP"):
                m.d.comb += [host_mbus.valid.eq(1),
                             host_mbus.addr.eq(memmap.MAP_BASE + (adr[0:19] << 2)),
                             host_mbus.size.eq(2), host_mbus.we.eq(wb.we),
                             host_mbus.wdata.eq(wdat)]
                with m.If(host_mbus.ready):
                    m.d.sync += mapdat.eq(host_mbus.rdata[0:32])
                    m.next = "MAPACK"
            with m.State("MAPACK"):
                m.d.comb += [wb.ack.eq(1), wb.dat_r.eq(mapdat)]
                m.next = "IDLE"
            with m.State("ACK"):
                m.d.comb += wb.ack.eq(1)
                with m.Switch(rsel):
                    with m.Case(C.REGS >> 16):
                        m.d.comb += rdat.eq(reg_q)
                    with m.Case(C.COUNTERS >> 16):
                        m.d.comb += rdat.eq(Mux(cnt_valid, cnt_val, 0))
                    with m.Case(C.MAPDESC >> 16):
                        m.d.comb += rdat.eq(desc_rp_wb.data)
                    with m.Case(C.PM_STAGE >> 16):
                        m.d.comb += rdat.eq(stage_rp_wb.data.word_select(roff[0], 32))
                    with m.Case(C.INJ_RING >> 16):
                        m.d.comb += rdat.eq(inj_rp_wb.data.word_select(roff[0], 32))
                    with m.Case(C.OUT_RING >> 16):
                        m.d.comb += rdat.eq(out_rp_wb.data.word_select(roff[0], 32))
                    if TD:
                        with m.Case(C.TRACE >> 16):
                            m.d.comb += rdat.eq(tr_rp_wb.data.word_select(roff[0], 32))
                m.d.comb += wb.dat_r.eq(rdat)
                m.next = "IDLE"

        # ------------------------------------------------------------------ counters
        # The counters live in one small RAM, not in some forty 32-bit adders and a 64:1
        # read mux: each counter has a small delta register its events add to, and a
        # scanner folds one delta per cycle into its RAM word (read, add, write back: a
        # counter is visited every U cycles, U = the counters this configuration bumps, a
        # little more while the host reads). A host read returns the RAM word plus the
        # pending delta, through the same adder, so it is exact. CLEAR zeroes the deltas
        # and marks every word stale (read as zero until the scanner rewrites it).
        used = sorted(i for i in bumps if bumps[i])
        U = len(used)
        if U:
            cmem = Memory(shape=unsigned(32), depth=max(2, U), init=[])
            m.submodules.counters = cmem
            c_wp = cmem.write_port()
            c_rp = cmem.read_port(transparent_for=(c_wp,))
            # a counter is visited at least every 3U/2 cycles (a host read takes the RAM
            # port at most one cycle in three): its delta holds that many cycles of events
            deltas = [Signal(range(2 * U * len(bumps[i]) + 1), name=f"cnt{i}_delta")
                      for i in used]
            stale = Signal(U)
            sk = Signal(range(max(2, U)))           # the word the scanner reads next
            s_v = Signal()
            s_k = Signal(range(max(2, U)))
            h_v = Signal()
            h_k = Signal(range(max(2, U)))
            m.d.comb += c_rp.addr.eq(Mux(cnt_rd, cnt_idx, sk))
            m.d.sync += [s_v.eq(~cnt_rd), s_k.eq(sk), h_v.eq(cnt_rd), h_k.eq(cnt_idx)]
            with m.If(~cnt_rd):
                m.d.sync += sk.eq(Mux(sk == U - 1, 0, sk + 1))
            sel = Mux(h_v, h_k, s_k)
            base = Mux(stale.bit_select(sel, 1), 0, c_rp.data)
            m.d.comb += cnt_val.eq(base + Array(deltas)[sel])
            m.d.comb += [c_wp.addr.eq(s_k), c_wp.data.eq(cnt_val), c_wp.en.eq(s_v)]
            for k, (i, d) in enumerate(zip(used, deltas)):
                inc = sum(Value.cast(t).as_unsigned() for t in bumps[i])
                with m.If(clear_counters):
                    m.d.sync += d.eq(0)
                with m.Elif(s_v & (s_k == k)):
                    m.d.sync += d.eq(inc)
                with m.Else():
                    m.d.sync += d.eq(d + inc)
            with m.If(clear_counters):
                m.d.sync += stale.eq(-1)
            with m.Elif(s_v):
                m.d.sync += stale.bit_select(s_k, 1).eq(0)
            # host index -> RAM word (-1: a counter this configuration never bumps)
            with m.Switch(cnt_host):
                for k, i in enumerate(used):
                    with m.Case(i):
                        m.d.comb += [cnt_idx.eq(k), cnt_has.eq(1)]
        return m
