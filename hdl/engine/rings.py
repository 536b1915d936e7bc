"""The output ring writer: results (header and packet) into the ring the host reads."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga.hdl import control as C
from bpfpga.hdl import layouts

from .signatures import HostPortSignature, StreamSignature


class RingWriter(wiring.Component):
    """A record is the header of lane ``owner`` (``hdr``: bpfpga/records.py RING_HDR), then
    the packet from ``i``, into the ``depth``-word ring. Only whole records are published
    (``wr`` moves after the last word); a record that does not fit in what the host has left
    (``rd``) is consumed and dropped (``drop``); ``written`` counts the records."""

    def __init__(self, depth: int, lanes: int):
        assert depth & (depth - 1) == 0
        self.depth, self.nl = depth, lanes
        super().__init__({
            "i": In(StreamSignature),
            "hdr": In(data.ArrayLayout(layouts.RING_HDR, lanes)),
            "owner": In(range(max(2, lanes))),
            "wr": Out(16), "rd": In(16),
            "host": In(HostPortSignature(64)),
            "written": Out(1), "drop": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        outr = Memory(shape=unsigned(64), depth=self.depth, init=[])
        m.submodules.outr = outr
        out_wp = outr.write_port()
        out_rp_wb = outr.read_port()
        m.d.comb += [out_rp_wb.addr.eq(self.host.addr[1:]),
                     self.host.rdata.eq(out_rp_wb.data)]
        ring_in = self.i
        ow_cur = Signal(16)
        used = Signal(16)
        m.d.comb += used.eq(self.wr - self.rd)
        hdr = Signal(layouts.RING_HDR)
        m.d.comb += hdr.eq(self.hdr[self.owner] if self.nl > 1 else self.hdr[0])
        hk = Signal(2)
        with m.FSM(name="ring"):
            with m.State("IDLE"):
                with m.If(ring_in.valid):
                    need = C.HDR_WORDS + ((hdr.len + 7) >> 3)
                    with m.If(self.depth - used >= need):
                        m.d.sync += [hk.eq(0), ow_cur.eq(self.wr)]
                        m.next = "HDR"
                    with m.Else():
                        m.d.comb += self.drop.eq(1)
                        m.next = "DROP"
            with m.State("HDR"):
                m.d.comb += [out_wp.addr.eq(ow_cur), out_wp.en.eq(1),
                             out_wp.data.eq(hdr.as_value().word_select(hk, 64))]
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
                        m.d.sync += self.wr.eq(ow_cur + 1)
                        m.d.comb += self.written.eq(1)
                        m.next = "IDLE"
            with m.State("DROP"):
                m.d.comb += ring_in.ready.eq(1)
                with m.If(ring_in.valid & ring_in.payload.last):
                    m.next = "IDLE"
        return m
