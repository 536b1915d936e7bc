#!/usr/bin/env python3
"""Cycles per instruction of the bpfpga CPU, measured in RTL (Verilator), by class.

Each class runs as a microbenchmark: a prologue, N copies of one instruction (independent of
each other where the class allows it), exit. The same program with 0 copies is the baseline;
CPI = (cycles(N) - cycles(0)) / N. All microbenchmarks and the whole conformance suite run in
one simulator batch. Printed beside hBPF's published cycle counts and the goals of issue 4;
written to build/bench/cpi.json.

    .venv/bin/python bench/cpi.py [-n 64]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bpfpga import isa  # noqa: E402
from bpfpga.isa import Insn  # noqa: E402

ALU, ALU64, JMP, JMP32 = isa.BPF_ALU, isa.BPF_ALU64, isa.BPF_JMP, isa.BPF_JMP32
K, X = isa.BPF_K, isa.BPF_X


def I(op, dst=0, src=0, off=0, imm=0):  # noqa: E743
    return Insn(op, dst, src, off, imm)


EXIT = I(JMP | isa.BPF_EXIT)
PROLOGUE = [I(ALU64 | isa.BPF_MOV | K, 1, imm=123456789), I(ALU64 | isa.BPF_MOV | K, 2, imm=7),
            I(ALU64 | isa.BPF_MOV | K, 3, imm=-5),
            I(isa.BPF_STX | isa.BPF_MEM | isa.BPF_DW, 10, 1, -8)]

# class -> (instruction list repeated N times, hBPF published cycles, goal, note)
CLASSES = {
    "ALU32 (add32 reg)": ([I(ALU | isa.BPF_ADD | X, 4, 2)], "1", "1"),
    "ALU64 (add imm)": ([I(ALU64 | isa.BPF_ADD | K, 4, imm=3)], "1", "1"),
    "ALU64 (xor reg)": ([I(ALU64 | isa.BPF_XOR | X, 4, 1)], "1", "1"),
    "shift (arsh64 imm)": ([I(ALU64 | isa.BPF_ARSH | K, 4, imm=3)], "1", "1"),
    "shift (lsh32 reg)": ([I(ALU | isa.BPF_LSH | X, 4, 2)], "1", "1"),
    "bswap64": ([I(ALU64 | isa.BPF_END, 4, imm=64)], "n/a (none)", "1"),
    "be32": ([I(ALU | isa.BPF_END | isa.BPF_TO_BE, 4, imm=32)], "1", "1"),
    "movsx (s32 -> 64)": ([I(ALU64 | isa.BPF_MOV | X, 4, 3, 32)], "n/a (none)", "1"),
    "load (ldxdw stack)": ([I(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 4, 10, -8)], "14", "<= 2"),
    "load (ldxw packet, unaligned)": ([I(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 4, 9, 5)],
                                      "14", "<= 2"),
    "load + use": ([I(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 4, 10, -8),
                    I(ALU64 | isa.BPF_ADD | X, 5, 4)], "15", "<= 3 (pair)"),
    "store (stxdw stack)": ([I(isa.BPF_STX | isa.BPF_MEM | isa.BPF_DW, 10, 1, -16)], "16-23",
                            "<= 2"),
    "store (st imm)": ([I(isa.BPF_ST | isa.BPF_MEM | isa.BPF_W, 10, 0, -16, 5)], "16-23",
                       "<= 2"),
    "atomic (lock add64)": ([I(isa.BPF_STX | isa.BPF_ATOMIC | isa.BPF_DW, 10, 2, -8,
                               isa.BPF_ADD)], "n/a (none)", "-"),
    "branch taken (jeq reg)": ([I(JMP | isa.BPF_JEQ | X, 1, 1, 0)], "2", "<= 2"),
    "branch taken (ja)": ([I(JMP | isa.BPF_JA, 0, 0, 0)], "2", "<= 2"),
    "branch not taken (jne reg)": ([I(JMP | isa.BPF_JNE | X, 1, 1, 0)], "2", "1"),
    "branch not taken (jlt32 imm)": ([I(JMP32 | isa.BPF_JLT | K, 1, 0, 0, 5)], "2", "1"),
    "lddw": ([I(isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW, 4, imm=0x1122334455667788)], "n/a",
             "<= 2"),
    "mul64": ([I(ALU64 | isa.BPF_MUL | X, 4, 1)], "n/a", "<= 4"),
    "mul32": ([I(ALU | isa.BPF_MUL | K, 4, imm=77)], "n/a", "<= 4"),
    "div32": ([I(ALU | isa.BPF_DIV | X, 4, 2)], "68", "<= 34"),
    "div64": ([I(ALU64 | isa.BPF_DIV | X, 4, 2)], "68", "<= 66"),
    "smod64": ([I(ALU64 | isa.BPF_MOD | X, 4, 3, 1)], "n/a (none)", "<= 66"),
    "helper call (call 5)": ([I(JMP | isa.BPF_CALL, imm=5)], "n/a (none)", "<= 3"),
}


def _local_call(n):
    """n x `call f` where f is `exit`: cycles per call+return pair."""
    body = [I(JMP | isa.BPF_CALL, 0, isa.BPF_PSEUDO_CALL, 0, n - i) for i in range(n)]
    return PROLOGUE + body + [EXIT, EXIT]


def build_jobs(n: int):
    jobs, names = [], []
    mem = bytes(range(64))
    setr9 = [I(ALU64 | isa.BPF_MOV | X, 9, 1)]
    base = isa.encode(setr9 + PROLOGUE + [EXIT])
    for name, (ins, _, _) in CLASSES.items():
        prog = isa.encode(setr9 + PROLOGUE + ins * n + [EXIT])
        jobs += [(base, mem), (prog, mem)]
        names.append((name, 1))          # cycles per copy (a pair counts once)
    jobs += [(isa.encode(setr9 + _local_call(0)[:-1]), mem),
             (isa.encode(setr9 + _local_call(n)), mem)]
    names.append(("call+exit pair (bpf-to-bpf)", 1))
    return jobs, names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=64, help="copies per microbenchmark")
    args = ap.parse_args(argv)
    from bpfpga.sim.rtl import run_programs
    jobs, names = build_jobs(args.n)
    conf_dir = Path(os.environ.get("BPFPGA_CONFORMANCE",
                                   ROOT.parent / "shared/conformance/bpf_conformance"))
    conf = []
    cf = conf_dir / "assembled.jsonl"
    if cf.exists():
        conf = [json.loads(line) for line in cf.read_text().splitlines() if line.strip()]
    conf_jobs = [(bytes.fromhex(r["program_hex"]), bytes.fromhex(r["mem_hex"])) for r in conf]
    t = time.time()
    res = run_programs(jobs + conf_jobs)
    elapsed = time.time() - t
    rows = []
    for k, (name, per) in enumerate(names):
        b, r = res[2 * k], res[2 * k + 1]
        if b.trap or r.trap:
            cpi = None
        else:
            cpi = (r.cycles - b.cycles) / (args.n * per)
        hb, goal = (CLASSES[name][1], CLASSES[name][2]) if name in CLASSES else \
            ("n/a (none)", "<= 3 each")
        rows.append({"class": name, "cycles_per_insn": cpi, "insns_per_copy": per,
                     "hbpf_cycles": hb, "goal": goal,
                     "trap": r.trap or b.trap})
    cres = res[len(jobs):]
    tot_c = sum(r.cycles for r in cres)
    tot_i = sum(r.insns for r in cres)
    ok = sum(1 for r, row in zip(cres, conf) if r.trap == 0 and
             r.r0 == (int(row["expected_r0"], 16) if row["expected_r0"].startswith("0x")
                      else int(row["expected_r0"]) & (2**64 - 1)))
    print(f"bpfpga CPU, cycles per instruction (RTL, Verilator; {args.n} copies per class)\n")
    print(f"{'class (cycles per copy)':34} {'bpfpga':>8} {'goal':>12} {'hBPF':>12}")
    for row in rows:
        c = "trap" if row["cycles_per_insn"] is None else f"{row['cycles_per_insn']:.2f}"
        print(f"{row['class']:34} {c:>8} {row['goal']:>12} {row['hbpf_cycles']:>12}")
    print(f"\nconformance suite: {len(cres)} programs ({ok} passed), {tot_i} instructions, "
          f"{tot_c} cycles, {tot_c / max(1, tot_i):.2f} cycles per instruction "
          f"(including the 3-cycle pipeline fill of each program)")
    print(f"simulation: {elapsed:.1f} s for {len(jobs) + len(conf_jobs)} programs")
    out = {"copies": args.n, "classes": rows,
           "conformance": {"programs": len(cres), "passed": ok, "insns": tot_i,
                           "cycles": tot_c, "cpi": tot_c / max(1, tot_i),
                           "per_test": {row["name"]: {"cycles": r.cycles, "insns": r.insns}
                                        for row, r in zip(conf, cres)}},
           "hbpf_source": "hBPF README: 1 cycle per ALU op, 2 per jump, 14 per load, "
                          "16-23 per store, 68 per division"}
    dest = ROOT / "build" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "cpi.json").write_text(json.dumps(out, indent=1))
    print(f"written: {dest / 'cpi.json'}")
    return out


if __name__ == "__main__":
    main()
