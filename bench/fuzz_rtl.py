#!/usr/bin/env python3
"""Long differential fuzzing run: rtl against the reference machine.

    .venv/bin/python bench/fuzz_rtl.py [-n 20000] [--batch 5000] [--seed 1] [--max-body 80]

Programs come from the hypothesis strategy of bpfpga.sim.rtl_fuzz (the same one the 2,000
program test uses, with longer bodies allowed); each batch is one Verilator run. Prints the
outcome mix and any difference, writes build/bench/fuzz_rtl.json; exit status 1 on a difference.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-body", type=int, default=80)
    args = ap.parse_args(argv)
    from bpfpga.sim.rtl_fuzz import collect, compare
    from bpfpga.traps import TRAP_NAMES
    done, diffs = 0, []
    totals = {"traps": {}, "insns": 0, "cycles": 0}
    t0 = time.time()
    b = 0
    while done < args.n:
        k = min(args.batch, args.n - done)
        jobs = collect(k, seed=args.seed * 1000 + b, max_body=args.max_body)
        d, st = compare(jobs)
        diffs += d
        for tr, c in st["traps"].items():
            totals["traps"][tr] = totals["traps"].get(tr, 0) + c
        totals["insns"] += st["insns"]
        totals["cycles"] += st["cycles"]
        done += k
        b += 1
        print(f"{done}/{args.n} programs, {len(diffs)} differences, "
              f"{time.time() - t0:.0f} s", flush=True)
    print("outcomes: " + ", ".join(f"{TRAP_NAMES.get(t, t)} {c}"
                                   for t, c in sorted(totals["traps"].items())))
    print(f"{totals['insns']} instructions, {totals['cycles']} cycles in RTL")
    for d in diffs[:20]:
        print(d)
    out = {"programs": done, "differences": len(diffs), "first": diffs[:20],
           "outcomes": {TRAP_NAMES.get(t, str(t)): c for t, c in totals["traps"].items()},
           "insns": totals["insns"], "cycles": totals["cycles"],
           "seconds": round(time.time() - t0, 1)}
    dest = ROOT / "build" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "fuzz_rtl.json").write_text(json.dumps(out, indent=1))
    print(f"written: {dest / 'fuzz_rtl.json'}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
