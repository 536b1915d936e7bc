"""bpf_csum_diff: the sums of the "to" and "from" words, folded and combined as the kernel's
csum_partial / csum_fold do (the helper returns the 16-bit folded result)."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga import traps

# (at most 128 words and the seed: no carry beyond bit 41)
SUM_BITS = 41


class CsumFinish(wiring.Component):
    """The result from the two sums: ``to_sum`` (the seed plus the "to" words, or 0 without
    them) and ``from_sum`` (the "from" words, or ~seed when there are only "from" words), each
    folded to 32 bits, then combined with one's-complement arithmetic and folded to 16."""

    def __init__(self):
        super().__init__({
            "to_sum": In(SUM_BITS), "from_sum": In(SUM_BITS),
            "has_to": In(1), "has_from": In(1), "seed": In(32),
            "result": Out(16),
        })

    def elaborate(self, platform):
        m = Module()

        def fold(v):
            s1 = Signal(34)
            s2 = Signal(33)
            m.d.comb += [s1.eq(v[0:32] + v[32:41]), s2.eq(s1[0:32] + s1[32:34])]
            return s2[0:32]

        fa = fold(self.to_sum)
        fb = fold(self.from_sum)
        r = Signal(32)
        sum2 = Signal(33)
        m.d.comb += sum2.eq(fa + (~fb)[0:32])
        with m.If(self.has_from & self.has_to):
            m.d.comb += r.eq((sum2 + sum2[32])[0:32])
        with m.Elif(self.has_to):
            m.d.comb += r.eq(fa)
        with m.Elif(self.has_from):
            m.d.comb += r.eq(~fb)
        with m.Else():
            m.d.comb += r.eq(self.seed)
        t = Signal(32)
        m.d.comb += [t.eq((r + r.rotate_left(16))[0:32]), self.result.eq(t[16:32])]
        return m


def add_states(u):
    """CS0 .. CS_FIN into the helper unit's FSM (``u``: hdl/helpers_hw.py HelperContext):
    the kernel's argument checks, both buffers' window checks (one a cycle), the word sums,
    the result."""
    m, a1, a2, a3, a4, a5 = u.m, u.a1, u.a2, u.a3, u.a4, u.a5
    cs_a = Signal(SUM_BITS)
    cs_b = Signal(SUM_BITS)
    m.submodules.csum_finish = fin = CsumFinish()
    fsz = a2[0:32]
    tsz = a4[0:32]
    m.d.comb += [fin.to_sum.eq(cs_a), fin.from_sum.eq(cs_b), fin.has_to.eq(tsz != 0),
                 fin.has_from.eq(fsz != 0), fin.seed.eq(a5[0:32])]
    with m.State("CS0"):
        u.win_ok(a1, fsz)
        with m.If(((fsz | tsz)[0:2] != 0) | (a2[10:32] != 0) | (a4[10:32] != 0)
                  | ((fsz[0:10] + tsz[0:10]) > 512) | (a2[32:] != 0)
                  | (a4[32:] != 0)):
            u.finish(u.neg(u.EINVAL))
        with m.Elif((fsz != 0) & ~u.wo_ok):
            u.fault(traps.TRAP_MEM)
        with m.Else():
            m.next = "CS1"
    with m.State("CS1"):                # (one window check a cycle)
        with m.If((tsz != 0) & ~u.win_ok(a3, tsz)):
            u.fault(traps.TRAP_MEM)
        with m.Else():
            m.d.sync += [cs_a.eq(Mux(tsz != 0, a5[0:32], 0)),
                         cs_b.eq(Mux((fsz != 0) & (tsz == 0), ~a5[0:32], 0)),
                         u.cp_src.eq(a3[0:32]), u.cp_len.eq(tsz)]
            m.next = "CS_TO"
    # the "to" words into cs_a, then the "from" words into cs_b
    # (sizes are multiples of 4, at most 512: cp_len counts down to 0)
    for st, acc, then, load in (
            ("CS_TO", cs_a, "CS_FR", [u.cp_src.eq(a1[0:32]), u.cp_len.eq(fsz)]),
            ("CS_FR", cs_b, "CS_FIN", [])):
        with m.State(st):
            m.d.comb += u.cp_step.eq(4)
            with m.If(u.cp_len == 0):
                m.d.sync += load
                m.next = then
            with m.Else():
                with m.If(u.access(u.cp_src, 2)):
                    m.d.sync += [acc.eq(acc + u.bus.rdata[0:32]),
                                 u.cp_src.eq(u.cp_src_next), u.cp_len.eq(u.cp_len_next)]
    with m.State("CS_FIN"):
        u.finish(fin.result)
