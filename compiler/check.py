"""Static checks on a program, the subset of the kernel verifier's structural rules that a
strict loader applies before anything runs:

- every opcode is known and every reserved field is zero (bpfpga.isa.decode, strict);
- every jump and local call lands on an instruction inside the program (not inside lddw);
- the last instruction cannot fall through past the end;
- r10 is never written;
- no register is read before it is written on some path (the kernel's "R? !read_ok").

The hardware does not depend on these (it traps at run time on everything that matters); the
checks give a clear load-time error instead of a trap.
"""
from __future__ import annotations

from bpfpga import isa
from bpfpga.errors import VerifyError

ALL = (1 << 11) - 1


def _reads_writes(ins: isa.Insn) -> tuple[int, int]:
    """(registers read, registers written) as bit masks."""
    s = ins.spec
    k = s.kind
    d, sr = 1 << ins.dst, 1 << ins.src
    x = s.src_mode == isa.BPF_X
    if k == isa.ALU:
        if s.op == isa.BPF_MOV:
            return (sr if x else 0), d
        return d | (sr if x else 0), d
    if k in (isa.NEG, isa.END):
        return d, d
    if k == isa.MOVSX:
        return sr, d
    if k == isa.LDDW:
        return 0, d
    if k in (isa.LDX, isa.LDXSX):
        return sr, d
    if k == isa.ST:
        return d, 0
    if k == isa.STX:
        return d | sr, 0
    if k == isa.ATOMIC:
        if ins.imm == isa.BPF_CMPXCHG:
            return d | sr | 1, 1
        return d | sr, (sr if ins.imm & isa.BPF_FETCH else 0)
    if k == isa.JCOND:
        return d | (sr if x else 0), 0
    if k == isa.CALLX:
        return d, 0
    if k == isa.EXIT:
        return 1, 0
    if k in (isa.LDABS, isa.LDIND):
        return (sr if k == isa.LDIND else 0), 1
    return 0, 0


def check(program: bytes, entry_regs: tuple[int, ...] = (1, 10), uninit: bool = True) -> list:
    """Run the checks; returns the decoded instructions. Raises VerifyError naming the pc."""
    try:
        insns = isa.decode(program, strict=True)
    except isa.DecodeError as e:
        raise VerifyError(str(e)) from None
    n = len(program) // 8
    at: dict[int, isa.Insn] = {}
    pc = 0
    for ins in insns:
        at[pc] = ins
        pc += ins.slots
    succ: dict[int, list[int]] = {}
    calls: set[int] = set()
    for pc, ins in at.items():
        s = ins.spec
        k = s.kind
        nxt = pc + ins.slots
        if k in (isa.ALU, isa.NEG, isa.END, isa.MOVSX, isa.LDDW, isa.LDX, isa.LDXSX) \
                and ins.dst == 10:
            raise VerifyError(f"instruction {pc}: {s.name} writes r10 (frame pointer is "
                              f"read-only)")
        out = []
        if k == isa.JA:
            out = [pc + 1 + (ins.imm if s.cls == isa.BPF_JMP32 else ins.off)]
        elif k == isa.JCOND:
            out = [nxt, pc + 1 + ins.off]
        elif k == isa.EXIT:
            out = []
        elif k == isa.CALL and ins.src == isa.BPF_PSEUDO_CALL:
            t = pc + 1 + ins.imm
            if t not in at:
                raise VerifyError(f"instruction {pc}: call target {t} is not an instruction")
            calls.add(t)
            out = [nxt]
        else:
            out = [nxt]
        for t in out:
            if t == n:
                raise VerifyError(f"instruction {pc}: execution can fall off the end of the "
                                  f"program")
            if t not in at:
                raise VerifyError(f"instruction {pc}: jump target {t} is "
                                  + ("outside the program" if not 0 <= t < n else
                                     "inside an lddw"))
        succ[pc] = out
    if uninit:
        _check_init(at, succ, calls, entry_regs)
    return insns


def _check_init(at, succ, calls, entry_regs) -> None:
    # forward "definitely written" analysis; a subprogram starts with r1..r5 and r10
    state: dict[int, int] = {}
    init0 = 0
    for r in entry_regs:
        init0 |= 1 << r
    work = [(0, init0)]
    sub = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 10)
    work += [(t, sub) for t in calls]
    while work:
        pc, st = work.pop()
        old = state.get(pc)
        new = st if old is None else old & st
        if old is not None and new == old:
            continue
        state[pc] = new
        ins = at[pc]
        rd, wr = _reads_writes(ins)
        missing = rd & ~new
        if missing:
            reg = (missing & -missing).bit_length() - 1
            raise VerifyError(f"instruction {pc}: {ins.spec.name} reads r{reg} before it is "
                              f"written")
        after = new | wr
        if ins.spec.kind in (isa.CALL, isa.CALLX):
            after = (after & ~0b111110) | 1        # r1..r5 clobbered, r0 = return value
        for t in succ[pc]:
            work.append((t, after))
