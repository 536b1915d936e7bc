"""One Ethernet port between LiteEth's MAC and the engine's stream pair.

RX (wire -> engine): the MAC (preamble, CRC, 8 -> 32 bits, eth_rx -> sys) hands frames to a
gate that takes or drops each *whole* frame at its first word: a frame is taken only when the
FIFO behind has room for a maximal frame, so a busy engine costs dropped frames (counted in
``rx_dropped``), never a stall of the MAC (which cannot stall the wire) and never a cut frame.
The FIFO then feeds the engine at the engine's pace, in its width (LiteX's StrideConverter and
LiteEth's last-byte handler for an 8-bit engine), with ``first`` generated.

TX (engine -> wire): frames are gathered whole in a packet FIFO before the MAC sees them: an
engine slower than the wire (8 bits at 100 MHz < 1 Gb/s) would otherwise underrun the MAC in
the middle of a frame.

On a port that also carries the host link (Etherbone), every received frame goes to the
UDP/IP/Etherbone stack (LiteEth's crossbar without its MAC filter; the stack's ARP and IP
layers keep what is theirs) and every frame except those to the management MAC address to
the engine (:class:`MacDropFilter`); on TX the two are arbitrated per frame.
"""
from __future__ import annotations

from migen import *
from litex.gen import LiteXModule
from litex.soc.interconnect import stream
from litex.soc.interconnect.csr import AutoCSR, CSRStatus
from litex.soc.interconnect.packet import PacketFIFO

from liteeth.common import eth_phy_description
from liteeth.mac.common import LiteEthLastHandler

MAC_DW = 32
MAX_FRAME = 2048          # bytes a FIFO must hold for one frame (1522 + slack)


class MacDropFilter(LiteXModule):
    """Drops the frames addressed to ``mac`` (the host link's own address) and passes every
    other frame unchanged, 32-bit words. The destination address spans the first word and
    half of the second, so one register stage holds a frame's first word until the second
    is in view; no other word waits. Always ready, and its consumer must be too (the frame
    gate is): LiteEth's crossbar raises valid only with ready, so a ready that looked at
    valid would close a combinational loop. (LiteEth's filtering crossbar did this with two
    4-word FIFOs of 154 bits in LUT RAM, a depacketizer and two packetizers.)"""

    def __init__(self, mac: int, dw: int = 32):
        if dw != 32:
            raise ValueError(f"MacDropFilter: {dw}-bit words; it handles 32")
        layout = eth_phy_description(dw)
        self.sink = sink = stream.Endpoint(layout)
        self.source = source = stream.Endpoint(layout)
        # the first byte on the wire is the address's most significant byte and data[0:8]
        wire = [(mac >> (8 * (5 - k))) & 0xFF for k in range(6)]
        w0 = wire[0] | wire[1] << 8 | wire[2] << 16 | wire[3] << 24
        w1 = wire[4] | wire[5] << 8
        r = stream.Endpoint(layout)             # the held word (its valid: held)
        r_first = Signal()                      # ... is a frame's first word
        in_frame = Signal()                     # the sink is inside a frame
        dropping = Signal()                     # the frame leaving now is being dropped
        match = Signal()
        go = Signal()
        drop = Signal()
        self.comb += [
            # (the second word holds the address's last two bytes unless it ends the frame
            # after one byte: last_be is one-hot on the last valid byte)
            match.eq(r_first & ~r.last & sink.valid & (r.data == w0) &
                     (sink.data[0:16] == w1) & ~(sink.last & sink.last_be[0])),
            # a first word waits for the second (unless it is the frame's only one)
            go.eq(r.valid & (~r_first | r.last | sink.valid)),
            drop.eq(Mux(r_first, match, dropping)),
            r.connect(source, omit={"valid", "ready"}),
            source.valid.eq(go & ~drop),
            sink.ready.eq(1),
        ]
        self.dropped = Signal(32)           # frames to ``mac`` dropped
        self.sync += If(go & r_first & match, self.dropped.eq(self.dropped + 1))
        self.sync += [
            If(sink.valid,
                sink.connect(r, omit={"valid", "ready"}),
                r.valid.eq(1),
                r_first.eq(~in_frame),
                in_frame.eq(~sink.last),
            ).Elif(go,
                r.valid.eq(0),
            ),
            If(go & r_first, dropping.eq(match)),
        ]


class FrameGate(LiteXModule):
    """Takes or drops whole frames; always ready."""

    def __init__(self, dw: int, fifo_depth: int):
        self.sink = sink = stream.Endpoint(eth_phy_description(dw))
        self.fifo = fifo = stream.SyncFIFO(eth_phy_description(dw), fifo_depth, buffered=True)
        self.source = fifo.source
        self.dropped = Signal(32)
        room = fifo_depth - MAX_FRAME // (dw // 8)
        assert room > 0
        in_frame = Signal()
        taking = Signal()
        take_now = Signal()
        self.comb += take_now.eq(Mux(in_frame, taking, fifo.level <= room))
        self.comb += [
            sink.connect(fifo.sink, omit={"valid", "ready"}),
            fifo.sink.valid.eq(sink.valid & take_now),
            sink.ready.eq(1),
        ]
        self.sync += If(sink.valid,
            If(~in_frame, taking.eq(take_now)),
            in_frame.eq(~sink.last),
            If(sink.last & ~take_now, self.dropped.eq(self.dropped + 1)),
        )


class FirstFlag(LiteXModule):
    """Sets ``first`` on the first beat of each frame (LiteX endpoints carry it, LiteEth's MAC
    does not drive it)."""

    def __init__(self, layout):
        self.sink = sink = stream.Endpoint(layout)
        self.source = source = stream.Endpoint(layout)
        in_frame = Signal()
        self.comb += [sink.connect(source), source.first.eq(~in_frame)]
        self.sync += If(sink.valid & sink.ready, in_frame.eq(~sink.last))


class EnginePort(LiteXModule, AutoCSR):
    """``mac_source``/``mac_sink``: raw frames (eth_phy_description(32)) in sys;
    ``eng_sink``/``eng_source``: the engine's endpoints (its own width); ``drop_mac``: frames
    to this address (the host link's, on the port that carries it) do not reach the engine.

    Frames received and sent are the engine's own counters (C_RX, C_TX); the port counts
    only what the engine cannot see, the frames it dropped for want of room (``rx_dropped``)."""

    def __init__(self, mac_source, mac_sink, eng_sink, eng_source, eng_dw: int,
                 drop_mac: int | None = None):
        self.rx_dropped = CSRStatus(32, description="Frames dropped: the engine was behind.")
        if drop_mac is not None:
            self.rx_mgmt = CSRStatus(32, description="Frames to the management address kept "
                                     "from the engine (they go to the host link's stack).")

        # RX ----------------------------------------------------------------------------
        depth = 2 * MAX_FRAME // (MAC_DW // 8)
        self.gate = gate = FrameGate(MAC_DW, depth)
        if drop_mac is not None:
            self.macfilter = filt = MacDropFilter(drop_mac, MAC_DW)
            self.comb += [mac_source.connect(filt.sink), filt.source.connect(gate.sink),
                          self.rx_mgmt.status.eq(filt.dropped)]
        else:
            self.comb += mac_source.connect(gate.sink)
        rx = [gate]
        if eng_dw < MAC_DW:
            conv = stream.StrideConverter(eth_phy_description(MAC_DW),
                                          eth_phy_description(eng_dw))
            last = LiteEthLastHandler(eth_phy_description(eng_dw))
            self.submodules += conv, last
            rx += [conv, last]
        elif eng_dw > MAC_DW:
            conv = stream.StrideConverter(eth_phy_description(MAC_DW),
                                          eth_phy_description(eng_dw))
            self.submodules += conv
            rx += [conv]
        self.first = first = FirstFlag(eth_phy_description(eng_dw))
        rx.append(first)
        for a, b in zip(rx, rx[1:]):
            self.comb += a.source.connect(b.sink)
        self.comb += first.source.connect(eng_sink)
        self.comb += self.rx_dropped.status.eq(gate.dropped)

        # TX ----------------------------------------------------------------------------
        tx_src = eng_source
        if eng_dw != MAC_DW:
            conv = stream.StrideConverter(eth_phy_description(eng_dw),
                                          eth_phy_description(MAC_DW))
            self.submodules += conv
            self.comb += eng_source.connect(conv.sink)
            tx_src = conv.source
        self.txfifo = txfifo = PacketFIFO(eth_phy_description(MAC_DW),
                                          payload_depth=MAX_FRAME // (MAC_DW // 8),
                                          param_depth=8, buffered=True)
        self.comb += [tx_src.connect(txfifo.sink), txfifo.source.connect(mac_sink)]
