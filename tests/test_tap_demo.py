"""The README's TAP demonstration (examples/lb/tap_demo.py): real TCP connections between
network namespaces, balanced by examples/lb/lb.o in the simulated board attached to a TAP
device. Runs where network namespaces and /dev/net/tun are allowed (root), skips with the
reason elsewhere. The demo creates its own namespaces, bridge and TAP under a name prefix
unique to this run and 10.203.x.0/24 addresses, and removes them on every way out; the test
checks that nothing of them is left."""
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "lb" / "tap_demo.py"
N = 10

_spec = importlib.util.spec_from_file_location("tap_demo", SCRIPT)
tap_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tap_demo)

LB_TX_L2, LB_CONN_MISS = 11, 9          # lb.c's lb_stats indexes


def _netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _lb_stat(rows, idx):
    for r in rows:
        if int.from_bytes(bytes.fromhex(r["key"]), "little") == idx:
            vals = r["values"] if "values" in r else [r["value"]]
            return sum(struct.unpack_from("<Q", bytes.fromhex(v))[0] for v in vals)
    raise AssertionError(f"lb_stats has no entry {idx}")


def test_tap_demo_balances_real_tcp(tmp_path):
    why = tap_demo.preflight()
    if why:
        pytest.skip(f"TAP demo: {why}")
    prefix = f"bt{os.getpid() % 100000:05d}"
    net = 100 + os.getpid() % 150
    try:
        r = subprocess.run([sys.executable, str(SCRIPT), "--prefix", prefix, "--net", str(net),
                            "-n", str(N), "--json"], capture_output=True, text=True,
                           timeout=600, cwd=ROOT)
    finally:
        leftover = [ln for ln in _netns_list().splitlines() if ln.startswith(prefix + "-")]
        for ln in leftover:                     # only if the demo's own clean-up failed
            subprocess.run(["ip", "netns", "del", ln.split()[0]], capture_output=True)
    print(r.stderr[-3000:])
    assert not leftover, f"the demo left namespaces behind: {leftover}"
    assert r.stdout.strip(), r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    conns = res["connections"]
    assert len(conns) == N
    assert all(c.get("status") == 200 for c in conns), conns
    assert res["served"]["b1"] > 0 and res["served"]["b2"] > 0, res["served"]
    assert res["served"]["b1"] + res["served"]["b2"] == N

    # the engine's connection table names, for each connection, the backend that answered
    vip = bytes(map(int, res["vip"].split(".")))
    cl = bytes(map(int, res["client"].split(".")))
    table = {bytes.fromhex(e["key"]): int.from_bytes(bytes.fromhex(e["value"])[:4], "little")
             for e in res["conn_table"]}
    for c in conns:
        key = cl + bytes(12) + vip + bytes(12) + struct.pack(">HH", c["sport"], res["port"]) + \
            bytes([6, 4, 0, 0])
        assert key in table, f"connection from port {c['sport']} not in conn_table"
        assert c["body"].startswith(f"b{table[key]} "), (c, table[key])
    assert len(table) == N

    # counters: every frame the client sent the VIP came in on port 0 and left on port 0
    # towards a backend; the TAP saw the same frames as the engine's port
    st = res["stats"]
    tx = st["verdicts"]["XDP_TX"]
    assert tx >= 3 * N                       # at least SYN, the request, the final ACK
    assert st["tx"]["port0"] == tx
    assert _lb_stat(res["lb_stats"], LB_TX_L2) == tx
    assert _lb_stat(res["lb_stats"], LB_CONN_MISS) == N
    # every frame port 0 took got a verdict (but for at most one per core still in flight,
    # and frames that waited too long for a buffer while a `map update` paused the engine)
    assert 0 <= st["rx"]["port0"] - sum(st["verdicts"].values()) - \
        st["dropped"]["no_buffer"] <= 2, st
    assert st["rx"]["inject"] == 0
    # the board's own count of what it read from and wrote to the TAP (printed when it
    # stops, after the stats were read: it may have seen a few frames more)
    tap_in, tap_out = res["tap"]
    assert tap_in >= st["rx"]["port0"] and tap_out >= tx, (res["tap"], st)


def test_sim_board_tap_errors_are_one_line():
    """Bad --tap arguments, and no right to create a TAP, end with one line naming it (before
    any simulation starts)."""
    from bpfpga.errors import TargetError
    from bpfpga.sim.simboard import open_tap
    for bad in ("", "a" * 16, "a/b", "a b"):
        with pytest.raises(TargetError, match="not an interface name"):
            open_tap(bad)
    cli = [sys.executable, "-m", "bpfpga.host.cli_entry", "sim-board"]
    r = subprocess.run(cli + ["--tap", "x=t0"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "expected NAME or PORT=NAME" in r.stderr
    r = subprocess.run(cli + ["--tap", "t0", "--tap", "0=t1"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 1 and "port 0 is already attached to t0" in r.stderr
    if os.geteuid() == 0 and os.path.exists("/dev/net/tun") and shutil.which("setpriv"):
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] +
                           cli + ["--tap", "bpfnoroot0"], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
        assert r.returncode == 1, r.stderr
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
        assert len(err) == 1 and "bpfnoroot0" in err[0] and "CAP_NET_ADMIN" in err[0], r.stderr
