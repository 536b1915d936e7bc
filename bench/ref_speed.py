#!/usr/bin/env python3
"""Instructions per second of the reference machine: a long loop, and the whole conformance
suite (decode included). Prints a table and writes build/bench/ref_speed.json.
Goal: >= 1,000,000 instructions per second on one core."""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bpfpga.compiler.asm import assemble  # noqa: E402
from bpfpga.sim.ref import Machine, Memory, Window, conformance_unwind, run_program  # noqa
from bpfpga.sim.conformance import default_suite  # noqa: E402
from bpfpga import memmap  # noqa: E402

LOOP = """
mov %r0, 0
mov %r1, 200000
mov %r3, 0x1234
loop:
add %r0, %r1
xor %r0, %r3
stxdw [%r10-8], %r0
ldxdw %r4, [%r10-8]
rsh %r4, 3
add %r0, %r4
sub %r1, 1
jne %r1, 0, loop
exit
"""


def loop_rate(repeats=5):
    m = Machine(assemble(LOOP), {5: conformance_unwind}, memory=Memory(), budget=10 ** 9)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = m.run()
        dt = time.perf_counter() - t
        rates.append(res.insns / dt)
    return res.insns, rates


def suite_rate(repeats=5):
    import json as _j
    entries = [_j.loads(line) for line in
               (default_suite() / "assembled.jsonl").read_text().splitlines()]
    jobs = [(bytes.fromhex(e["program_hex"]), bytes.fromhex(e["mem_hex"])) for e in entries]
    rates, times = [], []
    for _ in range(repeats):
        n = 0
        t = time.perf_counter()
        for p, mem in jobs:
            n += run_program(p, mem).insns
        dt = time.perf_counter() - t
        rates.append(n / dt)
        times.append(dt)
    return len(jobs), n, rates, times


def main():
    from rich.console import Console
    from rich.table import Table
    n_loop, loop_rates = loop_rate()
    n_prog, n_suite, s_rates, s_times = suite_rate()
    res = {
        "loop": {"instructions": n_loop, "insn_per_s_median": statistics.median(loop_rates),
                 "runs": loop_rates},
        "suite": {"programs": n_prog, "instructions": n_suite,
                  "insn_per_s_median": statistics.median(s_rates),
                  "seconds_median": statistics.median(s_times), "runs": s_rates},
        "goal_insn_per_s": 1_000_000,
    }
    t = Table(title="reference machine speed (median of 5 runs)")
    for c in ("workload", "instructions", "insn/s (median)", "goal", "met"):
        t.add_column(c)
    lr = res["loop"]["insn_per_s_median"]
    t.add_row("long loop", f"{n_loop:,}", f"{lr:,.0f}", "1,000,000", "yes" if lr >= 1e6 else "no")
    sr = res["suite"]["insn_per_s_median"]
    t.add_row(f"conformance suite ({n_prog} programs, decode included)", f"{n_suite:,}",
              f"{sr:,.0f}", "-", "-")
    Console().print(t)
    out = REPO / "build/bench/ref_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
