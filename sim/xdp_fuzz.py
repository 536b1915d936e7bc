"""Differential fuzzing of whole XDP programs: the engine (rtl) against the reference machine.

sim/rtl_fuzz.py fuzzes the CPU alone; this fuzzes what the engine adds around it: the verdict
the lane takes from r0 and the trap outputs, the counters, the packet that leaves, map values
and the stack between packets. Each program (:func:`program`) is an XDP function with the
shape clang gives real ones: ctx in r6, data and data_end in r7/r8, bounds-checked packet
loads and stores, stack slots, an ARRAY map updated through bpf_map_lookup_elem, forward
branches on packet bytes, r0 set to a verdict (0..4, or one out of range) at random points,
and at most one fault at a random point, often behind a branch on a packet byte so that
some packets of a run fault and others do not: a load from address 0, a store to the
read-only ctx, a packet access past data_end, a stack access outside the frame, or a loop
that spends the instruction budget.

:func:`run_case` runs one program over its packets on both targets (one engine simulation
serves every program in turn, ``Simulation(reaccept=True)``) and returns the differences:
verdict, trap reason, trap pc, executed instructions, the output packet of every verdict
but XDP_ABORTED, final map contents, and the engine's verdict and trap counters against
the counts the reference machine's results give.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from bpfpga import isa
from bpfpga.compiler.asm import assemble_insns
from bpfpga.obj import BPF_MAP_TYPE_ARRAY, BpfObject, MapDef, Program
from bpfpga.traps import TRAP_NAMES

VERDICTS = [0, 1, 2, 3, 4, 5, 0x7FFF_FFFF, -1]
MAP_ENTRIES = 8
BUDGET = 4000            # small, so that the budget fault ends fast in simulation
FAULTS = ["null", "ctx_store", "pkt_past_end", "stack_out", "loop"]


@dataclass
class Case:
    seed: int
    asm: str
    packets: list[bytes]
    fault: str | None
    obj: BpfObject = field(repr=False, default=None)


def _fault(kind: str) -> list[str]:
    return {
        "null": ["mov %r1, 0", "ldxdw %r1, [%r1+0]"],
        "ctx_store": ["stw [%r6+0], 1"],
        "pkt_past_end": ["ldxb %r1, [%r8+0]"],
        "stack_out": ["ldxdw %r1, [%r10+8]"],
        "loop": ["spin:", "ja spin"],
    }[kind]


def program(rnd: random.Random) -> tuple[str, str | None]:
    """One random XDP program as asm text, and the fault it holds (None: none)."""
    lines = ["mov %r6, %r1", "ldxw %r7, [%r6+0]", "ldxw %r8, [%r6+4]",
             f"mov %r0, {rnd.choice(VERDICTS)}"]
    # every stack slot the body reads is written first (the kernel's verifier insists)
    for off in range(8, 72, 8):
        lines.append(f"stdw [%r10-{off}], {rnd.randrange(-2**31, 2**31)}")
    for r in range(1, 6):
        lines.append(f"mov %r{r}, {rnd.randrange(-1000, 1000)}")
    fault = rnd.choice(FAULTS + [None]) if rnd.random() < 0.85 else None
    n = rnd.randrange(3, 14)
    at = rnd.randrange(n + 1)
    lab = 0

    def label() -> str:
        nonlocal lab
        lab += 1
        return f"l{lab}"

    def bounds(end: int, skip: str) -> list[str]:
        return ["mov %r9, %r7", f"add %r9, {end}", f"jgt %r9, %r8, {skip}"]

    for i in range(n + 1):
        if i == at and fault is not None:
            if rnd.random() < 0.6:      # behind a packet byte: some packets fault
                skip, k = label(), rnd.randrange(14, 40)
                lines += bounds(k + 1, skip) + [f"ldxb %r1, [%r7+{k}]",
                                                f"jgt %r1, {rnd.randrange(256)}, {skip}"]
                lines += _fault(fault) + [f"{skip}:"]
            else:
                lines += _fault(fault)
        if i == n:
            break
        kind = rnd.choice(["alu", "alu", "pload", "pstore", "stack", "verdict", "map",
                           "branch"])
        r = rnd.randrange(1, 6)
        if kind == "alu":
            op = rnd.choice(["add", "sub", "mul", "or", "and", "xor", "lsh", "rsh", "arsh",
                             "mov", "div", "mod"])
            w = rnd.choice(["", "32"])
            src = f"%r{rnd.randrange(1, 6)}" if rnd.random() < 0.5 else \
                str(rnd.randrange(0, 64) if op in ("lsh", "rsh", "arsh")
                    else rnd.randrange(-2**31, 2**31))
            if op in ("lsh", "rsh", "arsh") and src.startswith("%"):
                lines.append(f"and{w} {src}, {31 if w else 63}")
            lines.append(f"{op}{w} %r{r}, {src}")
        elif kind in ("pload", "pstore"):
            size, sz = rnd.choice([(1, "b"), (2, "h"), (4, "w"), (8, "dw")])
            off = rnd.randrange(0, 80)
            skip = label()
            lines += bounds(off + size, skip)
            lines.append(f"ldx{sz} %r{r}, [%r7+{off}]" if kind == "pload"
                         else f"stx{sz} [%r7+{off}], %r{r}")
            lines.append(f"{skip}:")
        elif kind == "stack":
            size, sz = rnd.choice([(1, "b"), (2, "h"), (4, "w"), (8, "dw")])
            off = rnd.randrange(8, 65 - size + 8) // size * size
            off = max(off, size)
            if rnd.random() < 0.5:
                lines.append(f"ldx{sz} %r{r}, [%r10-{off}]")
            else:
                lines.append(f"stx{sz} [%r10-{off}], %r{r}")
        elif kind == "verdict":
            if rnd.random() < 0.5:
                lines.append(f"mov %r0, {rnd.choice(VERDICTS)}")
            else:
                skip = label()
                k = rnd.randrange(14, 40)
                lines += bounds(k + 1, skip) + [f"ldxb %r0, [%r7+{k}]", "and %r0, 7",
                                                f"{skip}:"]
        elif kind == "map":
            skip = label()
            k = rnd.randrange(14, 40)
            lines += ["mov %r9, %r0",                       # the verdict so far
                      "mov %r2, 0"]
            lines += [f"mov %r1, %r7", f"add %r1, {k + 1}", f"jgt %r1, %r8, {skip}a",
                      f"ldxb %r2, [%r7+{k}]", f"{skip}a:", f"and %r2, {MAP_ENTRIES - 1}",
                      "stxw [%r10-4], %r2",
                      "lddw %r1, 0x10000000", "mov %r2, %r10", "add %r2, -4", "call 1",
                      f"jeq %r0, 0, {skip}",
                      "ldxdw %r1, [%r0+0]", f"add %r1, {rnd.randrange(1, 100)}",
                      "stxdw [%r0+0], %r1",
                      f"stxw [%r0+8], %r{rnd.choice([6, 7, 9])}",
                      f"{skip}:", "mov %r0, %r9"]
            lines += [f"mov %r{q}, {rnd.randrange(100)}" for q in range(1, 6)]
        else:   # branch: skip a few instructions on a register compare
            skip = label()
            lines += [f"j{rnd.choice(['gt', 'eq', 'ne', 'sgt', 'lt'])} %r{r}, "
                      f"{rnd.randrange(-50, 50)}, {skip}",
                      f"mov %r{rnd.randrange(1, 6)}, {rnd.randrange(100)}",
                      f"xor %r0, {rnd.randrange(4)}", f"{skip}:"]
    lines.append("exit")
    return "\n".join(lines), fault


def _object(asm: str) -> BpfObject:
    ins = assemble_insns(asm)
    for i in ins:       # lddw of 0x10000000 + k: the address of map k (as the kernel's src 1)
        if i.spec.kind == isa.LDDW and (i.imm >> 28) == 1:
            i.src = isa.BPF_PSEUDO_MAP_IDX
            i.imm &= 0xFFFF
    helpers = [1] if "call 1" in asm else []
    m = MapDef("counts", BPF_MAP_TYPE_ARRAY, 4, 16, MAP_ENTRIES)
    return BpfObject(f"fuzz.o", [Program("fuzz", "xdp", isa.encode(ins), helpers=helpers,
                                         maps_used=["counts"])], [m], license="GPL")


def case(seed: int, packets: int = 6) -> Case:
    rnd = random.Random(seed)
    asm, fault = program(rnd)
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    pk = [eth + bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 90)))
          for _ in range(packets)]
    return Case(seed, asm, pk, fault, _object(asm))


def run_case(c: Case, engine) -> list[str]:
    """Runs `c` on ref and on an engine target, ``engine(obj, budget=...)`` (the rtl target
    of host/board.py on a running simulation: the loader clears the counters); returns the
    differences."""
    from bpfpga.hdl import control as C
    from bpfpga.sim.xdp import XdpRef
    ref = XdpRef(c.obj, budget=BUDGET)
    want = [ref.run(p) for p in c.packets]
    diffs = []
    with engine(c.obj, budget=BUDGET) as t:
        # one packet at a time: two cores updating one array value at once would race (as
        # two kernel CPUs do), and the reference machine runs packets in order
        got = [t.run(p) for p in c.packets]
        cnt = t.counters()
        for i, (w, g) in enumerate(zip(want, got)):
            a = (w.verdict, w.trap, w.trap_pc, w.insns)
            b = (g.verdict, g.trap, g.trap_pc, g.insns)
            if a != b:
                diffs.append(f"packet {i}: ref verdict/trap/pc/insns {a}, rtl {b}")
            elif w.verdict != isa.XDP_ABORTED and w.packet != g.packet:
                diffs.append(f"packet {i}: output packets differ")
        rm, gm = ref.map_dump("counts"), t.map_dump("counts")
        if sorted((bytes(k), bytes(v)) for k, v in rm) != \
                sorted((bytes(k), bytes(v)) for k, v in gm):
            diffs.append("map 'counts' differs")
        for v in range(5):
            n = sum(1 for w in want if w.verdict == v)
            if cnt[C.C_VERDICT + v] != n:
                diffs.append(f"verdict counter {v}: {cnt[C.C_VERDICT + v]}, ref results {n}")
        for tr in range(1, 16):
            n = sum(1 for w in want if w.trap == tr)
            if cnt[C.C_TRAP + tr] != n:
                diffs.append(f"trap counter {TRAP_NAMES.get(tr, tr)}: {cnt[C.C_TRAP + tr]}, "
                             f"ref results {n}")
    return [f"seed {c.seed} ({c.fault or 'no fault'}): {d}" for d in diffs]
