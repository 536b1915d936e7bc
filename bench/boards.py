#!/usr/bin/env python3
"""Build every board and print Fmax and utilisation; write build/bench/boards.json.

    .venv/bin/python bench/boards.py [--boards a,b,...] [--cores N] [--clock MHZ] [--seed S]

Each board builds under build/bench/boards/<board>/ with `bpfpga board build`'s flow
(gateware/flow.py), timing failures kept (they are results here). Goal (issue 7): the engine's
clock domain (sys) closes at 100 MHz or more on the Colorlight 5A-75B with two cores and both
Ethernet ports.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL = {"board": "colorlight_5a_75b", "cores": 2, "engine_fmax_mhz": 100.0}


def main(argv=None):
    from bpfpga.boards import BOARDS, BoardError, get_board
    from bpfpga.boards.base import ENGINE_KINDS
    from bpfpga.host.cmd_board import run_build

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boards", default=",".join(BOARDS),
                    help="comma-separated board names (default: all)")
    ap.add_argument("--cores", type=int, default=None)
    ap.add_argument("--clock", type=float, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engine", choices=ENGINE_KINDS, default=None,
                    help="loopback: the SoC alone (what is left of the part for the engine)")
    args = ap.parse_args(argv)

    dest = ROOT / "build" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    # the XDP engine's results in boards.json (bench/xdp_cycles.py reads its Fmax there)
    tag = "" if args.engine in (None, "xdp") else f"-{args.engine}"
    out = dest / f"boards{tag}.json"
    results = []
    for name in args.boards.split(","):
        b = get_board(name.strip())
        print(f"== {b.name}: {b.title}, {b.part}", flush=True)
        t = time.time()
        try:
            r = run_build(b, dest / "boards" / f"{b.name}{tag}", args.cores, args.clock, args.seed,
                          allow_timing_fail=True, engine=args.engine)
        except BoardError as e:
            print(f"   failed: {e}", flush=True)
            results.append({"board": b.name, "error": str(e),
                            "seconds": round(time.time() - t, 1)})
            continue
        results.append(r)
        out.write_text(json.dumps({"goal": GOAL, "results": results}, indent=1))

    from rich.console import Console
    from rich.table import Table
    tab = Table(title="bpfpga boards: engine clock domain (sys) and utilisation",
                title_justify="left")
    for col in ("board", "FPGA", "cores", "ports", "engine", "sys Fmax", "clock", "met",
                "eth rx Fmax", "LUT4", "FF", "DP16KD", "MULT18X18D", "build s"):
        tab.add_column(col, justify="left" if col in ("board", "FPGA", "engine") else "right")
    for r in results:
        if "error" in r:
            tab.add_row(r["board"], "", "", "", "", "failed", "", "", "", "", "", "", "",
                        f"{r['seconds']:.0f}")
            continue
        eth = [v["achieved_mhz"] for d, v in r["fmax"].items() if d.startswith("eth")]
        tab.add_row(r["board"], r["fpga"], str(r["cores"]), str(r["ports"]), r["engine"],
                    f"{r['engine_fmax_mhz'] or 0:.1f}", f"{r['engine_clock_mhz']:g}",
                    "yes" if r["timing_met"] else "NO",
                    f"{min(eth):.1f}" if eth else "-",
                    str(r["lut4"]), str(r["ff"]), str(r["dp16kd"]), str(r["mult18x18d"]),
                    f"{r['times']['total_s']:.0f}")
    con = Console() if Console().is_terminal else Console(width=170)
    con.print(tab)
    goal = next((r for r in results if r.get("board") == GOAL["board"] and "error" not in r),
                None)
    if goal:
        ok = (goal["engine_fmax_mhz"] or 0) >= GOAL["engine_fmax_mhz"]
        print(f"goal: {GOAL['board']} sys >= {GOAL['engine_fmax_mhz']:g} MHz with "
              f"{goal['cores']} cores and {goal['ports']} ports: "
              f"{goal['engine_fmax_mhz']} MHz, {'met' if ok else 'NOT met'}")
    out.write_text(json.dumps({"goal": GOAL, "results": results}, indent=1))
    print(f"written: {out}")
    return results


if __name__ == "__main__":
    main()
