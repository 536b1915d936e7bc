"""The branch condition of BPF_JMP / BPF_JMP32."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga import isa


class Compare(wiring.Component):
    """``taken`` for the jump operation ``op`` (upper nibble) on ``a`` and ``b``, 32-bit
    unless ``is64``; 0 for JA, CALL, EXIT."""
    op: In(4)
    is64: In(1)
    a: In(64)
    b: In(64)
    taken: Out(1)

    def elaborate(self, platform):
        m = Module()
        a, b, w64 = self.a, self.b, self.is64
        # two 32-bit comparators combined (no 64-bit operand muxes for jmp32)
        lo_eq, hi_eq = Signal(), Signal()
        lo_lt, hi_lt = Signal(), Signal()
        m.d.comb += [lo_eq.eq(a[0:32] == b[0:32]), hi_eq.eq(a[32:64] == b[32:64]),
                     lo_lt.eq(a[0:32] < b[0:32]), hi_lt.eq(a[32:64] < b[32:64])]
        eq = lo_eq & (~w64 | hi_eq)
        ult = Mux(w64, hi_lt | (hi_eq & lo_lt), lo_lt)
        sga = Mux(w64, a[63], a[31])
        sgb = Mux(w64, b[63], b[31])
        slt = Mux(sga ^ sgb, sga, ult)     # signed from the unsigned comparator
        jset = (a[0:32] & b[0:32]).any() | (w64 & (a[32:64] & b[32:64]).any())
        with m.Switch(self.op):
            for op, expr in ((isa.BPF_JEQ, eq), (isa.BPF_JNE, ~eq),
                             (isa.BPF_JGT, ~ult & ~eq), (isa.BPF_JGE, ~ult),
                             (isa.BPF_JLT, ult), (isa.BPF_JLE, ult | eq),
                             (isa.BPF_JSGT, ~slt & ~eq), (isa.BPF_JSGE, ~slt),
                             (isa.BPF_JSLT, slt), (isa.BPF_JSLE, slt | eq),
                             (isa.BPF_JSET, jset)):
                with m.Case(op >> 4):
                    m.d.comb += self.taken.eq(expr)
        return m
