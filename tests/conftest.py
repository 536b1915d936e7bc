import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def suite_root() -> Path:
    env = os.environ.get("BPFPGA_CONFORMANCE")
    return Path(env) if env else REPO.parent / "shared/conformance/bpf_conformance"


@pytest.fixture(scope="session")
def suite() -> Path:
    root = suite_root()
    if not (root / "tests").is_dir():
        pytest.skip(f"conformance suite not found at {root} (set BPFPGA_CONFORMANCE)")
    return root


@pytest.fixture(scope="session")
def engine():
    """One simulation of the XDP engine (the default model, sim/rtl_xdp_build.py) for every
    test of the session that loads programs of its own: its control port takes one
    connection after another (RtlTarget(obj, url=engine) per program)."""
    from bpfpga.sim.rtl_xdp_build import Simulation, build
    build()
    sim = Simulation(reaccept=True)
    yield sim.url
    sim.close()


def simulate(dut, testbench, period: float = 1e-8):
    """Run ``testbench`` (an async function of the simulator context) on ``dut`` in
    Amaranth's simulator with one clock."""
    from amaranth.sim import Simulator
    sim = Simulator(dut)
    sim.add_clock(period)
    sim.add_testbench(testbench)
    sim.run()


class KernelNotCompared(UserWarning):
    """A comparison that left the kernel out because the kernel refuses a helper or map type
    of the object for XDP (bpfpga.host.features): shown in pytest's warnings summary."""


def note_not_compared(why: str) -> None:
    import warnings
    warnings.warn(KernelNotCompared(f"kernel: not compared: {why}"), stacklevel=2)
