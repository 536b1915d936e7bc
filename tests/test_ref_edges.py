"""Edge cases of eBPF semantics on the reference machine (the ones hBPF gets wrong, and more)."""
import pytest

from bpfpga import traps
from bpfpga.compiler.asm import assemble
from bpfpga.errors import LoadError
from bpfpga.sim.ref import run_program

M64 = (1 << 64) - 1


def r0(src, mem=b""):
    res = run_program(assemble(src), mem)
    assert res.trap == 0, res.trap_detail
    return res.r0


@pytest.mark.parametrize("src,want", [
    ("mov %r0, -1\nexit", M64),                                    # imm sign-extended to 64
    ("mov %r0, -1\nadd %r0, 0\nexit", M64),
    ("lddw %r0, 0xffffffffffffffff\nmov32 %r0, %r0\nexit", 0xFFFFFFFF),  # mov32 clears top
    ("lddw %r0, 0x1ffffffff\nadd32 %r0, 1\nexit", 0),
    ("mov32 %r0, -1\nexit", 0xFFFFFFFF),
    # signed jumps compare all 64 bits
    ("lddw %r1, 0x80000000\nmov %r0, 1\njsgt %r1, 0, +1\nmov %r0, 2\nexit", 1),
    ("lddw %r1, 0x8000000000000000\nmov %r0, 1\njsgt %r1, 0, +1\nmov %r0, 2\nexit", 2),
    ("mov %r1, -1\nmov %r0, 1\njslt %r1, 0, +1\nmov %r0, 2\nexit", 1),
    ("lddw %r1, 0xffffffff\nmov %r0, 1\njslt32 %r1, 0, +1\nmov %r0, 2\nexit", 1),
    # division / modulo by zero
    ("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit", 0),
    ("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit", 7),
    ("lddw %r0, 0x100000007\nmov %r1, 0\nmod32 %r0, %r1\nexit", 7),   # upper half zeroed
    ("lddw %r0, 0x100000007\ndiv32 %r0, 0\nexit", 0),
    # shift amounts are masked
    ("mov32 %r0, 1\nlsh32 %r0, 33\nexit", 2),
    ("mov %r0, 1\nlsh %r0, 65\nexit", 2),
    ("mov32 %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1\nexit", 2),
    ("mov32 %r0, -8\narsh32 %r0, 1\nexit", 0xFFFFFFFC),
    ("mov %r0, -8\narsh %r0, 1\nexit", M64 - 3),
    # INT_MIN / -1 and INT_MIN % -1 (v4 signed division)
    ("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit", 1 << 63),
    ("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit", 0),
    ("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit", 0x80000000),
    ("mov32 %r0, 0x80000000\nsmod32 %r0, -1\nexit", 0),
    ("mov %r0, -7\nsdiv %r0, 2\nexit", M64 - 2),                  # truncates toward zero
    ("mov %r0, -7\nsmod %r0, 2\nexit", M64),                      # sign of the dividend
    ("mov %r0, 7\nsmod %r0, -2\nexit", 1),
    ("mov %r0, -7\nmov %r1, 0\nsmod %r0, %r1\nexit", M64 - 6),
    # byte swaps and sign extension
    ("lddw %r0, 0x1122334455667788\nbe16 %r0\nexit", 0x8877),
    ("lddw %r0, 0x1122334455667788\nle32 %r0\nexit", 0x55667788),
    ("lddw %r0, 0x1122334455667788\nbswap64 %r0\nexit", 0x8877665544332211),
    ("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit", M64 - 0x7F),
    ("mov %r1, 0x80\nmovsx832 %r0, %r1\nexit", 0xFFFFFF80),
    ("lddw %r1, 0x80000000\nmovsx3264 %r0, %r1\nexit", 0xFFFFFFFF80000000),
])
def test_alu_and_jump_edges(src, want):
    assert r0(src) == want


@pytest.mark.parametrize("src,want", [
    # fetch forms return the old value in src
    ("mov %r1, 5\nstxdw [%r10-8], %r1\nmov %r2, 3\nlock fetch add [%r10-8], %r2\n"
     "ldxdw %r0, [%r10-8]\nlsh %r0, 8\nor %r0, %r2\nexit", (8 << 8) | 5),
    ("mov %r1, 0xf0\nstxw [%r10-4], %r1\nmov %r2, 0x0f\nlock fetch or32 [%r10-4], %r2\n"
     "ldxw %r0, [%r10-4]\nlsh %r0, 8\nor %r0, %r2\nexit", (0xFF << 8) | 0xF0),
    ("mov %r1, 7\nstxdw [%r10-8], %r1\nmov %r2, 9\nlock xchg [%r10-8], %r2\n"
     "ldxdw %r0, [%r10-8]\nlsh %r0, 8\nor %r0, %r2\nexit", (9 << 8) | 7),
    # cmpxchg against r0: success writes, r0 gets the old value either way
    ("mov %r1, 7\nstxdw [%r10-8], %r1\nmov %r0, 7\nmov %r2, 9\nlock cmpxchg [%r10-8], %r2\n"
     "ldxdw %r3, [%r10-8]\nlsh %r3, 8\nor %r0, %r3\nexit", (9 << 8) | 7),
    ("mov %r1, 7\nstxdw [%r10-8], %r1\nmov %r0, 6\nmov %r2, 9\nlock cmpxchg [%r10-8], %r2\n"
     "ldxdw %r3, [%r10-8]\nlsh %r3, 8\nor %r0, %r3\nexit", (7 << 8) | 7),
    # the 32-bit cmpxchg compares only the low half of r0 and zero-extends the result
    ("lddw %r1, 0xffffffff\nstxw [%r10-4], %r1\nmov %r0, -1\nmov %r2, 1\n"
     "lock cmpxchg32 [%r10-4], %r2\nldxw %r3, [%r10-4]\nlsh %r3, 32\nor %r0, %r3\nexit",
     (1 << 32) | 0xFFFFFFFF),
])
def test_atomics(src, want):
    assert r0(src) == want


def test_ldxs_sign_extends():
    assert r0("ldxsb %r0, [%r1]\nexit", b"\x80") == M64 - 0x7F
    assert r0("ldxsh %r0, [%r1]\nexit", b"\x00\x80") == M64 - 0x7FFF
    assert r0("ldxsw %r0, [%r1]\nexit", b"\x00\x00\x00\x80") == 0xFFFFFFFF80000000


def test_bounds_checked_every_access():
    res = run_program(assemble("ldxw %r0, [%r1+2]\nexit"), b"\x01\x02\x03\x04")
    assert res.trap == traps.TRAP_MEM and res.trap_pc == 0
    res = run_program(assemble("stxdw [%r10+0], %r1\nexit"))
    assert res.trap == traps.TRAP_MEM
    res = run_program(assemble("stxdw [%r10-520], %r1\nexit"))   # below the 512-byte frame
    assert res.trap == 0                                         # frame 1 is mapped...
    res = run_program(assemble("mov %r1, 0\nldxdw %r0, [%r1]\nexit"))
    assert res.trap == traps.TRAP_MEM                            # null


def test_budget_and_r10():
    res = run_program(assemble("ja -1\nexit"), budget=1000)
    assert res.trap == traps.TRAP_BUDGET and res.insns == 1000
    res = run_program(assemble("mov %r10, 0\nexit"))
    assert res.trap == traps.TRAP_R10_WRITE and res.trap_pc == 0


def test_local_calls_frames_and_saved_registers():
    src = """
    mov %r6, 11
    mov %r1, 5
    stxdw [%r10-8], %r1
    call local f
    ldxdw %r2, [%r10-8]
    add %r0, %r6
    add %r0, %r2
    exit
    f:
    mov %r6, 100
    stxdw [%r10-8], %r6
    mov %r0, %r1
    exit
    """
    assert r0(src) == 5 + 11 + 5


def test_call_depth_trap():
    res = run_program(assemble("call local f\nexit\nf:\ncall local f\nexit"))
    assert res.trap == traps.TRAP_CALL_DEPTH


def test_unknown_helper_and_jump_out_of_range():
    res = run_program(assemble("call 99\nexit"))
    assert res.trap == traps.TRAP_HELPER
    with pytest.raises(LoadError, match="outside the program"):
        run_program(assemble("ja +5\nexit"))
