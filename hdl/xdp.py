"""The XDP engine: packet buffers, cores, helper units, maps, output queues and the control
port, around the eBPF CPU of hdl/cpu.py. XDPEngine wires the units of hdl/engine/ (a file
each: lane, dispatch, egress, rings, trace, injector, loader, control, counters) around the
memories the lanes share (map memory and its arbiter, the map descriptors).

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
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga.hdl import control as C
from bpfpga.hdl.bus import DualBankRAM
from bpfpga.hdl.config import DEFAULT, EngineConfig
from bpfpga.hdl.engine.control import ControlPort
from bpfpga.hdl.engine.counters import CounterBank
from bpfpga.hdl.engine.ctx import CtxTarget  # noqa: F401 (its home was here)
from bpfpga.hdl.engine.dispatch import Dispatch
from bpfpga.hdl.engine.egress import EgressCrossbar
from bpfpga.hdl.engine.injector import Injector
from bpfpga.hdl.engine.lane import Lane
from bpfpga.hdl.engine.loader import ProgramLoader
from bpfpga.hdl.engine.rings import RingWriter
from bpfpga.hdl.engine.signatures import (PAYLOAD, XDP_ABORTED, XDP_DROP,  # noqa: F401
                                          XDP_PASS, XDP_REDIRECT, XDP_TX, StreamSignature,
                                          WishboneSignature)
from bpfpga.hdl.engine.trace import TraceFIFO
from bpfpga.hdl.maps_hw import MapArbiter


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
        TD = cfg.trace_depth
        events = defaultdict(list)          # counter index -> its event bits, by source

        m.submodules.ctrl = ctrl = ControlPort(cfg)
        wiring.connect(m, wiring.flipped(self.wb), ctrl.wb)

        # ------------------------------------------------------------------ shared memories
        m.submodules.mapmem = mapmem = DualBankRAM(cfg.map_bytes)
        m.submodules.maparb = arb = MapArbiter(N + 1)
        wiring.connect(m, arb.o, mapmem.bus)
        wiring.connect(m, ctrl.mem, getattr(arb, f"i{N}"))

        # the descriptors: 256-bit words in LUT RAM by default (6 logic sites per 16 x 4-bit
        # block; 36 blocks as yosys built them for 16 maps), or (desc_bram, where logic is
        # scarcer than block RAM) four 64-bit words each in block RAM (two DP16KD per core's
        # read port), which the helper unit reads one a cycle; its read is synchronous
        # either way (bpfpga/records.py MAP_DESC)
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
        hd = ctrl.desc
        m.d.comb += [desc_wp.addr.eq(hd.addr[dsh:]), desc_wp.data.eq(hd.wdata.replicate(1 << dsh)),
                     desc_wp.en.eq(Mux(hd.we, 1 << hd.addr[0:dsh], 0)),
                     desc_host_wp.addr.eq(hd.addr), desc_host_wp.data.eq(hd.wdata),
                     desc_host_wp.en.eq(hd.we),
                     desc_rp_wb.addr.eq(hd.addr), hd.rdata.eq(desc_rp_wb.data)]

        m.submodules.loader = loader = ProgramLoader(cfg.pm_depth)
        wiring.connect(m, ctrl.stage, loader.host)
        m.d.comb += [loader.arg.eq(ctrl.ld_arg), loader.check.eq(ctrl.ld_check),
                     loader.commit.eq(ctrl.ld_commit), loader.key.eq(ctrl.ld_key),
                     ctrl.prog_len.eq(loader.prog_len), ctrl.crc.eq(loader.crc),
                     ctrl.commits.eq(loader.commits), ctrl.prog_crc.eq(loader.prog_crc),
                     ctrl.refused.eq(loader.refused), ctrl.commit_busy.eq(loader.commit_busy),
                     ctrl.check_busy.eq(loader.check_busy)]

        # ------------------------------------------------------------------ lanes
        lanes = []
        for n in range(N):
            L = Lane(cfg, n)
            m.submodules[f"lane{n}"] = L
            lanes.append(L)
            wiring.connect(m, L.map, getattr(arb, f"i{n}"))
            desc_rp = desc.read_port()
            m.d.comb += [desc_rp.addr.eq(L.desc_addr), L.desc_data.eq(desc_rp.data)]
            m.d.comb += [L.enable.eq(ctrl.enable), L.capture.eq(ctrl.capture),
                         L.copying.eq(loader.copying), L.budget.eq(ctrl.budget),
                         L.map_len.eq(ctrl.map_len), L.nmaps.eq(ctrl.nmaps),
                         L.prog_len.eq(loader.prog_len), L.pm_we.eq(loader.pm_we),
                         L.pm_addr.eq(loader.pm_addr), L.pm_data.eq(loader.pm_data),
                         L.ktime.eq(ctrl.ktime), L.seed_we.eq(ctrl.seed_we),
                         L.seed.eq(ctrl.seed)]
            for i, f in ((C.C_RUNT, "runt"), (C.C_OVERSIZE, "oversize"),
                         (C.C_BUSY + n, "busy"), (C.C_TAILCALL, "tailcall"),
                         (C.C_PKTS + n, "pkt")):
                events[i].append(getattr(L.ev, f))
            for k in range(5):
                events[C.C_VERDICT + k].append(L.ev.verdict[k])
            for t in range(1, 16):
                events[C.C_TRAP + t].append(L.ev.trap[t])
        running = Cat(L.runs for L in lanes).any()
        m.d.comb += [loader.running.eq(running), ctrl.idle.eq(~running),
                     ctrl.lanes.eq(Cat(L.hold for L in lanes))]

        # ------------------------------------------------------------------ dispatch
        m.submodules.injector = inj = Injector(cfg.inj_words)
        wiring.connect(m, ctrl.inj, inj.host)
        m.d.comb += [inj.wr.eq(ctrl.inj_wr), ctrl.inj_rd.eq(inj.rd)]
        m.submodules.dispatch = disp = Dispatch(P + 1, N)
        for p in range(P):
            wiring.connect(m, wiring.flipped(getattr(self, f"rx{p}")), getattr(disp, f"i{p}"))
        wiring.connect(m, inj.o, getattr(disp, f"i{P}"))
        m.d.comb += disp.inj_port.eq(inj.port)
        for n, L in enumerate(lanes):
            wiring.connect(m, getattr(disp, f"lane{n}"), L.claim)
        for i in range(P + 1):
            events[C.C_RX + i].append(disp.rx[i])
            events[C.C_NOBUF].append(disp.nobuf[i])

        # ------------------------------------------------------------------ egress
        m.submodules.egress = xbar = EgressCrossbar(P, N)
        for n, L in enumerate(lanes):
            wiring.connect(m, L.eg, getattr(xbar, f"l{n}"))
        for p in range(P):
            wiring.connect(m, getattr(xbar, f"o{p}"), wiring.flipped(getattr(self, f"tx{p}")))
            events[C.C_TX + p].append(xbar.tx[p])
        m.submodules.ring = ring = RingWriter(cfg.out_words, N)
        wiring.connect(m, getattr(xbar, f"o{P}"), ring.i)
        wiring.connect(m, ctrl.out, ring.host)
        m.d.comb += [ring.owner.eq(xbar.owner), ctrl.out_wr.eq(ring.wr),
                     ring.rd.eq(ctrl.out_rd)]
        for n, L in enumerate(lanes):
            m.d.comb += ring.hdr[n].eq(L.hdr)
        events[C.C_HOST].append(ring.written)
        events[C.C_HOST_DROP].append(ring.drop)

        # ------------------------------------------------------------------ trace FIFO
        if TD:
            m.submodules.trace = tr = TraceFIFO(TD, N)
            for n, L in enumerate(lanes):
                wiring.connect(m, L.trace, getattr(tr, f"l{n}"))
            wiring.connect(m, ctrl.trace, tr.host)
            m.d.comb += [ctrl.trace_wr.eq(tr.wr), tr.rd.eq(ctrl.trace_rd)]
            events[C.C_TRACE].append(tr.written)
            events[C.C_TRACE_DROP].append(tr.dropped)
        else:
            for L in lanes:
                m.d.comb += L.trace.ack.eq(0)

        # ------------------------------------------------------------------ counters
        m.submodules.counters = cnt = CounterBank({i: len(e) for i, e in events.items()})
        for i, e in events.items():
            m.d.comb += getattr(cnt, f"ev{i}").eq(Cat(*e))
        m.d.comb += [cnt.clear.eq(ctrl.cnt_clear), cnt.rd.eq(ctrl.cnt_rd),
                     cnt.idx.eq(ctrl.cnt_idx), ctrl.cnt_rdata.eq(cnt.rdata)]
        return m
