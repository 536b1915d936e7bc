"""The conformance suite on the assembler and the reference machine."""
import json
import subprocess
import sys

import pytest

from bpfpga.compiler import datafile
from bpfpga.compiler.asm import assemble
from bpfpga.compiler.check import check
from bpfpga.errors import BpfpgaError
from bpfpga.sim.ref import run_program
from conftest import REPO, suite_root


def _entries():
    p = suite_root() / "assembled.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


ENTRIES = _entries()


def test_suite_is_complete(suite):
    assert len(ENTRIES) == 313
    assert len(list((suite / "tests").glob("*.data"))) == 313


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_conformance(entry, suite):
    df = datafile.parse(suite / "tests" / entry["name"])
    prog = assemble(df.asm, file=entry["name"], line0=df.asm_line0)
    assert prog.hex() == entry["program_hex"]
    assert df.mem.hex() == entry["mem_hex"].lower()
    check(prog, (1, 2, 10))
    res = run_program(prog, df.mem)
    assert res.trap == 0, res.trap_detail
    assert res.r0 == int(entry["expected_r0"], 16) == df.result


def _negatives():
    d = suite_root() / "negative"
    return sorted(d.glob("*.data")) if d.is_dir() else []


@pytest.mark.parametrize("path", _negatives(), ids=lambda p: p.name)
def test_negative_rejected(path):
    """Every negative input is rejected by the assembler or the strict load check, except
    the one whose stated result is wrong: the runner must report that as a failure."""
    try:
        df = datafile.parse(path)
        prog = df.program()
        check(prog, (1, 2, 10))
    except BpfpgaError as e:
        msg = str(e)
        assert path.name in msg or "instruction" in msg
        if df_asm(path):
            # an assembler input: the message names the line (or the missing program)
            assert ":" in msg
        return
    res = run_program(prog, df.mem)
    assert df.result is not None and res.r0 != df.result, "negative test accepted"


def df_asm(path):
    return "-- asm" in path.read_text()


def test_unused_fields_rejected_count():
    d = suite_root() / "negative"
    if not d.is_dir():
        pytest.skip("suite not found")
    n = 0
    for p in sorted(d.glob("unused-*.data")):
        df = datafile.parse(p)
        with pytest.raises(BpfpgaError, match="reserved field|invalid"):
            check(df.program())
        n += 1
    assert n == 45


def test_cli_conformance_prints_313(suite):
    out = subprocess.run([sys.executable, "-m", "bpfpga.host.cli_entry", "conformance",
                          str(suite / "tests"), "--target", "ref"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "313 passed, 0 failed"
    assert out.returncode == 0


def test_cli_asm_hex_matches_every_program(suite):
    from click.testing import CliRunner
    from bpfpga.host.cli import main
    runner = CliRunner()
    for e in ENTRIES:
        r = runner.invoke(main, ["asm", str(suite / "tests" / e["name"]), "--hex"])
        assert r.exit_code == 0, r.output
        assert r.output.strip() == e["program_hex"], e["name"]


def test_plugin_protocol(suite):
    """The plugin, fed programs as the upstream runner does, prints the expected r0."""
    from bpfpga.host import plugin
    import io
    for e in ENTRIES:
        stdin = "".join(f"{b:02x}  " for b in bytes.fromhex(e["program_hex"]))
        argv = ([e["mem_hex"]] if e["mem_hex"] else []) + ["--target", "ref"]
        old_in, old_out = sys.stdin, sys.stdout
        sys.stdin, sys.stdout = io.StringIO(stdin), io.StringIO()
        try:
            rc = plugin.main(argv)
            out = sys.stdout.getvalue()
        finally:
            sys.stdin, sys.stdout = old_in, old_out
        assert rc == 0
        assert int(out, 16) == int(e["expected_r0"], 16), e["name"]


def test_plugin_subprocess_bad_input():
    p = subprocess.run([str(REPO / ".venv/bin/bpfpga-conformance-plugin")], input="zz",
                       capture_output=True, text=True)
    assert p.returncode != 0 and "not hex" in p.stderr
