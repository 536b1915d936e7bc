"""Run the conformance suite's `.data` files on a target.

A target is a batch runner: ``runner(jobs) -> results`` where a job is (program, mem) and a
result has r0, trap, trap_detail and optionally cycles. Batching lets the RTL target run the
whole suite in one simulator process.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bpfpga.errors import BpfpgaError

ENV = "BPFPGA_CONFORMANCE"


def default_suite() -> Path:
    """The suite's root: $BPFPGA_CONFORMANCE, else ../shared/conformance/bpf_conformance
    beside the repository."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared/conformance/bpf_conformance"


@dataclass
class Outcome:
    name: str
    passed: bool
    expected: int | None
    actual: int | None
    message: str = ""
    cycles: int | None = None
    insns: int | None = None


def ref_runner(jobs):
    from bpfpga.sim.ref import run_program
    return [run_program(p, m) for p, m in jobs]


def run_dir(directory: str | os.PathLike, runner=ref_runner, pattern: str | None = None,
            strict_check: bool = True) -> list[Outcome]:
    from bpfpga.compiler import datafile
    from bpfpga.compiler.check import check
    d = Path(directory)
    if not d.is_dir():
        raise BpfpgaError(f"{d}: not a directory of .data files")
    files = sorted(d.glob("*.data"))
    if pattern:
        rx = re.compile(pattern)
        files = [f for f in files if rx.search(f.name)]
    outcomes: dict[str, Outcome] = {}
    jobs = []
    pending = []
    for f in files:
        try:
            df = datafile.parse(f)
            prog = df.program()
            if strict_check:
                check(prog, (1, 2, 10))
        except BpfpgaError as e:
            if df_has_error(f):
                outcomes[f.name] = Outcome(f.name, True, None, None, f"rejected: {e}")
            else:
                outcomes[f.name] = Outcome(f.name, False, None, None, f"load failed: {e}")
            continue
        if df.error is not None:
            # an input that must be rejected was accepted: run it anyway to report r0
            pass
        jobs.append((prog, df.mem))
        pending.append(df)
    results = runner(jobs) if jobs else []
    for df, res in zip(pending, results):
        r0 = res.r0
        trap = getattr(res, "trap", 0)
        detail = getattr(res, "trap_detail", "") or ""
        cyc = getattr(res, "cycles", None)
        ins = getattr(res, "insns", None)
        if df.error is not None:
            outcomes[df.name] = Outcome(df.name, bool(trap), None, r0,
                                        "accepted an input that must be rejected"
                                        if not trap else f"trapped: {detail}", cyc, ins)
        elif df.result is None:
            outcomes[df.name] = Outcome(df.name, False, None, r0, "no expected result", cyc, ins)
        elif trap:
            outcomes[df.name] = Outcome(df.name, False, df.result, r0,
                                        f"trap {trap} at pc {res.trap_pc}: {detail}", cyc, ins)
        else:
            ok = r0 == df.result
            outcomes[df.name] = Outcome(df.name, ok, df.result, r0,
                                        "" if ok else "wrong r0", cyc, ins)
    return [outcomes[f.name] for f in files if f.name in outcomes]


def df_has_error(path) -> bool:
    try:
        return any(line.startswith("-- error") for line in Path(path).read_text().splitlines())
    except OSError:
        return False
