#!/usr/bin/env python3
"""Long differential fuzzing run of whole XDP programs: the engine against the reference machine.

    .venv/bin/python bench/fuzz_xdp.py [--seconds 3600] [-n CASES] [--seed 1] [--packets 6]

Each case is one random XDP program of bpfpga.sim.xdp_fuzz (bounds-checked packet access,
stack, an ARRAY map through bpf_map_lookup_elem, verdicts in r0 at random points, at most one
fault at a random point: load from 0, store to ctx, past data_end, outside the stack frame,
a loop into the budget) run on its packets on ref and on one engine simulation that serves
every case in turn. Compared: verdict, trap, trap pc, executed instructions, output packets,
the map, verdict and trap counters. Runs until --seconds or -n is reached, whichever first;
prints the fault mix, the verdict mix and every difference, writes build/bench/fuzz_xdp.json;
exit status 1 on a difference. `make test` runs 16 cases (tests/test_traps.py).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3600.0)
    ap.add_argument("-n", type=int, default=0, help="cases (0: until --seconds)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--packets", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "fuzz_xdp.json"))
    args = ap.parse_args(argv)
    from bpfpga.sim.rtl_xdp_build import Simulation
    from bpfpga.sim.xdp_fuzz import case, run_case
    sim = Simulation(reaccept=True)
    faults, diffs = Counter(), []
    t0 = time.time()
    done = 0
    try:
        while (not args.n or done < args.n) and time.time() - t0 < args.seconds:
            c = case(args.seed * 1_000_000 + done, packets=args.packets)
            faults[c.fault or "none"] += 1
            d = run_case(c, sim.url)
            for line in d:
                print(line, flush=True)
            diffs += d
            done += 1
            if done % 50 == 0:
                print(f"{done} cases, {len(diffs)} differences, {time.time() - t0:.0f} s",
                      flush=True)
    finally:
        sim.close()
    dt = time.time() - t0
    print(f"{done} cases ({done * args.packets} packets) in {dt:.0f} s: "
          f"{len(diffs)} differences")
    print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cases": done, "packets": done * args.packets, "seconds": dt,
                               "seed": args.seed, "faults": dict(faults),
                               "differences": diffs}, indent=1))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
