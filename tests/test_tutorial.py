"""docs/tutorial.md, run: every ```sh block marked `<!-- test -->` in order, in one bash, in
a fresh directory with the venv's bpfpga on PATH. Blocks marked `<!-- not tested: WHY -->`
are left out (the setup the test does itself; the board build, some 4 minutes, which
tests/test_boards.py runs). A block without a mark fails the test: each one says."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "tutorial.md"
BLOCK = re.compile(r"(?:<!-- (test|not tested: [^>]*) -->\n)?```sh\n(.*?)```", re.S)


def blocks() -> list[tuple[str | None, int, str]]:
    text = DOC.read_text()
    return [(m.group(1), text[:m.start()].count("\n") + 1, m.group(2))
            for m in BLOCK.finditer(text)]


def test_every_block_is_marked():
    bs = blocks()
    assert len([b for b in bs if b[0] == "test"]) >= 8
    assert [line for mark, line, _ in bs if mark is None] == []


def test_tutorial_runs(tmp_path):
    from bpfpga.sim.rtl_xdp_build import build
    build()                                   # the model, once (not the tutorial's 90 s)
    script = ["set -euo pipefail"]
    for mark, line, body in blocks():
        if mark == "test":
            script += [f"echo '=== docs/tutorial.md:{line}' >&2", body]
    env = dict(os.environ, REPO=str(REPO),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("BPFPGA_DEVICE", None)
    t0 = time.time()
    log = tmp_path / "tutorial.out"
    with open(log, "w") as f:
        p = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            p.wait(timeout=240)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            try:
                os.killpg(p.pid, signal.SIGTERM)  # a sim-board a failed block left running
            except ProcessLookupError:
                pass
    took = time.time() - t0
    out = log.read_text(errors="replace")
    assert p.returncode == 0, out[-4000:]
    # what the tutorial says happened
    assert len(re.findall(r"DROP\s*│\s*10 │", out)) == 4, out[-3000:]   # NTP, SSH
    assert "20 packets compared on kernel, ref, rtl: 0 packet divergences, 0 map " \
           "divergences" in out, out[-3000:]
    assert re.search(r"XDP_DROP 15", out), out[-3000:]             # the board, DNS blocked
    for png in ("rtl.png", "ref.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert re.search(r"openfpgaloader\S* -b colorlight \S*colorlight_5a_75b.bit", out, re.I)
    print(f"tutorial: {took:.0f} s")
