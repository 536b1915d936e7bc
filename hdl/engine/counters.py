"""The counter bank: the control port's 64 counters (hdl/control.py C_*) in one small RAM."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga.hdl import control as C


class CounterBank(wiring.Component):
    """``sources`` {counter index: events per cycle it may count}; input ``ev<i>`` has one bit
    per source. The counters live in a RAM, not in some forty 32-bit adders and a 64:1 read
    mux: each counter has a small delta register its events add to, and a scanner folds one
    delta per cycle into its RAM word (read, add, write back: a counter is visited every U
    cycles, U = the counters this configuration bumps, a little more while the host reads).
    A host read (``rd``, counter ``idx``; ``rdata`` the cycle after) returns the RAM word plus
    the pending delta through the same adder, so it is exact; a counter never bumped reads 0.
    ``clear`` zeroes the deltas and marks every word stale (read as zero until the scanner
    rewrites it)."""

    def __init__(self, sources: dict[int, int]):
        self.sources = {i: n for i, n in sorted(sources.items()) if n}
        assert all(0 <= i < C.N_COUNTERS for i in self.sources)
        members = {"clear": In(1), "rd": In(1), "idx": In(6), "rdata": Out(32)}
        members.update({f"ev{i}": In(n) for i, n in self.sources.items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        used = list(self.sources)
        U = len(used)
        if not U:
            return m
        cmem = Memory(shape=unsigned(32), depth=max(2, U), init=[])
        m.submodules.counters = cmem
        c_wp = cmem.write_port()
        c_rp = cmem.read_port(transparent_for=(c_wp,))
        # a counter is visited at least every 3U/2 cycles (a host read takes the RAM port at
        # most one cycle in three): its delta holds that many cycles of events
        deltas = [Signal(range(2 * U * self.sources[i] + 1), name=f"cnt{i}_delta")
                  for i in used]
        stale = Signal(U)
        sk = Signal(range(max(2, U)))           # the word the scanner reads next
        s_v = Signal()
        s_k = Signal(range(max(2, U)))
        h_v = Signal()
        h_k = Signal(range(max(2, U)))
        idx = Signal(range(max(2, U)))          # the host's counter as a RAM word
        has = Signal()                          # ... which this configuration bumps
        valid = Signal()
        val = Signal(32)
        m.d.comb += c_rp.addr.eq(Mux(self.rd, idx, sk))
        m.d.sync += [s_v.eq(~self.rd), s_k.eq(sk), h_v.eq(self.rd), h_k.eq(idx),
                     valid.eq(has)]
        with m.If(~self.rd):
            m.d.sync += sk.eq(Mux(sk == U - 1, 0, sk + 1))
        sel = Mux(h_v, h_k, s_k)
        base = Mux(stale.bit_select(sel, 1), 0, c_rp.data)
        m.d.comb += val.eq(base + Array(deltas)[sel])
        m.d.comb += [c_wp.addr.eq(s_k), c_wp.data.eq(val), c_wp.en.eq(s_v),
                     self.rdata.eq(Mux(valid, val, 0))]
        for k, (i, d) in enumerate(zip(used, deltas)):
            ev = getattr(self, f"ev{i}")
            inc = sum(ev[j].as_unsigned() for j in range(len(ev)))
            with m.If(self.clear):
                m.d.sync += d.eq(0)
            with m.Elif(s_v & (s_k == k)):
                m.d.sync += d.eq(inc)
            with m.Else():
                m.d.sync += d.eq(d + inc)
        with m.If(self.clear):
            m.d.sync += stale.eq(-1)
        with m.Elif(s_v):
            m.d.sync += stale.bit_select(s_k, 1).eq(0)
        with m.Switch(self.idx):
            for k, i in enumerate(used):
                with m.Case(i):
                    m.d.comb += [idx.eq(k), has.eq(1)]
        return m
