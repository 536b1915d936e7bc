"""The xdp_md context of a lane as a data-bus target."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from bpfpga.hdl.bus import DataBusSignature


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
