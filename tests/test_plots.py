"""`bpfpga run --plot` and `bpfpga board report --plot` (host/plots.py) write PNGs."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfpga.host.cli import main

REPO = Path(__file__).resolve().parents[1]
LB = REPO / "examples" / "lb"

# a report in the format gateware/flow.py writes (the fields the plot and `board report`
# read); the numbers are made up, one domain misses its clock
REPORT = {
    "board": "colorlight_5a_75b", "title": "Colorlight 5A-75B v8.0", "fpga": "LFE5U-25F-6BG256C",
    "cores": 1, "ports": 2, "engine": "loopback", "engine_clock_mhz": 31.25,
    "fmax": {"sys": {"net": "sys_clk", "achieved_mhz": 71.3, "constraint_mhz": 31.25},
             "eth0_rx": {"net": "eth0_rx_clk", "achieved_mhz": 141.0, "constraint_mhz": 125.0},
             "eth1_rx": {"net": "eth1_rx_clk", "achieved_mhz": 119.5, "constraint_mhz": 125.0}},
    "timing_met": False, "timing_per_domain": {"sys": True, "eth0_rx": True, "eth1_rx": False},
    "lut4": 5210, "ff": 3971, "dp16kd": 8, "mult18x18d": 0,
    "nextpnr_utilisation": {"TRELLIS_COMB": {"used": 6120, "available": 24288},
                            "TRELLIS_FF": {"used": 3971, "available": 24288},
                            "DP16KD": {"used": 8, "available": 56},
                            "EHXPLLL": {"used": 1, "available": 2}},
    "times": {"total_s": 231.0},
}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert len(data) > 10_000, f"{path}: only {len(data)} bytes"
    return struct.unpack(">II", data[16:24])


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_run_plot_ref_writes_a_png(tmp_path):
    out = tmp_path / "ref.png"
    res = run("run", LB / "lb.o", "--target", "ref", "--pcap", LB / "traffic.pcap",
              "--maps", LB / "maps.json", "-q", "--plot", out)
    assert res.exit_code == 0, res.output
    w, h = png_size(out)
    assert w >= 1000 and h >= 300          # three panels side by side


def test_run_plot_metric_per_target():
    from bpfpga.host.plots import run_metric
    rows = [{"packet": 0, "verdict": "TX", "cycles": 90, "insns": 40}]
    assert run_metric("rtl", rows) == ("cycles", "cycles per packet")
    assert run_metric("ref", rows) == ("insns", "instructions per packet")
    assert run_metric("kernel", [{"packet": 0, "verdict": "TX", "kernel_ns": 80}])[0] == \
        "kernel_ns"
    assert run_metric("kernel", [{"packet": 0, "verdict": "TX"}]) is None


def test_board_report_plot_writes_a_png(tmp_path):
    rep = tmp_path / "report.json"
    rep.write_text(json.dumps(REPORT))
    out = tmp_path / "report.png"
    res = run("board", "report", rep, "--plot", out)
    assert res.exit_code == 0, res.output
    assert "eth1_rx" in res.output and "NO" in res.output       # the table, timing missed
    png_size(out)


def test_board_report_refuses_other_json(tmp_path):
    rep = tmp_path / "x.json"
    rep.write_text(json.dumps({"fmax": 3}))
    res = run("board", "report", rep, "--plot", tmp_path / "x.png")
    assert res.exit_code == 1
    assert res.output.count("\n") == 1 and "not a board build report" in res.output
    assert not (tmp_path / "x.png").exists()


def test_plot_without_matplotlib_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import fails
    rep = tmp_path / "report.json"
    rep.write_text(json.dumps(REPORT))
    res = run("board", "report", rep, "--plot", tmp_path / "r.png")
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == \
        "error: --plot needs matplotlib: pip install -e '.[plot]' (make setup installs it)"
    assert not (tmp_path / "r.png").exists()
