"""The parallel multiplier: ten 16x16 partial products (ten MULT18X18D), 4 cycles."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


# the two multipliers' ports: X holds a and b and counts step from 0; res is valid when done
MUL_PORTS = wiring.Signature({"a": In(64), "b": In(64), "is64": In(1), "step": In(7),
                              "res": Out(64), "done": Out(1)})


def limbs(v):
    return [v[16 * i:16 * i + 16] for i in range(4)]


class Multiplier(wiring.Component):
    """The low 64 bits of ``a`` * ``b``; ``res`` is valid when ``done`` (X's ``step`` 3, for
    mul32 and mul64 alike: the products of the upper limbs land at bit 32 and above, which a
    32-bit result drops). ``a`` and ``b`` must hold from step 0 to 2."""

    def __init__(self):
        super().__init__(MUL_PORTS)

    def elaborate(self, platform):
        m = Module()
        la, lb = limbs(self.a), limbs(self.b)
        # the products that only reach bits >= 64 are never formed
        pp = {(i, j): Signal(32, name=f"pp{i}{j}") for i in range(4) for j in range(4)
              if i + j <= 3}
        ms0 = Signal(32)
        ms1 = Signal(33)
        ms2 = Signal(32)
        ms3 = Signal(16)
        m.d.sync += [p.eq(la[i] * lb[j]) for (i, j), p in pp.items()]
        m.d.sync += [
            ms0.eq(pp[0, 0]),
            ms1.eq(pp[0, 1] + pp[1, 0]),
            ms2.eq(pp[0, 2] + pp[1, 1] + pp[2, 0]),
            ms3.eq(pp[0, 3] + pp[1, 2] + pp[2, 1] + pp[3, 0]),
            self.res.eq(ms0 + (ms1 << 16) + (ms2 << 32) + (ms3 << 48)),
        ]
        m.d.comb += self.done.eq(self.step == 3)
        return m
