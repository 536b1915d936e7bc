"""The radix-2 divider: div, mod, sdiv, smod, 32 and 64 bits (34 / 66 cycles)."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Divider(wiring.Component):
    """Quotient (``is_div``) or remainder of ``a`` / ``b`` with eBPF's rules: by zero, div
    gives 0 (``done`` at step 1) and mod gives a; signed (sdiv/smod) rounds toward zero and
    the remainder takes the dividend's sign. Step 0 loads the operands, steps 1..32 (64)
    shift, ``done`` at step 33 (65). ``neg_a`` is -``a`` from the ALU (its negator is shared).
    """
    a: In(64)
    b: In(64)
    neg_a: In(64)
    is64: In(1)
    signed: In(1)
    is_div: In(1)
    step: In(7)
    res: Out(64)
    done: Out(1)

    def elaborate(self, platform):
        m = Module()
        a, b, w64, xc = self.a, self.b, self.is64, self.step
        dv_n = Signal(64)      # dividend, shifted out at the top; the quotient shifts in below
        dv_d = Signal(64)
        dv_r = Signal(64)
        dv_negq = Signal()
        dv_negr = Signal()
        dv_zero = Signal()
        av = Mux(w64, a, a[0:32])
        bv = Mux(w64, b, b[0:32])
        sa = self.signed & Mux(w64, a[63], a[31])
        sb = self.signed & Mux(w64, b[63], b[31])
        # the low half of a 64-bit negation is the 32-bit one
        nb = Signal(64)
        m.d.comb += nb.eq(-bv)
        a_abs = Mux(sa, Mux(w64, self.neg_a, self.neg_a[0:32]), av)
        b_abs = Mux(sb, Mux(w64, nb, nb[0:32]), bv)
        r2 = Cat(dv_n[63], dv_r)
        diff = Signal(66)
        m.d.comb += diff.eq(r2 - dv_d)
        is_div = self.is_div
        with m.If(xc == 0):
            m.d.sync += [dv_n.eq(Mux(w64, a_abs, a_abs << 32)), dv_d.eq(b_abs), dv_r.eq(0),
                         dv_negq.eq(sa ^ sb), dv_negr.eq(sa), dv_zero.eq(bv == 0)]
        with m.Else():
            # the dividend's bits leave dv_n at the top as the quotient's enter at the bottom:
            # after 64 (32) steps dv_n is the quotient (the 32-bit dividend started at bit 32)
            with m.If(diff[65]):
                m.d.sync += [dv_r.eq(r2), dv_n.eq(Cat(0, dv_n[0:63]))]
            with m.Else():
                m.d.sync += [dv_r.eq(diff), dv_n.eq(Cat(1, dv_n[0:63]))]
        qr = Mux(is_div, dv_n, dv_r)
        qr_neg = Signal(64)
        m.d.comb += qr_neg.eq(-qr)
        qr_fin = Mux(Mux(is_div, dv_negq, dv_negr), qr_neg, qr)
        # by zero: div gives 0 (at once); mod runs the steps, which leave the remainder
        # |a| (every step subtracts 0), turned back into a by the dividend's sign as usual
        m.d.comb += self.res.eq(Mux(dv_zero & is_div, 0, qr_fin))
        dv_last = Mux(w64, 64, 32) + 1
        m.d.comb += self.done.eq((xc == dv_last) | ((xc == 1) & dv_zero & is_div))
        return m
