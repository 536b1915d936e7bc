"""Runs lb_bench.py's cocotb tests with cocotb's runner: as a script, or under pytest."""
from pathlib import Path

from bpfpga.sim.bench import run

HERE = Path(__file__).resolve().parent


def test_lb_bench():
    run("lb_bench", HERE)


if __name__ == "__main__":
    print(run("lb_bench", HERE))
