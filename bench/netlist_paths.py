#!/usr/bin/env python3
"""Longest register-to-register paths of a synthesized ECP5 netlist (yosys JSON after
``synth_ecp5``), without placement: a quick stand-in for nextpnr's critical-path report.

    .venv/bin/python bench/netlist_paths.py build/synth_engine/engine.json [-n 5] [--top engine_top]

Delays are rough ECP5 -6 figures (ns): LUT4 0.45, PFUMX / L6MUX21 0.25, CCU2C 0.55 from an
operand to a sum, 0.05 per carry cell along the chain, DP16KD clock to data 4.3, an
unregistered MULT18X18D 5.5, LUT RAM read 0.6, FF clock to Q 0.4; plus ``--net`` (default
0.6) per ordinary net, standing in for routing. The absolute figure is only an estimate
(nextpnr's placed estimate is usually worse); the path, its logic depth and which signals it
runs through are what this is for. Each path is printed with the netlist's signal names
(Amaranth's hierarchical names), from start point to end point.
"""
from __future__ import annotations

import argparse
import json
import sys

CELL_DELAY = {"LUT4": 0.45, "PFUMX": 0.25, "L6MUX21": 0.25, "TRELLIS_DPR16X4": 0.6}
SOURCE_DELAY = {"TRELLIS_FF": 0.4, "DP16KD": 4.3}
SEQ = {"TRELLIS_FF", "DP16KD"}


def analyse(netlist: dict, top: str | None = None, net_delay: float = 0.6, count: int = 5):
    mods = netlist["modules"]
    top = top or next(n for n, m in mods.items() if m.get("attributes", {}).get("top"))
    mod = mods[top]
    cells = mod["cells"]
    names: dict[int, str] = {}
    for name, nn in sorted(mod["netnames"].items(), key=lambda kv: (kv[0].startswith("$"),
                                                                    len(kv[0]))):
        for i, b in enumerate(nn["bits"]):
            if isinstance(b, int) and b not in names:
                names[b] = f"{name}[{i}]" if len(nn["bits"]) > 1 else name
    driver: dict[int, tuple[str, str]] = {}
    for cn, c in cells.items():
        for p, d in c.get("port_directions", {}).items():
            if d == "output":
                for b in c["connections"].get(p, []):
                    if isinstance(b, int):
                        driver[b] = (cn, p)
    sys.setrecursionlimit(1_000_000)
    memo: dict[int, tuple[float, int | None]] = {}

    def ins(c, ports):
        return [b for p in ports for b in c["connections"].get(p, []) if isinstance(b, int)]

    def arrival(bit: int) -> tuple[float, int | None]:
        """(arrival time at the net, the predecessor net on the longest path)"""
        if bit in memo:
            return memo[bit]
        memo[bit] = (0.0, None)            # a combinational loop ends here
        drv = driver.get(bit)
        if drv is None:
            return memo[bit]
        cn, port = drv
        c = cells[cn]
        t = c["type"]
        if t in SEQ:
            r = (SOURCE_DELAY[t], None)
        elif t == "MULT18X18D":
            regs = [v for k, v in c.get("parameters", {}).items()
                    if k.startswith("REG_INPUT") and k.endswith("_CLK") and v != "NONE"]
            r = (SOURCE_DELAY["DP16KD"], None) if regs else \
                best(ins(c, [p for p, d in c["port_directions"].items()
                             if d == "input" and p[0] in "AB"]), 5.5)
        elif t == "CCU2C":
            if port == "COUT" or port.startswith("S"):
                carry = ins(c, ["CIN"])
                ops = ins(c, ["A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1"])
                a = best(ops, 0.55)
                if carry:
                    tc, _ = arrival(carry[0])
                    cand = (tc + (0.05 if port == "COUT" else 0.3), carry[0])
                    a = max(a, cand)
                r = a
            else:
                r = (0.0, None)
        elif t == "TRELLIS_DPR16X4":
            r = best(ins(c, ["RAD"]), CELL_DELAY[t])
        elif t in CELL_DELAY:
            r = best(ins(c, [p for p, d in c["port_directions"].items() if d == "input"]),
                     CELL_DELAY[t])
        else:
            r = (0.0, None)
        memo[bit] = r
        return r

    def best(bits, d):
        top_t, top_b = 0.0, None
        for b in bits:
            t, _ = arrival(b)
            drv = driver.get(b)
            nd = 0.0 if drv and cells[drv[0]]["type"] == "CCU2C" and drv[1] == "COUT" else net_delay
            if t + nd > top_t:
                top_t, top_b = t + nd, b
        return (top_t + d, top_b)

    ends = []
    for cn, c in cells.items():
        t = c["type"]
        if t in SEQ or t == "TRELLIS_DPR16X4":
            ports = [p for p, d in c["port_directions"].items() if d == "input"
                     and not p.startswith("CLK") and p not in ("WCK",)]
            if t == "TRELLIS_DPR16X4":
                ports = ["DI", "WAD", "WRE"]
            for p in ports:
                for b in c["connections"].get(p, []):
                    if isinstance(b, int):
                        a, _ = arrival(b)
                        ends.append((a + net_delay, b, cn, p))
    ends.sort(key=lambda e: -e[0])
    out, seen = [], set()
    for a, b, cn, p in ends:
        path = []
        x = b
        while x is not None:
            path.append((round(memo.get(x, (0.0, None))[0], 2), names.get(x, f"${x}"),
                         cells[driver[x][0]]["type"] if x in driver else "?"))
            x = memo.get(x, (0.0, None))[1]
        key = path[-1][1]
        if key in seen:
            continue
        seen.add(key)
        out.append({"ns": round(a, 2), "end": f"{cn}.{p}", "depth": len(path),
                    "path": list(reversed(path))})
        if len(out) >= count:
            break
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json")
    ap.add_argument("--top")
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--net", type=float, default=0.6)
    args = ap.parse_args(argv)
    res = analyse(json.load(open(args.json)), args.top, args.net, args.n)
    for r in res:
        print(f"\n{r['ns']:.1f} ns, {r['depth']} nets, ends at {r['end']}")
        for t, n, ty in r["path"]:
            print(f"  {t:6.2f}  {ty:10} {n}")
    return res


if __name__ == "__main__":
    main()
