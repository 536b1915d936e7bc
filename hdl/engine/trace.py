"""The trace FIFO: trace_printk records from every lane's helper unit, for the host."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga.hdl import control as C

from .signatures import HostPortSignature, TraceSignature


class TraceFIFO(wiring.Component):
    """``depth`` records (bpfpga/records.py TRACE_REC), one slot of C.TRACE_SLOT_WORDS 64-bit
    words each; the lanes ``l0`` .. queue for the one writer (a record takes
    C.TRACE_REC_WORDS cycles, the lowest lane first). A full FIFO loses the record and counts
    it (``dropped``): a program never waits for the host. ``wr`` records written, ``rd`` read
    by the host (both free running)."""

    def __init__(self, depth: int, lanes: int):
        assert depth and depth & (depth - 1) == 0, "trace_depth must be a power of two"
        self.depth, self.nl = depth, lanes
        members = {f"l{n}": In(TraceSignature) for n in range(lanes)}
        members.update({"wr": Out(16), "rd": In(16), "host": In(HostPortSignature(64)),
                        "written": Out(1), "dropped": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        TD, N = self.depth, self.nl
        lanes = [getattr(self, f"l{n}") for n in range(N)]
        trm = Memory(shape=unsigned(64), depth=TD * C.TRACE_SLOT_WORDS, init=[])
        m.submodules.trace = trm
        tr_wp = trm.write_port()
        tr_rp_wb = trm.read_port()
        m.d.comb += [tr_rp_wb.addr.eq(self.host.addr[1:]), self.host.rdata.eq(tr_rp_wb.data)]
        tw = self.wr
        tsel = Signal(range(max(2, N)))
        tk = Signal(3)
        tack = Signal()
        treq = Cat(*[L.req for L in lanes])
        tpick = Signal(range(max(2, N)))
        for n in reversed(range(N)):
            with m.If(treq[n]):
                m.d.comb += tpick.eq(n)
        trec = Array(L.rec.as_value() for L in lanes)
        for n, L in enumerate(lanes):
            m.d.comb += L.ack.eq(tack & (Mux(treq.any() & (tk == 0), tpick, tsel) == n))
        tslot = tw[0:(TD - 1).bit_length()] if TD > 1 else Const(0, 1)
        m.d.comb += tr_wp.data.eq(trec[tsel].word_select((tk - 1)[0:3], 64))
        with m.FSM(name="trace"):
            with m.State("IDLE"):
                m.d.sync += tk.eq(0)
                with m.If(treq.any()):
                    with m.If((tw - self.rd)[0:16] >= TD):
                        m.d.comb += [tack.eq(1), self.dropped.eq(1)]
                    with m.Else():
                        m.d.sync += [tsel.eq(tpick), tk.eq(1)]
                        m.next = "WRITE"
            with m.State("WRITE"):
                k = (tk - 1)[0:3]
                m.d.comb += [tr_wp.addr.eq(Cat(k, tslot)), tr_wp.en.eq(1)]
                m.d.sync += tk.eq(tk + 1)
                with m.If(tk == C.TRACE_REC_WORDS):
                    m.d.comb += [tack.eq(1), self.written.eq(1)]
                    m.d.sync += [tw.eq(tw + 1), tk.eq(0)]
                    m.next = "IDLE"
        return m
