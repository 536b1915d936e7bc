"""The interfaces between the engine's units: the packet stream, the control port's bus and
the bundles a lane shares with dispatch, the egress crossbar and the trace FIFO."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bpfpga.hdl import control as C
from bpfpga.hdl import layouts

PAYLOAD = data.StructLayout({"data": 64, "keep": 8, "first": 1, "last": 1})
StreamSignature = stream.Signature(PAYLOAD)
# RX never stalls: a frame that finds no lane is dropped whole, so a lane's beats need no ready
RxBeatSignature = stream.Signature(PAYLOAD, always_ready=True)

WishboneSignature = wiring.Signature({
    "cyc": Out(1), "stb": Out(1), "we": Out(1), "sel": Out(4),
    "adr": Out(C.ADR_BITS), "dat_w": Out(32), "dat_r": In(32), "ack": In(1),
})

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)


# dispatch's side of a lane: ``take`` gives an idle (``free``) lane the frame now starting on
# an input (its virtual port and arrival number alongside), whose beats then arrive on ``rx``
ClaimSignature = wiring.Signature({
    "free": In(1), "take": Out(1), "port": Out(4), "seq": Out(24),
    "rx": Out(RxBeatSignature),
})


def EgressSignature(ports: int) -> wiring.Signature:
    """A lane's side of the egress crossbar: ``req`` while its packet waits for or holds
    output ``dest`` (a port, or ``ports``: the output ring)."""
    return wiring.Signature({
        "req": Out(1), "dest": Out(range(ports + 1)), "s": Out(StreamSignature),
    })


# a helper unit's trace_printk record for the trace FIFO (the lane adds the frame's seq);
# ack when it was written or dropped (FIFO full)
TraceSignature = wiring.Signature({
    "req": Out(1), "rec": Out(layouts.TRACE_REC), "ack": In(1),
})


def HostPortSignature(rdata_bits: int) -> wiring.Signature:
    """The control port into one region's memory: word address and data of the host's write
    (``we`` one cycle), and the read data of the word addressed the cycle before."""
    return wiring.Signature({
        "addr": Out(16), "wdata": Out(32), "we": Out(1), "rdata": In(rdata_bits),
    })


def serve_host_port(m, host, wp, rp):
    """A 64-bit memory's write port (granularity 32) and read port as the control port's
    ``host`` (32-bit word addresses): the write port sees address and data all the time,
    only its enable is decoded (gated data was an AND per bit)."""
    m.d.comb += [wp.addr.eq(host.addr[1:]), wp.data.eq(host.wdata.replicate(2)),
                 wp.en.eq(Mux(host.we, 1 << host.addr[0], 0)),
                 rp.addr.eq(host.addr[1:]), host.rdata.eq(rp.data)]


def thermo(m, n):
    """bytes (0..8) -> keep mask"""
    k = Signal(8)
    with m.Switch(n):
        for i in range(9):
            with m.Case(i):
                m.d.comb += k.eq((1 << i) - 1)
    return k


def popcount_keep(keep):
    """keep (a prefix mask) -> byte count"""
    return sum(keep[i] for i in range(8))
