"""Jumps and calls whose target lies outside the program trap 8 (pc_out_of_range) at run time
in RTL, only when taken (the reference machine rejects such programs at load time, so the
fuzz comparison never sees them); the CPU decides them a cycle after the comparison."""
from __future__ import annotations

import pytest

from bpfpga import isa, traps

pytestmark = pytest.mark.rtl

JMP, ALU64 = isa.BPF_JMP, isa.BPF_ALU64


def I(op, dst=0, src=0, off=0, imm=0):  # noqa: E743
    return isa.Insn(op, dst, src, off, imm)


MOV1 = I(ALU64 | isa.BPF_MOV | isa.BPF_K, 1, imm=5)
MOV0 = I(ALU64 | isa.BPF_MOV | isa.BPF_K, 0, imm=9)
EXIT = I(JMP | isa.BPF_EXIT)

CASES = [
    # (program, trap, trap pc, r0, executed)
    ([MOV1, I(JMP | isa.BPF_JEQ | isa.BPF_K, 1, 0, 100, 5), MOV0, EXIT],
     traps.TRAP_PC, 1, None, 1),                                      # taken: trap
    ([MOV1, I(JMP | isa.BPF_JEQ | isa.BPF_K, 1, 0, 100, 6), MOV0, EXIT],
     0, None, 9, 4),                                                  # not taken: runs on
    ([MOV1, I(JMP | isa.BPF_JEQ | isa.BPF_K, 1, 0, -3, 6), MOV0, EXIT],
     0, None, 9, 4),                                                  # negative, not taken
    ([MOV1, I(JMP | isa.BPF_JNE | isa.BPF_K, 1, 0, -3, 6), MOV0, EXIT],
     traps.TRAP_PC, 1, None, 1),                                      # negative, taken
    ([MOV1, I(JMP | isa.BPF_JA, 0, 0, 50), MOV0, EXIT], traps.TRAP_PC, 1, None, 1),
    ([MOV1, I(JMP | isa.BPF_CALL, 0, isa.BPF_PSEUDO_CALL, 0, 40), MOV0, EXIT],
     traps.TRAP_PC, 1, None, 1),
]


def test_out_of_range_targets_trap_only_when_taken():
    from bpfpga.sim.rtl import run_programs
    res = run_programs([(isa.encode(p), b"") for p, *_ in CASES])
    for (prog, trap, pc, r0, n), r in zip(CASES, res):
        assert r.trap == trap, (prog, r)
        assert r.insns == n, (prog, r)
        if trap:
            assert r.trap_pc == pc, (prog, r)
        else:
            assert r.r0 == r0, (prog, r)
