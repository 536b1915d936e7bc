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

On a port that also carries the host link (Etherbone), LiteEth's hybrid crossbar sits between
the MAC and this adapter: frames for the management MAC address go to the UDP/IP/Etherbone
stack, broadcasts to both, everything else to the engine; on TX the two are arbitrated per
frame.
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


class FrameGate(LiteXModule):
    """Takes or drops whole frames; always ready."""

    def __init__(self, dw: int, fifo_depth: int):
        self.sink = sink = stream.Endpoint(eth_phy_description(dw))
        self.fifo = fifo = stream.SyncFIFO(eth_phy_description(dw), fifo_depth, buffered=True)
        self.source = fifo.source
        self.dropped = Signal(32)
        self.accepted = Signal(32)
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
            If(sink.last,
                If(take_now, self.accepted.eq(self.accepted + 1)
                ).Else(self.dropped.eq(self.dropped + 1))),
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
    ``eng_sink``/``eng_source``: the engine's endpoints (its own width)."""

    def __init__(self, mac_source, mac_sink, eng_sink, eng_source, eng_dw: int):
        self.rx_accepted = CSRStatus(32, description="Frames handed to the engine.")
        self.rx_dropped = CSRStatus(32, description="Frames dropped: the engine was behind.")
        self.tx_frames = CSRStatus(32, description="Frames the engine sent.")

        # RX ----------------------------------------------------------------------------
        depth = 2 * MAX_FRAME // (MAC_DW // 8)
        self.gate = gate = FrameGate(MAC_DW, depth)
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
        self.comb += [self.rx_accepted.status.eq(gate.accepted),
                      self.rx_dropped.status.eq(gate.dropped)]

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
        count = Signal(32)
        self.sync += If(eng_source.valid & eng_source.ready & eng_source.last,
                        count.eq(count + 1))
        self.comb += self.tx_frames.status.eq(count)
