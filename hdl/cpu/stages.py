"""The CPU's stage payloads and its stall/kill conditions.

A payload is what one stage hands the next in one register: D's decoded instruction with its
operands and precomputed address and target (`dx_layout`), the address state that X's memory
unit works from (`MEM_ADDR`, part of it), and the load that W writes back (`W_LOAD`). A
condition (`Cond`) is the OR of named reasons, each kept as a signal of its own so that a
waveform says why a stage stalled.
"""
from __future__ import annotations

from amaranth import Module, Signal, Cat
from amaranth.lib import data

from bpfpga.hdl.decode import KIND_BITS

# a memory access's address as X's window check needs it: the low 32 bits, the end (address +
# size) and the flags from which "the upper 32 bits are zero" is combined in X (the carry and
# the base's upper word are registered apart so that D does not wait for their combination)
MEM_ADDR = data.StructLayout({
    "rdy": 1,       # addr/end and the flags hold this access's address (else X computes it)
    "addr": 32,
    "end": 32,      # addr + the access size (low 32 bits)
    "ecross": 1,    # the end lies past the address's 256 MiB window nibble
    "ecarry": 1,    # the end's carry out of bit 31
    "offneg": 1,    # the offset is negative
    "carry": 1,     # carry out of base[0:32] + off
    "ahz": 1,       # the base's upper word is 0, 1, all ones
    "ah1": 1,
    "ahm": 1,
})

# a load leaving X: W extends ld_q by these and writes it back
W_LOAD = data.StructLayout({"idx": 4, "size": 2, "sx": 1, "abs": 1})


def dx_layout(pw: int) -> data.StructLayout:
    """The D -> X payload of a CPU whose program memory has 2**pw slots."""
    return data.StructLayout({
        "pc": pw + 1,
        "kind": KIND_BITS, "op": 4, "is64": 1, "srcx": 1, "size": 2, "signed": 1, "swap": 1,
        "trap": 4,
        "dst": 4, "src": 4, "off": 16, "imm": 32,
        "a": 64, "b": 64,
        "fwd_a": 1,     # the operand is the value X wrote as this instruction left D
        "fwd_b": 1,
        "target": pw + 1,   # branch / call target, or the return pc of an exit
        "tbad": 1,      # the target is outside the program
        "br": 1,        # a jump with its target in range and no trap
        "ja": 1,
        "mem": MEM_ADDR,
    })


class Cond:
    """A stall or kill condition: true when any of its reasons is."""

    def __init__(self, m: Module, name: str):
        self._m, self.name, self.reasons = m, name, []
        self.value = Signal(name=name)

    def on(self, reason: str, expr) -> "Cond":
        s = Signal(name=f"{self.name}_{reason}")
        self._m.d.comb += s.eq(expr)
        self.reasons.append(s)
        self._m.d.comb += self.value.eq(Cat(*self.reasons).any())
        return self
