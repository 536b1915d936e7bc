"""Builds tests/objects/*.c with clang -O2 -g -target bpf into build/objects/ (shared by
test_elf.py and test_btf.py; a source is rebuilt only when newer than its object)."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "tests" / "objects"
OUT = REPO / "build" / "objects"


def _include_flags() -> list[str]:
    # <linux/types.h> wants <asm/types.h>, which Debian keeps under the multiarch directory
    dirs = sorted(glob.glob("/usr/include/*/asm/types.h"))
    return [f"-I{Path(dirs[0]).parent.parent}"] if dirs else []


def build_all() -> dict[str, Path]:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (needed to build the BPF test objects)")
    OUT.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for c in sorted(SRC.glob("*.c")):
        o = OUT / (c.stem + ".o")
        if not o.exists() or o.stat().st_mtime < c.stat().st_mtime:
            # build to a temporary name and rename: parallel test workers may race here
            fd, tmp = tempfile.mkstemp(suffix=".o", dir=OUT)
            os.close(fd)
            r = subprocess.run([clang, "-O2", "-g", "-target", "bpf", *_include_flags(),
                                "-c", str(c), "-o", tmp], capture_output=True, text=True)
            if r.returncode:
                os.unlink(tmp)
                if "file not found" in r.stderr:
                    pytest.skip(f"BPF headers missing (libbpf-dev, linux uapi): {r.stderr}")
                raise RuntimeError(f"clang failed on {c.name}:\n{r.stderr}")
            os.replace(tmp, o)
        out[c.stem] = o
    return out
