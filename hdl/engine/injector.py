"""The injector: frames the host writes into the inject ring, as one more input stream."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga.hdl import layouts

from .signatures import HostPortSignature, StreamSignature, serve_host_port, thermo


class Injector(wiring.Component):
    """The ring of ``depth`` 64-bit words (host writes ``host``, 32 bits a word address):
    records of a header (bpfpga/records.py INJ_HDR) then the frame, from ``rd`` up to the
    host's ``wr``; each frame leaves on ``o`` with its virtual port on ``port`` (valid from
    its first beat to the next header)."""

    def __init__(self, depth: int):
        assert depth & (depth - 1) == 0
        self.depth = depth
        super().__init__({
            "o": Out(StreamSignature), "port": Out(4),
            "wr": In(16), "rd": Out(16),
            "host": In(HostPortSignature(64)),
        })

    def elaborate(self, platform):
        m = Module()
        inj = Memory(shape=unsigned(64), depth=self.depth, init=[])
        m.submodules.inj = inj
        inj_wp = inj.write_port(granularity=32)
        inj_rp = inj.read_port()
        inj_rp_wb = inj.read_port()
        serve_host_port(m, self.host, inj_wp, inj_rp_wb)
        o = self.o
        ir = self.rd
        ip = Signal(16)
        ilen = Signal(16)
        ib = Signal(10)
        inb = Signal(10)
        hdr = layouts.INJ_HDR(inj_rp.data)
        m.d.comb += [inj_rp.addr.eq(ip), o.payload.data.eq(inj_rp.data)]
        with m.FSM(name="inject"):
            with m.State("IDLE"):
                with m.If(self.wr != ir):
                    m.d.sync += ip.eq(ir)
                    m.next = "HDR0"
            with m.State("HDR0"):
                m.next = "HDR1"          # the header word is being read
            with m.State("HDR1"):
                ln = hdr.len
                m.d.sync += [ilen.eq(ln), self.port.eq(hdr.in_port), ib.eq(0),
                             inb.eq(Mux(ln == 0, 1, (ln + 7) >> 3)), ip.eq(ip + 1)]
                m.next = "WAIT"
            with m.State("WAIT"):
                m.next = "DATA"
            with m.State("DATA"):
                lastb = ib == inb - 1
                rem = (ilen - (ib << 3))[0:4]
                m.d.comb += [o.valid.eq(1),
                             o.payload.first.eq(ib == 0), o.payload.last.eq(lastb),
                             o.payload.keep.eq(Mux(lastb, thermo(m, Mux(ilen == 0, 0, rem)),
                                                   0xFF))]
                with m.If(o.ready):
                    m.d.comb += inj_rp.addr.eq(ip + 1)
                    m.d.sync += [ip.eq(ip + 1), ib.eq(ib + 1)]
                    with m.If(lastb):
                        m.d.sync += ir.eq(ip + 1)
                        m.next = "IDLE"
        return m
