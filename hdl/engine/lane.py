"""A lane: one packet buffer, one eBPF core with its stack, context and helper unit, and the
packet's way through them (receive, run, tail calls, verdict, egress, cleaning)."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bpfpga import memmap
from bpfpga.hdl import layouts
from bpfpga.hdl.bus import DataBusSignature, DualBankRAM, HostMemSignature, WindowRouter
from bpfpga.hdl.cpu import CPU
from bpfpga.hdl.helpers_hw import HelperUnit

from .ctx import CtxTarget
from .signatures import (XDP_ABORTED, XDP_PASS, XDP_REDIRECT, XDP_TX, ClaimSignature,
                         EgressSignature, TraceSignature, popcount_keep, thermo)

# what a lane counts (the engine maps each onto its counter, hdl/control.py C_*): one bit
# per event in the cycle it happens; verdict and trap one-hot, in the cycle the run ends
LANE_EVENTS = data.StructLayout({
    "runt": 1, "oversize": 1, "busy": 1, "tailcall": 1, "pkt": 1,
    "verdict": 5, "trap": 16,
})


class Lane(wiring.Component):
    """Lane ``n`` of the engine ``cfg``. A frame arrives on ``claim`` (taken while ``free``)
    into the packet buffer at the headroom; runts and oversize frames are dropped. Once
    ``enable`` and no commit is ``copying``, the core runs the image (r1 = ctx, r2 = 0; a
    tail call restarts it with r2 = k + 1, the instruction budget shared). The verdict picks
    the destination on ``eg`` (TX: the ingress port; REDIRECT: port ifindex - 1; PASS, or
    every packet under ``capture``: the output ring, index ``cfg.ports``), ``hdr`` holds the
    result for the ring. Meanwhile the stack words and headroom words the run wrote are
    zeroed, only those. ``hold`` from the claim until the lane is free again, ``runs``
    while the core runs. ``map`` is the lane's path to the shared map memory, ``desc_*`` to
    the map descriptors, ``trace`` to the trace FIFO."""

    def __init__(self, cfg, n: int):
        self.cfg, self.n = cfg, n
        pw = (cfg.pm_depth - 1).bit_length()
        DW = cfg.desc_words
        super().__init__({
            "claim": In(ClaimSignature),
            "eg": Out(EgressSignature(cfg.ports)),
            "hdr": Out(layouts.RING_HDR),
            "hold": Out(1), "runs": Out(1),
            "ev": Out(LANE_EVENTS),
            "map": Out(DataBusSignature),
            "desc_addr": Out(range(cfg.max_maps * DW)), "desc_data": In(256 // DW),
            "trace": Out(TraceSignature),
            "enable": In(1), "capture": In(1), "copying": In(1),
            "budget": In(32), "map_len": In(29), "nmaps": In(8), "prog_len": In(pw + 1),
            "pm_we": In(1), "pm_addr": In(pw), "pm_data": In(64),
            "ktime": In(64), "seed_we": In(1), "seed": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, n = self.cfg, self.n
        P = cfg.ports
        HOST = P                            # destination index of the output ring
        cpu = CPU(cfg.pm_depth, target_port=cfg.target_port, frame_bram=cfg.frame_bram,
                  mul_serial=cfg.mul_serial)
        m.submodules.cpu = cpu
        if cfg.shared_lane_ram:
            # the packet buffer and the stack in one DualBankRAM (one byte funnel and one set
            # of port muxes instead of two: some 900 LUT4): packet bytes at [0, pkt_bytes),
            # the stack at [half, half + STACK_SIZE). The lane's two host users get stand-in
            # bundles muxed onto the one host port below.
            half = 1 << (max(cfg.pkt_bytes, memmap.STACK_SIZE) - 1).bit_length()
            lram = DualBankRAM(2 * half)
            m.submodules.lram = lram
            stack_host = HostMemSignature.create(path=("stack_host",))
            pkt_host = HostMemSignature.create(path=("pkt_host",))
        else:
            stack = DualBankRAM(memmap.STACK_SIZE)
            m.submodules.stack = stack
            pkt = DualBankRAM(cfg.pkt_bytes)
            m.submodules.pkt = pkt
            stack_host, pkt_host = stack.host, pkt.host
        ctx = CtxTarget(strict=cfg.strict_ctx)
        m.submodules.ctx = ctx
        router = WindowRouter({memmap.STACK_BASE >> 28: "stack",
                               memmap.PKT_BASE >> 28: "pkt",
                               memmap.CTX_BASE >> 28: "ctx",
                               memmap.MAP_BASE >> 28: "map"})
        m.submodules.router = router
        hu = HelperUnit(cfg, n)
        m.submodules.helper = hu
        m.d.comb += [self.desc_addr.eq(hu.desc_addr), hu.desc_data.eq(self.desc_data)]
        wiring.connect(m, cpu.helper, hu.helper)
        if cfg.shared_lane_ram:
            # the router's stack and packet buses share address and data (only valid is per
            # target); the window nibble picks the half
            rs, rp, lb_ = router.stack, router.pkt, lram.bus
            m.d.comb += [lb_.valid.eq(rs.valid | rp.valid),
                         lb_.addr.eq(Cat(rs.addr[0:(half - 1).bit_length()],
                                         rs.addr[28:32] == memmap.STACK_BASE >> 28)),
                         lb_.size.eq(rs.size), lb_.we.eq(rs.we), lb_.wdata.eq(rs.wdata),
                         lb_.lock.eq(rs.lock)]
            for t in (rs, rp):
                m.d.comb += [t.ready.eq(lb_.ready), t.rdata.eq(lb_.rdata), t.err.eq(lb_.err)]
            # the host port: the packet's users (RX writes, egress reads, headroom clearing)
            # first; the stack cleaner takes the cycles they leave
            pkt_host_use = Signal()
            with m.If(pkt_host_use):
                m.d.comb += [lram.host.addr.eq(pkt_host.addr), lram.host.we.eq(pkt_host.we),
                             lram.host.wdata.eq(pkt_host.wdata)]
            with m.Else():
                m.d.comb += [lram.host.addr.eq(stack_host.addr + half // 8),
                             lram.host.we.eq(stack_host.we),
                             lram.host.wdata.eq(stack_host.wdata)]
            m.d.comb += pkt_host.rdata.eq(lram.host.rdata)
        else:
            wiring.connect(m, router.stack, stack.bus)
            wiring.connect(m, router.pkt, pkt.bus)
            pkt_host_use = Const(0, 1)
        wiring.connect(m, router.ctx, ctx.bus)
        wiring.connect(m, getattr(router, "map"), wiring.flipped(self.map))
        # the helper unit owns the core's bus while the CPU waits on it
        rb, cb, hb = router.bus, cpu.dbus, hu.bus
        hsel = cpu.helper.req
        for f in ("valid", "addr", "size", "we", "wdata", "lock"):
            m.d.comb += getattr(rb, f).eq(Mux(hsel, getattr(hb, f), getattr(cb, f)))
        m.d.comb += [cb.rdata.eq(rb.rdata), hb.rdata.eq(rb.rdata), cb.err.eq(rb.err),
                     hb.err.eq(rb.err), cb.ready.eq(rb.ready & ~hsel),
                     hb.ready.eq(rb.ready & hsel)]
        m.d.comb += [cpu.pm_we.eq(self.pm_we), cpu.pm_addr.eq(self.pm_addr),
                     cpu.pm_data.eq(self.pm_data), cpu.prog_len.eq(self.prog_len),
                     cpu.ctx_len.eq(24), cpu.map_len.eq(self.map_len),
                     cpu.pkt_lo.eq(hu.data_meta), cpu.pkt_hi.eq(hu.data_end),
                     cpu.r1_init.eq(memmap.CTX_BASE),
                     hu.nmaps.eq(self.nmaps), hu.map_len.eq(self.map_len),
                     hu.cpu_r0.eq(cpu.r0), hu.ktime.eq(self.ktime),
                     hu.seed_we.eq(self.seed_we), hu.seed.eq(self.seed)]
        in_port = Signal(4)
        m.d.comb += ctx.fields.eq(Cat(hu.data, hu.data_end, hu.data_meta,
                                      (in_port + 1)[0:32], Const(0, 32), Const(0, 32)))

        # ---- dirty tracking: stack words and headroom words written in this run
        smin = Signal(13, init=memmap.STACK_SIZE)
        hmin = Signal(9, init=256)
        sb, pb = router.stack, router.pkt
        soff = sb.addr[0:12]
        poff = (pb.addr - memmap.PKT_BASE)[0:16]
        with m.If(sb.valid & sb.we & (soff < smin)):
            m.d.sync += smin.eq(soff)
        with m.If(pb.valid & pb.we & (poff < hmin)):
            m.d.sync += hmin.eq(poff)
        sclean = Signal()      # stack cleaning in progress
        sptr = Signal(10)
        with m.If(sclean & ~pkt_host_use):
            m.d.comb += [stack_host.addr.eq(sptr), stack_host.we.eq(0xFF),
                         stack_host.wdata.eq(0)]
            m.d.sync += sptr.eq(sptr + 1)
            with m.If(sptr == memmap.STACK_SIZE // 8 - 1):
                m.d.sync += [sclean.eq(0), smin.eq(memmap.STACK_SIZE)]

        # ---- lane state
        widx = Signal(10)
        length = Signal(16)
        over = Signal()
        r0 = Signal(64)
        trapr = Signal(4)
        trap_pc = Signal(32)
        insns = Signal(32)
        cycles = Signal(32)
        verdict = Signal(3)
        lseq = Signal(24)
        h = self.hdr
        m.d.comb += [h.len.eq(length), h.verdict.eq(verdict), h.trap.eq(trapr),
                     h.in_port.eq(in_port), h.core.eq(n), h.redirect.eq(hu.redirect),
                     h.r0.eq(r0), h.trap_pc.eq(trap_pc), h.insns.eq(insns),
                     h.cycles.eq(cycles), h.tailcalls.eq(hu.tailcalls), h.seq.eq(lseq)]
        eg = self.eg.s
        dest = self.eg.dest
        eg_req = self.eg.req
        if cfg.shared_lane_ram:
            # the packet side uses the host port: egress (EG_*) reads, RX and headroom writes
            m.d.comb += pkt_host_use.eq(eg_req | pkt_host.we.any())
        free = self.claim.free
        hold, runs = self.hold, self.runs
        ev = self.ev
        cur_r2 = Signal(16)    # the trampoline's jumps in this run
        # the CPU's budget for this start: what is left of the packet's instruction budget
        # (tail calls share it, as on the reference machine) plus the trampoline's 1 + r2
        # instructions, which the CPU counts too; a register, kept off the CPU's compare
        lbudget = Signal(32)
        m.d.comb += cpu.budget.eq(lbudget)

        def set_budget(used, r2):
            left = Signal(34, name="bleft")
            m.d.comb += left.eq(self.budget + 1 + r2 - used)
            m.d.sync += lbudget.eq(Mux(left[32:34] != 0, 0xFFFF_FFFF, left[0:32]))

        # the trace record is the helper's with the frame's seq
        m.d.comb += [self.trace.req.eq(hu.tr_req), hu.tr_ack.eq(self.trace.ack),
                     self.trace.rec.eq(hu.tr_rec), self.trace.rec.seq.eq(lseq)]

        rx = self.claim.rx
        rv, rlast, rdata, rkeep = rx.valid, rx.payload.last, rx.payload.data, rx.payload.keep
        max_words = cfg.max_frame // 8
        start_off = Signal(12)
        eg_b = Signal(10)
        eg_nb = Signal(10)
        eg_ra = Signal(10)
        prev = Signal(64)
        hptr = Signal(6)
        m.d.comb += free.eq(0)
        # the egress beat's data whatever the state (valid says when it counts)
        m.d.comb += eg.payload.data.eq(
            (Cat(prev, pkt_host.rdata) >> (start_off[0:3] * 8))[0:64])
        with m.FSM(name="lane"):
            with m.State("IDLE"):
                m.d.comb += free.eq(1)
                set_budget(0, 0)
                with m.If(self.claim.take):
                    m.d.sync += [widx.eq(0), over.eq(0), in_port.eq(self.claim.port),
                                 lseq.eq(self.claim.seq)]
                    m.next = "RECV"
            with m.State("RECV"):
                m.d.comb += hold.eq(1)
                with m.If(rv):
                    with m.If(widx < max_words):
                        m.d.comb += [pkt_host.addr.eq(memmap.PKT_HEADROOM // 8 + widx),
                                     pkt_host.we.eq(rkeep), pkt_host.wdata.eq(rdata)]
                        m.d.sync += widx.eq(widx + 1)
                    with m.Else():
                        m.d.sync += over.eq(1)
                    with m.If(rlast):
                        nbytes = (widx << 3) + popcount_keep(rkeep)
                        m.d.sync += length.eq(nbytes)
                        big = over | (widx >= max_words)
                        with m.If(big):
                            m.d.comb += ev.oversize.eq(1)
                            m.next = "IDLE"
                        with m.Elif(nbytes < 14):
                            m.d.comb += ev.runt.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "READY"
            with m.State("READY"):
                m.d.comb += hold.eq(1)
                with m.If(self.enable & ~self.copying & ~sclean):
                    m.d.comb += [hu.new_packet.eq(1), hu.pkt_len.eq(length),
                                 cpu.start.eq(1), cpu.r2_init.eq(0)]
                    m.d.sync += [insns.eq(0), cycles.eq(0), cur_r2.eq(0)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [hold.eq(1), runs.eq(1), ev.busy.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(cpu.done):
                    # cpu.insns does not count the last instruction yet (the exit; a trapping
                    # one is never counted); the trampoline ran 1 + r2 of them (jne, then r2
                    # jeq of the tail-call table)
                    used = insns + cpu.insns - cur_r2 - (cpu.trap != 0)
                    set_budget(used, hu.tail_prog)
                    m.d.sync += [insns.eq(used), r0.eq(cpu.r0),
                                 trapr.eq(cpu.trap), trap_pc.eq(cpu.trap_pc)]
                    with m.If(hu.tail_pending & (cpu.trap == 0)):
                        m.d.comb += [hu.tail_clear.eq(1), ev.tailcall.eq(1)]
                        m.next = "TAIL"
                    with m.Else():
                        m.next = "DONE"
            with m.State("TAIL"):
                m.d.comb += [hold.eq(1), runs.eq(1), cpu.start.eq(1),
                             cpu.r2_init.eq(hu.tail_prog), ev.busy.eq(1)]
                m.d.sync += [cur_r2.eq(hu.tail_prog), cycles.eq(cycles + 1)]
                m.next = "RUN"
            with m.State("DONE"):
                m.d.comb += hold.eq(1)
                v = Signal(3)
                with m.If((trapr != 0) | (r0[0:32] > XDP_REDIRECT)):
                    m.d.comb += v.eq(XDP_ABORTED)
                with m.Else():
                    m.d.comb += v.eq(r0[0:3])
                m.d.sync += verdict.eq(v)
                m.d.comb += [ev.verdict.eq(Cat(v == k for k in range(5))),
                             ev.trap.eq(Cat(trapr == t for t in range(16))), ev.pkt.eq(1)]
                # the stack words this run wrote are zeroed while the packet leaves
                with m.If(smin < memmap.STACK_SIZE):
                    m.d.sync += [sclean.eq(1), sptr.eq(smin[3:])]
                so = (hu.data_meta - memmap.PKT_BASE)[0:12]
                ln = (hu.data_end - hu.data_meta)[0:13]
                m.d.sync += [start_off.eq(so), eg_b.eq(0), eg_nb.eq((ln + 7) >> 3),
                             length.eq(ln)]
                redir = hu.redirect
                with m.If(self.capture):
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
            with m.State("EG_P0"):
                m.d.comb += [hold.eq(1), eg_req.eq(1), pkt_host.addr.eq(w0)]
                m.next = "EG_P1"
            with m.State("EG_P1"):
                m.d.comb += [hold.eq(1), eg_req.eq(1), pkt_host.addr.eq(w0 + 1)]
                m.d.sync += [prev.eq(pkt_host.rdata), eg_ra.eq(w0 + 1)]
                m.next = "EG_S"
            with m.State("EG_S"):
                m.d.comb += [hold.eq(1), eg_req.eq(1)]
                lastb = eg_b == eg_nb - 1
                rem = (length - (eg_b << 3))[0:4]
                m.d.comb += [eg.valid.eq(1),
                             eg.payload.first.eq(eg_b == 0), eg.payload.last.eq(lastb),
                             eg.payload.keep.eq(Mux(lastb, thermo(m, rem), 0xFF))]
                acc = eg.ready
                m.d.comb += pkt_host.addr.eq(Mux(acc, eg_ra + 1, eg_ra))
                with m.If(acc):
                    m.d.sync += [prev.eq(pkt_host.rdata), eg_ra.eq(eg_ra + 1),
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
                m.d.comb += [hold.eq(1), pkt_host.addr.eq(hptr), pkt_host.we.eq(0xFF),
                             pkt_host.wdata.eq(0)]
                m.d.sync += hptr.eq(hptr + 1)
                with m.If(hptr == 31):
                    m.next = "IDLE"
        return m
