"""Build (once per HDL hash) the Verilator model of the XDP engine, and start simulations of it.

The model is cached under build/rtl/xdp-<hash>/ and reuses sim/rtl.py's Verilator set-up
(its environment fix for the PyPI wheel and its build flags); a lock file makes concurrent
processes wait for one build. A simulation is a cocotb run of sim/cocotb_xdp.py, started in a
child process, serving the control port on a TCP port (see :func:`start`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bpfpga.errors import TargetError
from bpfpga.sim import rtl as _rtl

ROOT = _rtl.ROOT
BUILD = _rtl.BUILD
TOPLEVEL = "bpfpga_xdp"


def config():
    from bpfpga.hdl.config import SIM
    return SIM


def hdl_hash(cfg=None) -> str:
    cfg = cfg or config()
    h = hashlib.sha256()
    h.update(json.dumps(cfg.as_dict(), sort_keys=True).encode())
    for pat in sorted(set(_rtl._HDL_INPUTS) | {"hdl/*.py", "hdl/*/*.py", "bpfpga/obj.py", "bpfpga/memmap.py",
                                                "bpfpga/isa.py", "bpfpga/traps.py",
                                                "bpfpga/records.py"}):
        for p in sorted(ROOT.glob(pat)):
            h.update(p.relative_to(ROOT).as_posix().encode())
            h.update(p.read_bytes())
    import amaranth
    h.update(amaranth.__version__.encode())
    return h.hexdigest()[:16]


def build(force: bool = False, cfg=None) -> Path:
    cfg = cfg or config()
    hh = hdl_hash(cfg)

    def generate(src: Path) -> None:
        from amaranth.back import verilog

        from bpfpga.hdl.xdp import XDPEngine
        src.write_text(verilog.convert(XDPEngine(cfg), name=TOPLEVEL, emit_src=False))
    return _rtl.build_model(f"xdp-{hh}", generate,
                            f"the XDP engine ({hh}, {cfg.cores} cores)",
                            "building the Verilator model of the XDP engine (once per HDL "
                            "change)", force, toplevel=TOPLEVEL)


_RUNNER = r"""
import os, sys
from cocotb_tools.runner import get_runner
r = get_runner("verilator")
r.test(test_module="bpfpga.sim.cocotb_xdp", hdl_toplevel=sys.argv[1], hdl_toplevel_lang="verilog",
       build_dir=sys.argv[2], test_dir=sys.argv[3], log_file=os.path.join(sys.argv[3], "sim.log"))
"""


class Simulation:
    """A running simulation of the engine serving its control port on 127.0.0.1:port; with
    ``frames``, also its port streams (``frame_port``, protocol in sim/cocotb_xdp.py)."""

    def __init__(self, port: int = 0, log=None, frames: bool = False, reaccept: bool = False):
        bdir = build()
        runs = BUILD / "rtl" / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="xdp-", dir=runs))
        pf = self.dir / "port"
        env = dict(os.environ)
        env.update(_rtl._verilator_env())
        env.update({"BPFPGA_XDP_PORT": str(port), "BPFPGA_XDP_PORTFILE": str(pf),
                    "COCOTB_LOG_LEVEL": "WARNING"})
        ff = self.dir / "frameport"
        if frames:
            env["BPFPGA_XDP_FRAMEFILE"] = str(ff)
        # reaccept: the control port takes one connection after another (an rtl target per program
        # on one engine); close() then ends the simulation instead of waiting for it
        self.reaccept = reaccept
        if reaccept:
            env["BPFPGA_XDP_REACCEPT"] = "1"
        self.proc = subprocess.Popen([sys.executable, "-c", _RUNNER, TOPLEVEL, str(bdir),
                                      str(self.dir)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "runner.log", "w"))
        t0 = time.time()
        while not pf.exists():
            if self.proc.poll() is not None:
                raise TargetError(f"the XDP simulation ended before serving; see {self.dir}")
            if time.time() - t0 > 120:
                self.close()
                raise TargetError("the XDP simulation did not start in 120 s")
            time.sleep(0.05)
        self.port = int(pf.read_text())
        self.frame_port = int(ff.read_text()) if frames else None
        self.url = f"socket://127.0.0.1:{self.port}"

    def close(self):
        if self.proc.poll() is None and self.reaccept:
            self.proc.terminate()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    build(force="--force" in sys.argv)
