"""bpf_trace_printk on every target: the format language (bpfpga/printk.py) against cases the
kernel printed, and tests/objects/trace.c (every conversion, widths, flags and formats the
kernel refuses) with the same text and the same return values on the reference machine, the
engine in Verilator (its trace FIFO read over the control port) and the kernel (its trace pipe;
mounted in a private mount namespace when it is not mounted and we are root)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpfpga.printk import bprintf
from bpfpga.sim import pcap

TESTS = Path(__file__).resolve().parent


def _frames():
    # byte 12..13 ethertype 0x0800, 14 and 15 vary (the program prints them)
    return [bytes(12) + bytes([8, 0, i, 200 + i]) + bytes(40) for i in range(3)]


def _no_str(a):
    return b""


@pytest.mark.parametrize("fmt,args,want", [
    (b"a %d b\0", [-1], "a -1 b"),
    (b"%u %x %X\0", [-1, 255, 255], "4294967295 ff FF"),
    (b"%lld %llu\0", [-2, -2], "-2 18446744073709551614"),
    (b"[%5d] [%-5d] [%05d] [%+d] [% d]\0", [42, 42, 42, 42, 42], None),   # > 3 conversions
    (b"[%5d] [%-5d] [%05d]\0", [42, 42, -42], "[   42] [42   ] [-0042]"),
    (b"[%+d] [% d] [%+u]\0", [42, 42, 42], "[+42] [ 42] [42]"),
    (b"100%%\0", [], "100%"),
    (b"%c%3c\0", [ord("o"), ord("k")], "o  k"),
    (b"%px\0", [0x1234], "0000000000001234"),
    (b"%p.\0", [0x1234], "0x1234."),
    (b"%pK\0", [0], None),
    (b"%5.2d\0", [1], None),
    (b"%#x\0", [1], None),
    (b"%lc\0", [1], None),
    (b"%llld\0", [1], None),
    (b"%\0", [1], None),
    (b"\x01\0", [], None),
    (b"abc", [], None),                          # no NUL within fmt_size
    (b"ok\0\x01", [], "ok"),                     # what follows the NUL is not looked at
])
def test_bprintf(fmt, args, want):
    assert bprintf(fmt, args + [0] * (3 - len(args)), _no_str) == want


def test_bprintf_string():
    mem = {0x100: b"hello"}
    assert bprintf(b"[%s] [%7s] [%-6s]\0", [0x100, 0x100, 0x200],
                   lambda a: mem.get(a, b"")) == "[hello] [  hello] [      ]"


@pytest.fixture(scope="module")
def trace_obj():
    from bpfobjs import build_all
    return build_all()["trace"]


def _rets(dump):
    return {int.from_bytes(bytes(k), "little"): int.from_bytes(bytes(v), "little", signed=True)
            for k, v in dump}


def _ref(path):
    from bpfpga.compiler.elf import load_object
    from bpfpga.sim.xdp import XdpRef
    t = XdpRef(load_object(str(path)))
    res = [t.run(p) for p in _frames()]
    return res, _rets(t.map_dump("rets"))


def test_trace_rtl_matches_ref(trace_obj):
    """The engine prints the same lines and its helper returns the same lengths / -EINVAL."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.hdl import control as C
    from bpfpga.host.board import RtlTarget
    want, want_rets = _ref(trace_obj)
    assert want_rets[0] == len("len 56 proto 800 q 0") and want_rets[8] == -22
    t = RtlTarget(load_object(str(trace_obj)))
    try:
        got = [t.run(p) for p in _frames()]
        rets = _rets(t.map_dump("rets"))
        # two frames at once on two cores: each frame's lines stay with it
        batch = t.run_batch(_frames())
        c = t.counters()
        # nobody reads the FIFO: it fills, further records are lost and counted, and the
        # programs neither wait nor change (same verdicts, same return values)
        depth = t.dev.trace_depth
        n = depth // 9 + 2
        t.traces = False                    # the target does not read them either
        over = t.run_batch([_frames()[k % 3] for k in range(n)])
        c2 = t.counters()
        kept = t.dev.trace_records()
        first = min(r["seq"] for r in kept)
        first_text = [t.dev.trace_text(r) for r in kept if r["seq"] == first]
        rets2 = _rets(t.map_dump("rets"))
    finally:
        t.close()
    assert [r.verdict for r in over] == [want[k % 3].verdict for k in range(n)]
    assert all(r.trace == [] for r in over)
    assert c2[C.C_TRACE] - c[C.C_TRACE] == len(kept) == depth
    assert c2[C.C_TRACE_DROP] - c[C.C_TRACE_DROP] == 9 * n - depth > 0
    assert first_text == want[0].trace
    assert {k: rets2[k] for k in (0, 1, 3, 4, 8, 9, 10, 11, 12)} == \
        {k: want_rets[k] for k in (0, 1, 3, 4, 8, 9, 10, 11, 12)}
    assert [r.trace for r in got] == [r.trace for r in want]
    assert [r.trace for r in batch] == [r.trace for r in want]
    assert [r.verdict for r in got] == [r.verdict for r in want]
    assert len(want[0].trace) == 9
    assert rets == want_rets
    assert c[C.C_TRACE] == 2 * 3 * 9 and c[C.C_TRACE_DROP] == 0


# ---------------------------------------------------------------------------- the kernel
_LINE = re.compile(r"-(\d+)\s+\[\d+\].*? bpf_trace_printk: (.*)$")


def kernel_trace(obj_path: str, pipe: str) -> dict:
    """Run the frames on the kernel target and collect this process's trace_printk lines."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.host.kernel import KernelTarget
    fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        def drain():
            buf = b""
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    return buf
                if not chunk:
                    return buf
                buf += chunk
        drain()
        t = KernelTarget(load_object(obj_path))
        try:
            for p in _frames():
                t.run(p)
            rets = _rets(t.map_dump("rets"))
        finally:
            t.close()
        time.sleep(0.2)
        lines = []
        for ln in drain().decode("latin-1").splitlines():
            m = _LINE.search(ln)
            if m and int(m.group(1)) == os.getpid():
                lines.append(m.group(2))
    finally:
        os.close(fd)
    return {"lines": lines, "rets": rets}


def _kernel_run(obj_path: str) -> dict:
    from bpfpga.host.kernel import kernel_available
    ok, why = kernel_available()
    if not ok:
        pytest.skip(f"the kernel target is not available: {why}")
    for pipe in ("/sys/kernel/tracing/trace_pipe", "/sys/kernel/debug/tracing/trace_pipe"):
        if os.path.exists(pipe) and os.access(pipe, os.R_OK):
            return kernel_trace(obj_path, pipe)
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("the kernel's trace pipe is not readable (tracefs not mounted) and we "
                    "cannot mount it (not root, or no unshare)")
    # tracefs in a private mount namespace: nothing changes for anyone else
    script = (f"import sys, json; sys.path.insert(0, {str(TESTS)!r}); import test_trace; "
              f"print(json.dumps(test_trace.kernel_trace({obj_path!r}, "
              f"'/sys/kernel/tracing/trace_pipe')))")
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        "mount -t tracefs nodev /sys/kernel/tracing && exec \"$0\" -c \"$1\"",
                        sys.executable, script], capture_output=True, text=True, timeout=120)
    if r.returncode:
        pytest.skip(f"the kernel's trace pipe is not readable and mounting tracefs in a "
                    f"private namespace failed: {r.stderr.strip()[-300:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["rets"] = {int(k): v for k, v in out["rets"].items()}
    return out


def test_trace_kernel_matches_ref(trace_obj):
    want, want_rets = _ref(trace_obj)
    got = _kernel_run(str(trace_obj))
    assert got["rets"] == want_rets
    assert got["lines"] == [ln for r in want for ln in r.trace]
