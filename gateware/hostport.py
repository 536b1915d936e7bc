"""Packets over the host link, for boards without Ethernet (the ULX3S).

Stands where a MAC stands in front of :class:`~bpfpga.gateware.ethport.EnginePort`: the host
writes a frame as 32-bit words into ``rx_word`` (first byte in bits 7:0); before the frame's
last word it writes ``rx_ctrl`` = bytes in that word (1-4) | 0x100, so that word ends the
frame. Frames leaving the engine are read back word by word: ``tx_status`` (bit 0 a word is
there, bit 1 it ends its frame, bits 7:4 the one-hot last byte), ``tx_word``, then a write to
``tx_pop``. Slow (a few Wishbone accesses per word) but it is for labs, and it goes through
the very same gate, converters and packet FIFO as an Ethernet port.
"""
from __future__ import annotations

from migen import *
from litex.gen import LiteXModule
from litex.soc.interconnect import stream
from litex.soc.interconnect.csr import AutoCSR, CSRStatus, CSRStorage

from liteeth.common import eth_phy_description


class HostPacketPort(LiteXModule, AutoCSR):
    def __init__(self):
        self.source = source = stream.Endpoint(eth_phy_description(32))   # to the engine port
        self.sink = sink = stream.Endpoint(eth_phy_description(32))       # from it
        self.rx_word = CSRStorage(32, description="Push one word of the frame being sent.")
        self.rx_ctrl = CSRStorage(9, description="Bytes in the next word (1-4) | 0x100: it "
                                                 "ends the frame.")
        self.tx_status = CSRStatus(8, description="bit 0 word ready, bit 1 last, 7:4 last_be")
        self.tx_word = CSRStatus(32, description="The word at the head of the TX queue.")
        self.tx_pop = CSRStorage(1, description="Write to drop the head word.")

        ends = self.rx_ctrl.storage[8]
        nbytes = self.rx_ctrl.storage[:3]
        last_be = Signal(4)
        self.comb += Case(nbytes, {1: last_be.eq(1), 2: last_be.eq(2), 3: last_be.eq(4),
                                   "default": last_be.eq(8)})
        self.comb += [
            source.valid.eq(self.rx_word.re),
            source.data.eq(self.rx_word.storage),
            source.last.eq(ends),
            source.last_be.eq(Mux(ends, last_be, 0)),
        ]
        # rx_ctrl applies to one word only
        self.sync += If(self.rx_word.re & ends, self.rx_ctrl.storage.eq(0))
        self.comb += [
            self.tx_status.status.eq(Cat(sink.valid, sink.last, Constant(0, 2), sink.last_be)),
            self.tx_word.status.eq(sink.data),
            sink.ready.eq(self.tx_pop.re),
        ]
