"""Every example, on the kernel and the reference machine: zero divergences over its traffic
(exactly `bpfpga diff examples/X/X.o --targets kernel,ref --pcap ... [--maps ...]`)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfpga.host.cli import main
from conftest import REPO

EXAMPLES = sorted(p for p in (REPO / "examples").glob("*/") if (p / f"{p.name}.o").exists())


def diff_args(ex: Path, targets: str) -> list[str]:
    args = ["diff", str(ex / f"{ex.name}.o"), "--targets", targets,
            "--pcap", str(ex / "traffic.pcap"), "-j"]
    if (ex / "maps.json").exists():
        args += ["--maps", str(ex / "maps.json")]
    return args


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"pass", "drop", "parser", "macswap"} <= names


@pytest.mark.parametrize("ex", EXAMPLES, ids=lambda p: p.name)
def test_example_kernel_vs_ref(ex):
    from bpfpga.host.kernel import kernel_available
    ok, why = kernel_available()
    if not ok:
        pytest.skip(why)
    assert (ex / "traffic.pcap").exists(), f"{ex.name} has no traffic.pcap"
    r = CliRunner().invoke(main, diff_args(ex, "kernel,ref"))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    out = json.loads(r.output)
    assert out["packets"] >= 1000
    # the kernel cannot run frames shorter than 14 bytes (BPF_PROG_TEST_RUN refuses them):
    # those are compared on the other targets only, and must be few
    assert out["compared"] >= 1000 or out["compared"] >= out["packets"] - 50
    assert out["divergences"] == [], out["divergences"][:3]
    assert out["map_divergences"] == [], out["map_divergences"][:3]
    assert r.exit_code == 0


@pytest.mark.parametrize("ex", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_on_ref_cli(ex):
    args = ["run", str(ex / f"{ex.name}.o"), "--target", "ref", "-j",
            "--pcap", str(ex / "traffic.pcap")]
    if (ex / "maps.json").exists():
        args += ["--maps", str(ex / "maps.json")]
    if not (ex / "traffic.pcap").exists():
        pytest.fail(f"{ex.name} has no traffic.pcap")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert sum(out["summary"].values()) == len(out["packets"])
    assert "ERROR" not in out["summary"]
