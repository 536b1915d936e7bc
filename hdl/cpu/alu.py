"""The one-cycle ALU: add/sub, logic, shifts (hdl/cpu/shifter.py), neg, mov, movsx, byte swaps."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga import isa
from bpfpga.hdl.cpu.shifter import Shifter


def bswap(v, nbytes):
    return Cat(*[v[8 * i:8 * i + 8] for i in reversed(range(nbytes))])


class ALU(wiring.Component):
    """``op`` is the upper nibble of a BPF_ALU operation; ``size`` and ``swap`` the decoder's
    (hdl/decode.py). Results are 64 bits wide; for a 32-bit operation the caller keeps the
    low word (``result``, ``movsx``) — ``endr`` is complete."""
    op: In(4)
    is64: In(1)
    size: In(2)
    swap: In(1)
    a: In(64)
    b: In(64)
    result: Out(64)
    neg_a: Out(64)      # -a, also the divider's |a|
    movsx: Out(64)
    endr: Out(64)

    def elaborate(self, platform):
        m = Module()
        m.submodules.shifter = shifter = Shifter()
        a, b, op = self.a, self.b, self.op
        m.d.comb += [shifter.a.eq(a), shifter.amount.eq(b[0:6]), shifter.is64.eq(self.is64),
                     shifter.left.eq(op == isa.BPF_LSH >> 4),
                     shifter.arith.eq(op == isa.BPF_ARSH >> 4)]
        m.d.comb += self.neg_a.eq(-a)
        is_sub = op == (isa.BPF_SUB >> 4)
        addsub = Signal(64)
        m.d.comb += addsub.eq(a + Mux(is_sub, ~b, b) + is_sub)     # one carry chain
        alu = self.result
        with m.Switch(op):
            with m.Case(isa.BPF_ADD >> 4, isa.BPF_SUB >> 4):
                m.d.comb += alu.eq(addsub)
            with m.Case(isa.BPF_OR >> 4):
                m.d.comb += alu.eq(a | b)
            with m.Case(isa.BPF_AND >> 4):
                m.d.comb += alu.eq(a & b)
            with m.Case(isa.BPF_XOR >> 4):
                m.d.comb += alu.eq(a ^ b)
            with m.Case(isa.BPF_LSH >> 4, isa.BPF_RSH >> 4, isa.BPF_ARSH >> 4):
                m.d.comb += alu.eq(shifter.result)
            with m.Case(isa.BPF_NEG >> 4):
                m.d.comb += alu.eq(self.neg_a)
            with m.Case(isa.BPF_MOV >> 4):
                m.d.comb += alu.eq(b)
        with m.Switch(self.size):
            with m.Case(0):
                m.d.comb += self.movsx.eq(b[0:8].as_signed())
            with m.Case(1):
                m.d.comb += self.movsx.eq(b[0:16].as_signed())
            with m.Default():
                m.d.comb += self.movsx.eq(b[0:32].as_signed())
        with m.Switch(Cat(self.size, self.swap)):
            with m.Case(0b001):
                m.d.comb += self.endr.eq(a[0:16])
            with m.Case(0b010):
                m.d.comb += self.endr.eq(a[0:32])
            with m.Case(0b011):
                m.d.comb += self.endr.eq(a)
            with m.Case(0b101):
                m.d.comb += self.endr.eq(bswap(a, 2))
            with m.Case(0b110):
                m.d.comb += self.endr.eq(bswap(a, 4))
            with m.Case(0b111):
                m.d.comb += self.endr.eq(bswap(a, 8))
        return m
