"""A loopback engine: every frame a port receives goes back out of the same port, unchanged.

Two uses. Bring-up of a new board: a loopback bitstream checks the PHYs, the RGMII delays,
the MACs and the host link with nothing of the XDP engine in the way (ping the management
address, send frames and see them come back, read the counters). And measurement: the SoC
around a loopback engine is the SoC's own cost, so ``bench/boards.py --engine loopback`` says
how much of a part is left for the engine (docs/boards.md).

It keeps the engine contract of gateware/engine.py (a Wishbone slave, one 64-bit stream pair
per port, the XDP engine's payload layout) so the SoC is the same as with the real engine.
Registers (word addresses): 0x000 IDENT 0x62706c62 ("bplb"); 0x001 INFO ports; 0x008 + p
frames looped on port p (32 bits, wrapping). Writes are acknowledged and ignored.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring

from bpfpga.gateware.standin import engine_members

PAYLOAD = data.StructLayout({"data": 64, "keep": 8, "first": 1, "last": 1})
IDENT = 0x62706C62


class LoopbackEngine(wiring.Component):
    def __init__(self, ports: int = 2):
        assert 1 <= ports <= 8
        self.ports = ports
        super().__init__(engine_members(ports, PAYLOAD))

    def elaborate(self, platform):
        m = Module()
        counts = []
        for p in range(self.ports):
            rx, tx = getattr(self, f"rx{p}"), getattr(self, f"tx{p}")
            # one register stage, so the port's two FIFOs are not joined by a combinational path
            full = Signal()
            m.d.comb += [rx.ready.eq(~full | tx.ready), tx.valid.eq(full)]
            with m.If(tx.ready & full):
                m.d.sync += full.eq(0)
            with m.If(rx.valid & rx.ready):
                m.d.sync += [tx.payload.eq(rx.payload), full.eq(1)]
            n = Signal(32, name=f"looped{p}")
            with m.If(rx.valid & rx.ready & rx.payload.last):
                m.d.sync += n.eq(n + 1)
            counts.append(n)

        wb = self.wb
        m.d.sync += wb.ack.eq(wb.cyc & wb.stb & ~wb.ack)
        with m.Switch(wb.adr):
            with m.Case(0):
                m.d.sync += wb.dat_r.eq(IDENT)
            with m.Case(1):
                m.d.sync += wb.dat_r.eq(self.ports)
            for p, n in enumerate(counts):
                with m.Case(8 + p):
                    m.d.sync += wb.dat_r.eq(n)
            with m.Default():
                m.d.sync += wb.dat_r.eq(0)
        return m
