"""One barrel shifter for lsh, rsh and arsh, 32 and 64 bits."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Shifter(wiring.Component):
    """``result`` = ``a`` shifted by ``amount`` (mod the width): left when ``left``, else right,
    arithmetic when ``arith``; a 32-bit shift leaves junk in the upper word (the ALU's caller
    keeps the low word)."""
    a: In(64)
    amount: In(6)
    is64: In(1)
    left: In(1)
    arith: In(1)
    result: Out(64)

    def elaborate(self, platform):
        m = Module()
        a, w64 = self.a, self.is64
        sh = Signal(6)
        m.d.comb += sh.eq(Mux(w64, self.amount, self.amount[0:5]))
        # a left shift is the right shift of the bit-reversed operand, reversed back: one
        # 65-bit shifter (the sign bit on top) instead of two
        rin = Signal(signed(65))
        m.d.comb += rin.eq(Mux(self.left, Cat(a[::-1], 0),
                               Mux(w64, Cat(a, self.arith & a[63]),
                                   Cat(a[0:32], Mux(self.arith & a[31], 0x1_FFFF_FFFF, 0)))))
        shr = Signal(64)
        m.d.comb += shr.eq((rin >> sh)[0:64])
        m.d.comb += self.result.eq(Mux(self.left, shr[::-1], shr))
        return m
