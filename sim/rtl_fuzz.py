"""Differential fuzzing of the rtl target against the reference machine.

Random valid programs come from a hypothesis strategy (:func:`programs`): a prologue that
gives r0..r8 known values and r9 the mem pointer, a body of straight-line ALU mixes (32/64-bit,
mul/div/mod signed and unsigned, shifts, movsx, byte swaps, lddw), stack loads and stores
(every size, signed loads), atomics on the stack, loads and stores on mem (some out of bounds,
so memory traps are compared too), forward conditional and unconditional jumps, helper calls
(call 5, callx), and an epilogue that folds r1..r8 and a few stack slots into r0. Loops are
left out: every program ends, most within a few dozen instructions.

:func:`collect` draws N programs with hypothesis (generation phase only, no database), and
:func:`compare` runs them as ONE batch on rtl and on the reference machine and returns the
differences (r0, trap reason, trap pc, executed instructions, final mem).
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from bpfpga import isa
from bpfpga.isa import Insn

REGS_W = list(range(9))          # body destinations: r0..r8 (r9 holds mem, r10 the frame)
REGS_R = list(range(10))
IMMS = st.one_of(st.sampled_from([0, 1, -1, 2, 7, 31, 32, 33, 63, 64, -2**31, 2**31 - 1,
                                  0x7FFF, -0x8000, 0xFF, 0x80]),
                 st.integers(-2**31, 2**31 - 1))
IMM64 = st.one_of(st.sampled_from([0, 1, -1, 2**63, 2**63 - 1, 2**32, 2**32 - 1,
                                   0x8000_0000, 0xFFFF_FFFF_0000_0000]),
                  st.integers(0, 2**64 - 1))
ALU_BINOPS = [op for name, op in isa.ALU_OPS.items() if op != isa.BPF_NEG]


@dataclass
class Job:
    program: bytes
    mem: bytes
    budget: int


def _ins(op, dst=0, src=0, off=0, imm=0) -> Insn:
    return Insn(op, dst, src, off, imm)


@st.composite
def _alu(draw):
    cls = draw(st.sampled_from([isa.BPF_ALU, isa.BPF_ALU64]))
    kind = draw(st.sampled_from(["bin", "bin", "bin", "neg", "movsx", "end"]))
    dst = draw(st.sampled_from(REGS_W))
    if kind == "neg":
        return [_ins(cls | isa.BPF_NEG, dst)]
    if kind == "movsx":
        bits = draw(st.sampled_from([8, 16] if cls == isa.BPF_ALU else [8, 16, 32]))
        return [_ins(cls | isa.BPF_MOV | isa.BPF_X, dst, draw(st.sampled_from(REGS_R)),
                     bits)]
    if kind == "end":
        bits = draw(st.sampled_from([16, 32, 64]))
        if cls == isa.BPF_ALU64:
            return [_ins(isa.BPF_ALU64 | isa.BPF_END, dst, imm=bits)]
        src = draw(st.sampled_from([isa.BPF_TO_LE, isa.BPF_TO_BE]))
        return [_ins(isa.BPF_ALU | isa.BPF_END | src, dst, imm=bits)]
    op = draw(st.sampled_from(ALU_BINOPS))
    off = draw(st.sampled_from([0, 1])) if op in (isa.BPF_DIV, isa.BPF_MOD) else 0
    if draw(st.booleans()):
        return [_ins(cls | op | isa.BPF_X, dst, draw(st.sampled_from(REGS_R)), off)]
    return [_ins(cls | op | isa.BPF_K, dst, 0, off, draw(IMMS))]


@st.composite
def _lddw(draw):
    return [_ins(isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW, draw(st.sampled_from(REGS_W)),
                 imm=draw(IMM64))]


@st.composite
def _stack(draw):
    size = draw(st.sampled_from(list(isa.SIZE_BYTES)))
    n = isa.SIZE_BYTES[size]
    off = draw(st.integers(-512, -n))
    kind = draw(st.sampled_from(["ldx", "ldxs", "st", "stx", "atomic"]))
    if kind == "ldx" or (kind == "ldxs" and size == isa.BPF_DW):
        return [_ins(isa.BPF_LDX | isa.BPF_MEM | size, draw(st.sampled_from(REGS_W)), 10,
                     off)]
    if kind == "ldxs":
        return [_ins(isa.BPF_LDX | isa.BPF_MEMSX | size, draw(st.sampled_from(REGS_W)), 10,
                     off)]
    if kind == "st":
        return [_ins(isa.BPF_ST | isa.BPF_MEM | size, 10, 0, off, draw(IMMS))]
    if kind == "stx":
        return [_ins(isa.BPF_STX | isa.BPF_MEM | size, 10, draw(st.sampled_from(REGS_R)),
                     off)]
    asize = draw(st.sampled_from([isa.BPF_W, isa.BPF_DW]))
    off = draw(st.integers(-512, -isa.SIZE_BYTES[asize]))
    aop = draw(st.sampled_from([isa.BPF_ADD, isa.BPF_OR, isa.BPF_AND, isa.BPF_XOR]))
    imm = draw(st.sampled_from([aop, aop | isa.BPF_FETCH, isa.BPF_XCHG, isa.BPF_CMPXCHG]))
    return [_ins(isa.BPF_STX | isa.BPF_ATOMIC | asize, 10, draw(st.sampled_from(REGS_W)),
                 off, imm)]


def _mem(memlen):
    @st.composite
    def gen(draw):
        size = draw(st.sampled_from(list(isa.SIZE_BYTES)))
        # mostly inside mem, sometimes beyond it (a memory trap on both sides)
        hi = max(0, memlen - isa.SIZE_BYTES[size])
        off = draw(st.one_of(st.integers(0, hi), st.integers(-8, memlen + 8)))
        kind = draw(st.sampled_from(["ldx", "stx", "st"]))
        if kind == "ldx":
            return [_ins(isa.BPF_LDX | isa.BPF_MEM | size, draw(st.sampled_from(REGS_W)), 9,
                         off)]
        if kind == "stx":
            return [_ins(isa.BPF_STX | isa.BPF_MEM | size, 9, draw(st.sampled_from(REGS_R)),
                         off)]
        return [_ins(isa.BPF_ST | isa.BPF_MEM | size, 9, 0, off, draw(IMMS))]
    return gen()


@st.composite
def _call(draw):
    if draw(st.booleans()):
        return [_ins(isa.BPF_JMP | isa.BPF_CALL, imm=draw(st.sampled_from([5] * 7 + [1])))]
    r = draw(st.sampled_from(REGS_W))
    return [_ins(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, r, imm=draw(st.sampled_from([5] * 7 + [9]))),
            _ins(isa.BPF_JMP | isa.BPF_CALL | isa.BPF_X, r)]


@st.composite
def programs(draw, max_body: int = 40):
    memlen = draw(st.sampled_from([0, 8, 16, 24, 64, 13]))
    mem = bytes(draw(st.lists(st.integers(0, 255), min_size=memlen, max_size=memlen)))
    pro = [_ins(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_X, 9, 1)]
    for r in range(9):
        if draw(st.booleans()):
            pro.append(_ins(isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW, r, imm=draw(IMM64)))
        else:
            pro.append(_ins(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, r, imm=draw(IMMS)))
    n = draw(st.integers(1, max_body))
    body: list = []
    for _ in range(n):
        cat = draw(st.sampled_from(["alu"] * 6 + ["lddw", "stack", "stack", "stack", "mem",
                                                  "jmp", "jmp", "call"]))
        if cat == "alu":
            body.append(draw(_alu()))
        elif cat == "lddw":
            body.append(draw(_lddw()))
        elif cat == "stack":
            body.append(draw(_stack()))
        elif cat == "mem":
            body.append(draw(_mem(memlen)))
        elif cat == "call":
            body.append(draw(_call()))
        else:
            body.append(("jmp", None))
    epi = []
    for r in range(1, 9):
        epi.append(_ins(isa.BPF_ALU64 | isa.BPF_XOR | isa.BPF_X, 0, r))
    for off in sorted(set(draw(st.lists(st.integers(1, 64), max_size=4)))):
        epi.append(_ins(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 1, 10, -8 * off))
        epi.append(_ins(isa.BPF_ALU64 | isa.BPF_XOR | isa.BPF_X, 0, 1))
    epi.append(_ins(isa.BPF_JMP | isa.BPF_EXIT))
    # lay out: slot index of every body item, then resolve the forward jumps
    starts = []
    slot = sum(i.slots for i in pro)
    for item in body:
        starts.append(slot)
        slot += 1 if isinstance(item, tuple) else sum(i.slots for i in item)
    end = slot                    # the epilogue: a jump target for every forward jump
    out = list(pro)
    for k, item in enumerate(body):
        if isinstance(item, tuple):
            targets = starts[k + 1:] + [end]
            t = draw(st.sampled_from(targets))
            off = t - starts[k] - 1
            if draw(st.integers(0, 4)) == 0:
                if draw(st.booleans()):
                    out.append(_ins(isa.BPF_JMP | isa.BPF_JA, off=off))
                else:
                    out.append(_ins(isa.BPF_JMP32 | isa.BPF_JA, imm=off))
                continue
            cls = draw(st.sampled_from([isa.BPF_JMP, isa.BPF_JMP32]))
            op = draw(st.sampled_from(list(isa.JMP_OPS.values())))
            dst = draw(st.sampled_from(REGS_R))
            if draw(st.booleans()):
                out.append(_ins(cls | op | isa.BPF_X, dst, draw(st.sampled_from(REGS_R)),
                                off))
            else:
                out.append(_ins(cls | op | isa.BPF_K, dst, 0, off, draw(IMMS)))
        else:
            out.extend(item)
    out.extend(epi)
    budget = draw(st.sampled_from([1_000_000] * 9 + [draw(st.integers(0, 40))]))
    return Job(isa.encode(out), mem, budget)


def collect(n: int, seed: int = 0, max_body: int = 40) -> list[Job]:
    """Draw n programs from :func:`programs` with hypothesis (generation only)."""
    from hypothesis import HealthCheck, Phase, given, settings
    jobs: list[Job] = []

    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              derandomize=seed == 0, suppress_health_check=list(HealthCheck))
    @given(programs(max_body))
    def gen(job):
        jobs.append(job)
    if seed:
        from hypothesis import seed as hseed
        gen = hseed(seed)(gen)
    gen()
    return jobs[:n]


def compare(jobs: list[Job]) -> tuple[list[str], dict]:
    """Run jobs on rtl (one batch) and on the reference machine; return the differences."""
    from bpfpga.sim.ref import run_program
    from bpfpga.sim.rtl import run_jobs
    raw = run_jobs([{"program": j.program.hex(), "mem": j.mem.hex(), "budget": j.budget}
                    for j in jobs])
    diffs = []
    stats = {"programs": len(jobs), "traps": {}, "insns": 0, "cycles": 0}
    for i, (j, r) in enumerate(zip(jobs, raw)):
        ref = run_program(j.program, j.mem, budget=j.budget)
        if "error" in r:
            diffs.append(f"#{i}: rtl error {r['error']}")
            continue
        got = (r["r0"], r["trap"], r["trap_pc"] if r["trap"] else -1, r["insns"],
               bytes.fromhex(r["mem"]))
        exp = (ref.r0, ref.trap, ref.trap_pc if ref.trap else -1, ref.insns, ref.mem)
        stats["traps"][ref.trap] = stats["traps"].get(ref.trap, 0) + 1
        stats["insns"] += r["insns"]
        stats["cycles"] += r["cycles"]
        if got != exp:
            diffs.append(f"#{i}: program {j.program.hex()} mem {j.mem.hex()} budget {j.budget}"
                         f"\n  ref r0={exp[0]:#x} trap={exp[1]} pc={exp[2]} insns={exp[3]} "
                         f"mem={exp[4].hex()}\n  rtl r0={got[0]:#x} trap={got[1]} pc={got[2]} "
                         f"insns={got[3]} mem={got[4].hex()}")
    if len(raw) < len(jobs):
        diffs.append(f"rtl returned {len(raw)} results for {len(jobs)} jobs")
    return diffs, stats
