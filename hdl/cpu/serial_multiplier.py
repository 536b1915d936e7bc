"""The serial multiplier: one 16x16 multiplier (one MULT18X18D) and a 64-bit accumulator."""

from amaranth import *
from amaranth.lib import wiring

from bpfpga.hdl.cpu.multiplier import MUL_PORTS, limbs

# the ten products that reach the low 64 bits, in order of their limb offset i + j: the three
# that make the low 32 bits first, so that mul32 is done after them
SEQ = [(i, j) for d in range(4) for i in range(d + 1) for j in range(4) if i + j == d]


class SerialMultiplier(wiring.Component):
    """The low 64 bits of ``a`` * ``b``: product k is formed in X's ``step`` k (registered)
    and added at offset 16 (i + j) in step k + 1; ``done`` at step 11 (mul64) or 4 (mul32).
    ``a`` and ``b`` must hold until then. Trades the parallel multiplier's nine MULT18X18D,
    product registers and adder tree for 7 cycles of mul64."""

    def __init__(self):
        super().__init__(MUL_PORTS)

    def elaborate(self, platform):
        m = Module()
        la, lb = limbs(self.a), limbs(self.b)
        xc = self.step
        mi, mj = Signal(2), Signal(2)
        with m.Switch(xc):
            for k, (i, j) in enumerate(SEQ):
                with m.Case(k):
                    m.d.comb += [mi.eq(i), mj.eq(j)]
        pr = Signal(32)
        prs = Signal(2)
        m.d.sync += [pr.eq(Array(la)[mi] * Array(lb)[mj]), prs.eq(mi + mj)]
        shifted = Signal(64)
        with m.Switch(prs):
            for d in range(4):
                with m.Case(d):
                    m.d.comb += shifted.eq(pr << (16 * d))
        with m.If(xc == 1):
            m.d.sync += self.res.eq(shifted)
        with m.Elif(xc <= len(SEQ)):
            m.d.sync += self.res.eq(self.res + shifted)
        m.d.comb += self.done.eq(xc == Mux(self.is64, len(SEQ) + 1, 4))
        return m
