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
        if "dst" in s.operands.writes and ins.dst == 10:
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
        rd, wr = isa.reg_masks(ins)     # the ISA's operand facts
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


# --------------------------------------------------------------------- read-only maps
H_MAP_LOOKUP, H_MAP_UPDATE, H_MAP_DELETE, H_XDP_LOAD_BYTES = 1, 2, 3, 189
# helpers that write into map ``r1`` (the kernel's record_func_map: "write into map
# forbidden" on a BPF_F_RDONLY_PROG map) and helpers that write to memory at an argument
MAP_WRITERS = {H_MAP_UPDATE, H_MAP_DELETE}
MEM_WRITERS = {H_XDP_LOAD_BYTES: 3}


def check_readonly(obj, entry=None, progs=None) -> None:
    """Refuse, as the kernel's verifier does at load, an XDP program that writes into a map
    with BPF_F_RDONLY_PROG (`.rodata*`): a store, an atomic or a helper writing through a
    pointer into its value, or map_update/delete_elem on it. A forward analysis of which
    registers and 8-byte stack slots may hold such a pointer (lddw of the value, plus or
    minus constants and registers, spills to the stack, map_lookup_elem of the map), joined
    over every path; a pointer hidden elsewhere (in another map, say) is not followed.
    ``progs``: the programs a target loads (default: ``entry``, or the first XDP program, and
    every program a PROG_ARRAY's initial slots name), as the kernel checks those it loads."""
    from bpfpga.obj import BPF_F_RDONLY_PROG
    ro = {i: m.name for i, m in enumerate(obj.maps) if m.map_flags & BPF_F_RDONLY_PROG}
    if not ro:
        return
    if progs is None:
        progs = [entry or obj.program(None)] + [obj.program(n) for m in obj.maps
                                                if m.type == 3 for n in m.init_slots.values()]
    for p in progs:
        bad = _readonly_write(p.insns, ro)
        if bad is not None:
            pc, idx, what = bad
            raise VerifyError(f"{obj.path}: program '{p.name}': instruction {pc}: {what} "
                              f"read-only map '{ro[idx]}' (BPF_F_RDONLY_PROG; the kernel's "
                              f"verifier refuses it: write into map forbidden)")


def _readonly_write(program: bytes, ro: dict[int, str]):
    """(pc, map index, what) of the first write into a read-only map found, or None. The
    abstract state is (registers, stack): a frozenset of map indices per register (a value
    pointer) or ("h", index) entries (the map itself), the same per spilled stack slot."""
    insns = isa.decode(program, strict=False)
    at, pc = {}, 0
    for ins in insns:
        at[pc] = ins
        pc += ins.slots
    E = frozenset()
    empty = ((E,) * 11, ())
    states: dict[int, tuple] = {}
    work = [(0, empty)]

    def join(a, b):
        regs = tuple(x | y for x, y in zip(a[0], b[0]))
        stack = dict(a[1])
        for k, v in b[1]:
            stack[k] = stack.get(k, E) | v
        return regs, tuple(sorted(stack.items()))

    while work:
        pc, st = work.pop()
        if pc not in at:
            continue
        old = states.get(pc)
        new = st if old is None else join(old, st)
        if new == old:
            continue
        states[pc] = new
        ins = at[pc]
        s, k = ins.spec, ins.spec.kind if ins.spec else None
        regs, stack = list(new[0]), dict(new[1])
        nxt = [pc + ins.slots]

        def ptrs(r):
            return {x for x in regs[r] if isinstance(x, int)}

        if k == isa.LDDW:
            idx = ins.imm & 0xFFFFFFFF
            regs[ins.dst] = (frozenset({idx}) if ins.src == isa.BPF_PSEUDO_MAP_IDX_VALUE
                             and idx in ro else
                             frozenset({("h", idx)}) if ins.src == isa.BPF_PSEUDO_MAP_IDX
                             and idx in ro else E)
        elif k == isa.ALU:
            x = s.src_mode == isa.BPF_X
            if s.cls != isa.BPF_ALU64:
                regs[ins.dst] = E
            elif s.op == isa.BPF_MOV:
                regs[ins.dst] = regs[ins.src] if x else E
            elif s.op == isa.BPF_ADD:
                regs[ins.dst] = regs[ins.dst] | (regs[ins.src] if x else E)
            elif s.op != isa.BPF_SUB:
                regs[ins.dst] = E
        elif k in (isa.NEG, isa.END, isa.MOVSX, isa.LDXSX, isa.LDABS, isa.LDIND):
            regs[ins.dst if k not in (isa.LDABS, isa.LDIND) else 0] = E
        elif k == isa.LDX:
            regs[ins.dst] = stack.get(ins.off, E) if ins.src == 10 and \
                s.size == isa.BPF_DW else E
        elif k in (isa.ST, isa.STX, isa.ATOMIC):
            hit = ptrs(ins.dst)
            if hit:
                return pc, min(hit), "store into"
            if ins.dst == 10:
                stack[ins.off] = regs[ins.src] if k == isa.STX and s.size == isa.BPF_DW \
                    else E
            if k == isa.ATOMIC and (ins.imm & isa.BPF_FETCH):
                regs[0 if ins.imm == isa.BPF_CMPXCHG else ins.src] = E
        elif k == isa.JA:
            nxt = [pc + 1 + (ins.imm if s.cls == isa.BPF_JMP32 else ins.off)]
        elif k == isa.JCOND:
            nxt.append(pc + 1 + ins.off)
        elif k == isa.EXIT:
            nxt = []
        elif k == isa.CALL and ins.src == isa.BPF_PSEUDO_CALL:
            callee = (tuple(regs[r] if 1 <= r <= 5 else E for r in range(11)), ())
            work.append((pc + 1 + ins.imm, callee))
            for r in range(6):
                regs[r] = E
        elif k in (isa.CALL, isa.CALLX):
            h = ins.imm if k == isa.CALL and ins.src == 0 else None
            handles = {x[1] for x in regs[1] if isinstance(x, tuple)}
            if h in MAP_WRITERS and handles:
                return pc, min(handles), ("update of" if h == H_MAP_UPDATE else "delete in")
            if h in MEM_WRITERS and ptrs(MEM_WRITERS[h]):
                return pc, min(ptrs(MEM_WRITERS[h])), "helper write into"
            r0 = frozenset(handles) if h == H_MAP_LOOKUP else E
            for r in range(6):
                regs[r] = E
            regs[0] = r0
        for t in nxt:
            work.append((t, (tuple(regs), tuple(sorted(stack.items())))))
    return None
