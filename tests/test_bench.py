"""The users' cocotb bench (sim/bench.py): examples/cocotb's worked example runs through
cocotb's runner on the cached default model, and a failing cocotb test fails the run."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bpfpga.errors import TargetError
from bpfpga.sim.bench import run

REPO = Path(__file__).resolve().parents[1]


def passed(results: Path) -> list[str]:
    root = ET.parse(results).getroot()
    return sorted(tc.get("name") for tc in root.iter("testcase")
                  if not any(c.tag in ("failure", "error", "skipped") for c in tc))


def test_lb_example(tmp_path):
    res = run("lb_bench", REPO / "examples" / "cocotb", tmp_path)
    assert passed(res) == ["other_port_passes_on_the_wire",
                           "syn_to_the_vip_goes_to_its_backend"]


def test_bench_checks(tmp_path):
    """Ports, capture off, the trace FIFO; and a failing cocotb test fails the run."""
    from bpfobjs import build_all
    env = {"BENCH_TRACE_OBJ": str(build_all()["trace"])}
    with pytest.raises(TargetError, match=r"bench_checks: 1 of 4 cocotb test\(s\) failed"):
        run("bench_checks", REPO / "tests", tmp_path, extra_env=env)
    assert passed(tmp_path / "results.xml") == ["drop_drops", "macswap_leaves_on_its_port",
                                                "trace_lines_are_the_reference_machines"]
