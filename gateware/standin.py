"""A stand-in XDP engine: the shape the SoC expects, built from the eBPF CPU alone.

It exists so the board flow (SoC, synthesis, place and route, timing) can be developed and
measured before the real engine of issue 5 (hdl/xdp*.py) lands, and it is replaced by it as
soon as that exists (gateware/engine.py picks the real one when it is importable). It is a
minimal XDP machine, not the engine:

* one lane per core: the CPU with its stack, packet, ctx and map RAMs (hdl/testtop.py's
  CPUTestTop, imported); port ``p`` feeds lane ``p % cores``; a lane serving several ports
  takes whole packets from the lowest-numbered port with one waiting;
* a packet is written at ``PKT_BASE + 256`` (the kernel's headroom), ``xdp_md.data`` and
  ``data_end`` are written into ctx, the program runs with r1 = ctx; ``XDP_TX`` sends the
  (possibly rewritten) packet out of the port it came in on; every other verdict drops it;
  frames longer than the buffer are cut, counted and dropped;
* no helpers beyond the CPU test top's stub, no dispatch across cores, no PASS path, no map
  access from the host: those are the engine's.

The control port is a Wishbone B4 classic slave (32-bit data, word addresses); its registers
are listed in :data:`REGISTERS` and in docs/boards.md.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfpga import memmap

PAYLOAD = data.StructLayout({"data": 8, "first": 1, "last": 1})

WishboneSignature = wiring.Signature({
    "cyc": Out(1), "stb": Out(1), "we": Out(1), "sel": Out(4),
    "adr": Out(14), "dat_w": Out(32), "dat_r": In(32), "ack": In(1),
})



def engine_members(ports: int, payload) -> dict:
    """The engine contract's members (gateware/engine.py): the Wishbone control port and one
    stream pair rx<p>/tx<p> of ``payload`` per port."""
    members = {"wb": In(WishboneSignature)}
    for p in range(ports):
        members[f"rx{p}"] = In(stream.Signature(payload))
        members[f"tx{p}"] = Out(stream.Signature(payload))
    return members


IDENT = 0x62706653  # "bpfS": the stand-in
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)

REGISTERS = {
    0x000: "IDENT (r) 0x62706653, the stand-in engine",
    0x001: "INFO (r) cores | ports << 8 | log2(pm_depth) << 16",
    0x002: "PM_ADDR (rw) program slot for the next PM_HI write",
    0x003: "PM_LO (w) low 32 bits of the slot",
    0x004: "PM_HI (w) high 32 bits; writes the slot into every lane, PM_ADDR += 1",
    0x005: "PROG_LEN (rw) valid slots",
    0x006: "BUDGET (rw) instruction budget per packet",
    0x007: "ENABLE (rw) bit 0: lanes take packets",
    0x010: "lane n at 0x010 + 8n: STATUS (busy | trap << 4), R0_LO, R0_HI, INSNS, CYCLES, "
           "START (w: run with r1 = value)",
    0x100: "counters 0x100 + verdict (ABORTED, DROP, PASS, TX, REDIRECT), 0x105 traps, "
           "0x106 truncated frames, 0x108 + p RX packets of port p, 0x110 + p TX packets",
}


class StandInEngine(wiring.Component):
    def __init__(self, ports: int = 2, cores: int = 2, pm_depth: int = 1024,
                 pkt_bytes: int = 2048, map_bytes: int = 4096):
        assert cores >= 1 and 0 <= ports <= 8
        self.ports, self.cores = ports, cores
        self.pm_depth, self.pkt_bytes, self.map_bytes = pm_depth, pkt_bytes, map_bytes
        super().__init__(engine_members(ports, PAYLOAD))

    def elaborate(self, platform):
        from bpfpga.hdl.testtop import HOST_CTX, HOST_PKT, CPUTestTop

        m = Module()
        wb = self.wb
        pw = (self.pm_depth - 1).bit_length()
        room = self.pkt_bytes - memmap.PKT_HEADROOM

        pm_addr = Signal(pw)
        pm_lo = Signal(32)
        pm_we = Signal()
        pm_data = Signal(64)
        prog_len = Signal(pw + 1)
        budget = Signal(32, init=memmap.INSN_BUDGET)
        enable = Signal()
        counters = Array(Signal(32, name=f"count{i}") for i in range(0x20))
        bump = [Signal(name=f"bump{i}") for i in range(0x20)]
        for i, b in enumerate(bump):
            with m.If(b):
                m.d.sync += counters[i].eq(counters[i] + 1)

        lanes = []
        for n in range(self.cores):
            top = CPUTestTop(pm_depth=self.pm_depth, pkt_bytes=self.pkt_bytes,
                             map_bytes=self.map_bytes, ctx_bytes=256)
            m.submodules[f"lane{n}"] = top
            lanes.append(top)
            m.d.comb += [top.pm_we.eq(pm_we), top.pm_addr.eq(pm_addr), top.pm_data.eq(pm_data),
                         top.prog_len.eq(prog_len), top.budget.eq(budget),
                         top.ctx_len.eq(24), top.map_len.eq(self.map_bytes)]

        # ---------------------------------------------------------------- lanes
        host_start = [Signal(name=f"host_start{n}") for n in range(self.cores)]
        host_r1 = Signal(32)
        for n, top in enumerate(lanes):
            my_ports = [p for p in range(self.ports) if p % self.cores == n]
            src = Signal(range(max(1, self.ports)), name=f"src{n}")
            from_port = Signal(name=f"from_port{n}")
            idx = Signal(range(room + 1), name=f"idx{n}")
            length = Signal(range(room + 1), name=f"len{n}")
            cut = Signal(name=f"cut{n}")
            rdone = Signal(name=f"rdone{n}")
            off = Signal(16, name=f"off{n}")
            m.d.comb += [off.eq(idx + memmap.PKT_HEADROOM),
                         top.pkt_lo.eq(memmap.PKT_BASE + memmap.PKT_HEADROOM),
                         top.pkt_hi.eq(memmap.PKT_BASE + memmap.PKT_HEADROOM + length),
                         top.r1_init.eq(Mux(from_port, memmap.CTX_BASE, host_r1))]
            with m.FSM(name=f"lane{n}_fsm"):
                with m.State("IDLE"):
                    m.d.sync += [idx.eq(0), cut.eq(0)]
                    with m.If(host_start[n]):
                        m.d.sync += from_port.eq(0)
                        m.next = "CLEAR"
                    for p in reversed(my_ports):
                        with m.Elif(enable & getattr(self, f"rx{p}").valid):
                            m.d.sync += [src.eq(p), from_port.eq(1)]
                            m.next = "RECV"
                with m.State("RECV"):
                    r_valid, r_last, r_data = Signal(), Signal(), Signal(8)
                    for p in my_ports:
                        r = getattr(self, f"rx{p}")
                        with m.If(src == p):
                            m.d.comb += [r.ready.eq(1), r_valid.eq(r.valid),
                                         r_last.eq(r.payload.last), r_data.eq(r.payload.data)]
                    with m.If(r_valid):
                        with m.If(idx < room):
                            m.d.comb += [top.host_sel.eq(HOST_PKT),
                                         top.host_addr.eq(off[3:]),
                                         top.host_we.eq(1 << off[:3]),
                                         top.host_wdata.eq(r_data.replicate(8))]
                            m.d.sync += idx.eq(idx + 1)
                        with m.Else():
                            m.d.sync += cut.eq(1)
                        with m.If(r_last):
                            m.d.sync += length.eq(Mux(idx < room, idx + 1, idx))
                            m.next = "CTX"
                with m.State("CTX"):
                    with m.If(cut):
                        m.d.comb += bump[0x06].eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        for p in my_ports:
                            m.d.comb += bump[0x08 + p].eq(src == p)
                        data_ptr = memmap.PKT_BASE + memmap.PKT_HEADROOM
                        m.d.comb += [top.host_sel.eq(HOST_CTX), top.host_addr.eq(0),
                                     top.host_we.eq(0xFF),
                                     top.host_wdata.eq(Cat(Const(data_ptr, 32),
                                                           data_ptr + length))]
                        m.next = "CLEAR"
                with m.State("CLEAR"):
                    # a run must not see the stack of the one before
                    m.d.comb += top.stack_clear.eq(1)
                    m.next = "CLEARING"
                with m.State("CLEARING"):
                    with m.If(~top.stack_clearing):
                        m.d.comb += top.start.eq(1)
                        m.next = "RUN"
                with m.State("RUN"):
                    with m.If(top.done):
                        with m.If(top.trap != 0):
                            m.d.comb += [bump[0x05].eq(1), bump[XDP_ABORTED].eq(from_port)]
                            m.next = "IDLE"
                        with m.Elif(from_port):
                            with m.Switch(top.r0):
                                for v in range(5):
                                    with m.Case(v):
                                        m.d.comb += bump[v].eq(1)
                                with m.Default():
                                    m.d.comb += bump[XDP_ABORTED].eq(1)
                            m.d.sync += idx.eq(0)
                            with m.If(top.r0 == XDP_TX):
                                m.next = "READ"
                            with m.Else():
                                m.next = "IDLE"
                        with m.Else():
                            m.next = "IDLE"
                with m.State("READ"):
                    # the host port reads one cycle after the address
                    m.d.comb += [top.host_sel.eq(HOST_PKT), top.host_addr.eq(off[3:])]
                    m.next = "SEND"
                with m.State("SEND"):
                    t_ready = Signal()
                    m.d.comb += [top.host_sel.eq(HOST_PKT), top.host_addr.eq(off[3:])]
                    for p in my_ports:
                        t = getattr(self, f"tx{p}")
                        with m.If(src == p):
                            m.d.comb += [
                                t.valid.eq(1), t_ready.eq(t.ready),
                                t.payload.data.eq(top.host_rdata.word_select(off[:3], 8)),
                                t.payload.first.eq(idx == 0),
                                t.payload.last.eq(idx == length - 1)]
                    with m.If(t_ready):
                        m.d.sync += idx.eq(idx + 1)
                        with m.If(idx == length - 1):
                            for p in my_ports:
                                m.d.comb += bump[0x10 + p].eq(src == p)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "READ"

        # ---------------------------------------------------------------- Wishbone
        adr = wb.adr
        rdata = Signal(32)
        with m.If(adr[8:] == 1):
            # 0x100-0x1ff: counters
            m.d.comb += rdata.eq(counters[adr[:5]])
        with m.Else():
            with m.Switch(adr):
                with m.Case(0x000):
                    m.d.comb += rdata.eq(IDENT)
                with m.Case(0x001):
                    m.d.comb += rdata.eq(self.cores | (self.ports << 8) | (pw << 16))
                with m.Case(0x002):
                    m.d.comb += rdata.eq(pm_addr)
                with m.Case(0x005):
                    m.d.comb += rdata.eq(prog_len)
                with m.Case(0x006):
                    m.d.comb += rdata.eq(budget)
                with m.Case(0x007):
                    m.d.comb += rdata.eq(enable)
                for n, top in enumerate(lanes):
                    base = 0x010 + 8 * n
                    with m.Case(base + 0):
                        m.d.comb += rdata.eq(Cat(top.busy, Const(0, 3), top.trap))
                    with m.Case(base + 1):
                        m.d.comb += rdata.eq(top.r0[:32])
                    with m.Case(base + 2):
                        m.d.comb += rdata.eq(top.r0[32:])
                    with m.Case(base + 3):
                        m.d.comb += rdata.eq(top.insns)
                    with m.Case(base + 4):
                        m.d.comb += rdata.eq(top.cycles)
        ack = Signal()
        m.d.sync += ack.eq(wb.cyc & wb.stb & ~ack)
        m.d.comb += wb.ack.eq(ack)
        with m.If(wb.cyc & wb.stb & ~ack):
            # registered read data: the Wishbone decode never sits in front of the bridge
            m.d.sync += wb.dat_r.eq(rdata)
            with m.If(wb.we):
                with m.Switch(adr):
                    with m.Case(0x002):
                        m.d.sync += pm_addr.eq(wb.dat_w)
                    with m.Case(0x003):
                        m.d.sync += pm_lo.eq(wb.dat_w)
                    with m.Case(0x004):
                        m.d.sync += [pm_data.eq(Cat(pm_lo, wb.dat_w)), pm_we.eq(1)]
                    with m.Case(0x005):
                        m.d.sync += prog_len.eq(wb.dat_w)
                    with m.Case(0x006):
                        m.d.sync += budget.eq(wb.dat_w)
                    with m.Case(0x007):
                        m.d.sync += enable.eq(wb.dat_w[0])
                    for n in range(self.cores):
                        with m.Case(0x010 + 8 * n + 5):
                            m.d.sync += host_r1.eq(wb.dat_w)
                            m.d.comb += host_start[n].eq(1)
        # the slot is written the cycle after PM_HI, then the address moves on
        with m.If(pm_we):
            m.d.sync += [pm_we.eq(0), pm_addr.eq(pm_addr + 1)]
        return m
