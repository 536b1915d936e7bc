"""End to end: `bpfpga sim-board` (the engine in Verilator behind its UART bridge on TCP) driven
by the real CLI as a user would (`prog load`, `map update`, `stats`, `map dump`), with a pcap
replayed into port 0 and the frames leaving captured, all compared with the ref target on the
same object, map entries and packets. Then loads over a link that drops and corrupts bytes:
nothing corrupt is ever committed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bpfpga.compiler.elf import load_object
from bpfpga.compiler.mapsjson import load as load_maps
from bpfpga.errors import TargetError
from bpfpga.sim import pcap

ROOT = Path(__file__).resolve().parents[1]
LB = ROOT / "examples" / "lb"
N_PACKETS = 100
CLI = [sys.executable, "-m", "bpfpga.host.cli_entry"]
# the VIP and its backends go in with `map update`, one entry at a time; the rest at load
LIVE_MAPS = ("vip_map", "backends")



class Board:
    def __init__(self, tmp: Path, *args):
        self.proc = subprocess.Popen(CLI + ["sim-board", "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=open(tmp / "board.err", "w"),
                                     text=True, cwd=ROOT)
        line = self.proc.stdout.readline()       # waits for a (cached) model build
        if "serving" not in line:
            self.close()
            raise RuntimeError(f"sim-board did not start: {line!r} "
                               f"{(tmp / 'board.err').read_text()[-2000:]}")
        self.url = line.split("serving ")[1].split()[0].rstrip(";")
        self.env = dict(os.environ, BPFPGA_DEVICE=self.url)

    def cli(self, *args, check=True):
        r = subprocess.run(CLI + list(args), capture_output=True, text=True, env=self.env,
                           cwd=ROOT, timeout=300)
        if check and r.returncode:
            raise AssertionError(f"bpfpga {' '.join(args)}: {r.stderr}")
        return r

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _ref(entries, packets):
    from bpfpga.host.targets import apply_maps
    from bpfpga.sim.xdp import XdpRef
    o = load_object(str(LB / "lb.o"))
    t = XdpRef(o, ncpus=2)
    apply_maps(t, o, entries)
    return t, [t.run(p) for p in packets]


def _sum_percpu(rows):
    out = {}
    for r in rows:
        vals = [bytes.fromhex(v) for v in r["values"]] if "values" in r else \
            [bytes.fromhex(r["value"])]
        words = [sum(int.from_bytes(v[i:i + 8], "little") for v in vals)
                 for i in range(0, len(vals[0]), 8)]
        out[r["key"]] = words
    return out


def test_simboard_cli_matches_ref(tmp_path):
    frames = pcap.read(LB / "traffic.pcap")[:N_PACKETS]
    pcap.write(tmp_path / "in.pcap", frames)
    entries = load_maps(LB / "maps.json")
    raw = json.loads((LB / "maps.json").read_text())
    (tmp_path / "base.json").write_text(json.dumps(
        {k: v for k, v in raw.items() if k not in LIVE_MAPS}))
    cap = tmp_path / "cap"
    t_start = time.time()
    board = Board(tmp_path, "--port0-pcap", str(tmp_path / "in.pcap"), "--capture", str(cap),
                  "--replay-on", "signal")
    print(f"board up {time.time() - t_start:.1f}s")
    try:
        info = json.loads(board.cli("device", "info", "-j").stdout)
        assert info["cores"] >= 1 and info["ident"] == "0x62706658"
        # the simulated board is built with every helper and map type
        assert {"bpf_map_lookup_elem", "bpf_tail_call", "bpf_trace_printk"} <= \
            set(info["helpers"]) and {"hash", "lpm_trie", "prog_array"} <= set(info["map_types"])
        r = board.cli("prog", "load", str(LB / "lb.o"), "--maps", str(tmp_path / "base.json"),
                      "-j")
        assert json.loads(r.stdout)["slots"] > 900
        shown = json.loads(board.cli("prog", "show", "-j").stdout)
        assert shown["name"] == "xdp_lb" and shown["object"] == str(LB / "lb.o")
        assert {m["name"] for m in json.loads(board.cli("map", "list", "-j").stdout)} == \
            {m.name for m in load_object(str(LB / "lb.o")).maps}
        print(f"loaded {time.time() - t_start:.1f}s")
        for name in LIVE_MAPS:
            for e in raw[name]:
                board.cli("map", "update", name, e["key"], e["value"])
        k = raw["vip_map"][0]["key"]
        got = json.loads(board.cli("map", "lookup", "vip_map", k, "-j").stdout)
        assert got["value"] == raw["vip_map"][0]["value"]
        # delete and put back one backend: delete on an array zeroes nothing (EINVAL)...
        miss = board.cli("map", "lookup", "vip_map", "00" * 20, check=False)
        assert miss.returncode == 1 and "no such key" in miss.stderr
        tr = board.cli("trace")             # lb prints nothing: an empty FIFO
        assert tr.stdout == ""

        print(f"maps updated {time.time() - t_start:.1f}s")
        board.proc.send_signal(signal.SIGUSR1)       # replay the pcap into port 0
        t0 = time.time()
        while True:
            res = (cap / "results.json").read_text().splitlines() \
                if (cap / "results.json").exists() else []
            if len(res) >= N_PACKETS:
                break
            assert time.time() - t0 < 120, f"{len(res)} of {N_PACKETS} results"
            time.sleep(0.5)
        print(f"replayed {time.time() - t_start:.1f}s")
        stats = json.loads(board.cli("stats", "-j").stdout)
        dumps = {n: json.loads(board.cli("map", "dump", n, "-j").stdout)
                 for n in ("conn_table", "lb_stats")}
        print(f"dumped {time.time() - t_start:.1f}s")
    finally:
        board.close()

    ref, want = _ref(entries, frames)
    names = ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"]
    want_counts = {n: sum(1 for r in want if r.verdict == i) for i, n in enumerate(names)}
    assert stats["verdicts"] == want_counts
    assert stats["rx"]["inject"] == N_PACKETS
    assert sum(c["packets"] for c in stats["cores"]) == N_PACKETS
    assert all(c["busy_cycles"] > 0 for c in stats["cores"] if c["packets"])
    assert want_counts["XDP_TX"] > 0 and want_counts["XDP_PASS"] > 0

    assert [r["verdict"] for r in map(json.loads, res)] == [r.verdict for r in want]
    assert pcap.read(cap / "port0.pcap") == [r.packet for r in want if r.verdict == 3]
    assert pcap.read(cap / "host.pcap") == [r.packet for r in want if r.verdict == 2]

    # conn_table: the same connections to the same backends (last_seen_ns is the clock's)
    ref_conn = {bytes(k).hex(): bytes(v)[:8].hex() for k, v in ref.map_dump("conn_table")}
    assert {r["key"]: r["value"][:16] for r in dumps["conn_table"]} == ref_conn
    ref_stats = [{"key": bytes(k).hex(), "values": [bytes(x).hex() for x in v]}
                 for k, v in ref.map_dump("lb_stats")]
    assert _sum_percpu(dumps["lb_stats"]) == _sum_percpu(ref_stats)


def test_simboard_trace(tmp_path):
    """`bpfpga trace` reads trace_printk's lines from the board's trace FIFO: the same text,
    frame by frame, as the ref target prints (tests/objects/trace.c)."""
    from bpfobjs import build_all
    from bpfpga.sim.xdp import XdpRef
    obj = build_all()["trace"]
    frames = [bytes(12) + bytes([8, 0, i, 200 + i]) + bytes(40) for i in range(3)]
    pcap.write(tmp_path / "in.pcap", frames)
    board = Board(tmp_path, "--port0-pcap", str(tmp_path / "in.pcap"), "--replay-on", "load")
    try:
        board.cli("prog", "load", str(obj))
        recs = []
        t0 = time.time()
        while len(recs) < 27:
            assert time.time() - t0 < 60, f"{len(recs)} trace lines of 27"
            recs += [json.loads(ln) for ln in board.cli("trace", "-j").stdout.splitlines()]
        text = board.cli("trace").stdout          # every record is read once
        stats = json.loads(board.cli("stats", "-j").stdout)
    finally:
        board.close()
    ref = XdpRef(load_object(str(obj)))
    want = [r.trace for r in (ref.run(f) for f in frames)]
    assert text == ""
    assert stats["trace"] == {"records": 27, "lost": 0}
    got = {}
    for r in recs:
        got.setdefault(r["seq"], []).append(r["text"])
        assert r["len"] == len(r["text"])       # the helper's return value: the text's length
    assert [got[s] for s in sorted(got)] == want


def _faulty_device(url, drop, corrupt, seed):
    import serial

    from bpfpga.auth import key_for
    from bpfpga.host.device import Device
    from bpfpga.host.transport import AuthPort, FaultyPort, UartBridge
    raw = AuthPort(serial.serial_for_url(url, timeout=0.5), key_for(url), url)
    # faults both ways: on the commands (the engine's write window and keyed commit refuse a
    # garbled write) and on the answers (reads until two agree). They garble the bridge's
    # bytes inside the authenticated records (what a bad UART does to the bridge); a garbled
    # record itself is refused whole by its tag (tests/test_auth.py)
    fp = FaultyPort(raw, drop=drop, corrupt=corrupt, seed=seed)
    dev = Device(transport=UartBridge(url, timeout=0.5, retries=8, port=fp), timeout=10)
    return dev, fp


def _expected_dump(md, given):
    return {k.hex(): v.hex() for k, v in given}


def _check_maps(clean, ld, entries):
    clean.pause()
    try:
        for name, lst in entries.items():
            dump = {bytes(k).hex(): bytes(v).hex() for k, v in ld.map(name).dump()}
            want = {k.hex(): v.hex() for k, v in lst}
            if ld.map(name).is_hash:
                assert dump == want, name
            else:
                assert {k: dump[k] for k in want} == want, name
                assert all(int(v, 16) == 0 for k, v in dump.items() if k not in want), name
    finally:
        clean.resume()


def test_faulty_link_never_commits_corruption(tmp_path, monkeypatch):
    """Program and map loads over a link that loses and flips bytes in both directions either
    fail with a clear error or leave exactly the program and entries asked for (checked over
    a clean link); the engine's write guard refuses what the faults garble; a failed load
    leaves the program that ran before it."""
    import zlib

    from bpfpga.hdl import control as C
    from bpfpga.host.device import Device, install, live_record, open_loaded, place
    raw = json.loads((LB / "maps.json").read_text())
    sub = {n: raw[n] for n in ("lb_config", "vip_map", "backends")}
    (tmp_path / "sub.json").write_text(json.dumps(sub))
    entries = load_maps(tmp_path / "sub.json")
    board = Board(tmp_path)
    outcomes = []
    try:
        clean = Device(board.url, timeout=10)
        # a different program first, so that "the old program" is a known one
        old = install(clean, load_object(str(ROOT / "examples" / "pass" / "pass.o")))
        slots = {zlib.crc32(old.code) & 0xFFFFFFFF: len(old.code) // 8}
        refused0 = clean.guard()[1:]
        clean.close()
        for seed, drop, corrupt in ((1, 0.0, 0.001), (2, 0.0005, 0.0), (3, 0.0005, 0.001),
                                    (4, 0.05, 0.05)):
            clean = Device(board.url, timeout=10)
            # what this load must commit: lb linked beside the running object
            lb = place(clean, load_object(str(LB / "lb.o")), None, live_record(clean)[1])
            lb_crc = lb.crc
            slots[lb_crc] = len(lb.code) // 8
            before = clean.reg(C.R_PROG_CRC)
            assert before in slots
            dev = fp = None
            try:
                dev, fp = _faulty_device(board.url, drop, corrupt, seed)
                install(dev, load_object(str(LB / "lb.o")), entries=entries)
                ok = True
            except TargetError as e:
                ok = False
                msg = str(e)
                assert "\n" not in msg and board.url in msg or "map '" in msg, msg
            finally:
                if dev is not None:
                    dev.close()
            time.sleep(0.3)                    # let the bridge's parser reset
            outcomes.append((seed, ok, fp.dropped + fp.corrupted if fp else 0,
                             None if ok else msg))
            print(outcomes[-1])
            now = clean.reg(C.R_PROG_CRC)
            # the engine runs the old program or exactly lb's image, never anything else
            assert now in slots, hex(now)
            assert clean.reg(C.R_PROG_LEN) == slots[now]
            if ok:
                ld, meta = open_loaded(clean)
                assert now == lb_crc and ld.code == lb.code
                assert clean.staged_crc(len(lb.code) // 8) == lb_crc
                _check_maps(clean, ld, entries)
            elif now != before:
                # committed, then failed after its commit (confirming it): the maps were
                # verified before the commit
                ld, meta = open_loaded(clean)
                assert now == ld.crc
                _check_maps(clean, ld, entries)
            # never paused: a failed load leaves the engine running
            assert clean.reg(C.R_CTRL) & C.CTRL_ENABLE
            clean.close()
        # a load whose record cannot be written fails before its commit: the old program
        # runs on, enabled, with its maps as they were
        from bpfpga.host import device as device_mod
        clean = Device(board.url, timeout=10)
        install(clean, load_object(str(ROOT / "examples" / "pass" / "pass.o")))
        before = clean.reg(C.R_PROG_CRC)
        write_meta = device_mod.write_meta

        def no_record(dev, slot, meta, retries=3):
            if meta is not None:
                raise TargetError(f"{dev.url}: could not record the loaded object on the device")
            write_meta(dev, slot, meta, retries)
        monkeypatch.setattr(device_mod, "write_meta", no_record)
        with pytest.raises(TargetError, match="the old program is running, with its maps as"):
            install(clean, load_object(str(LB / "lb.o")), entries=entries)
        monkeypatch.undo()
        assert clean.reg(C.R_PROG_CRC) == before
        assert clean.reg(C.R_CTRL) & C.CTRL_ENABLE
        refused = [(a - b) & 0xFF for a, b in zip(clean.guard()[1:], refused0)]
        clean.close()
    finally:
        board.close()
    print(outcomes, "refused writes, commits:", refused)
    assert any(ok for _, ok, _, _ in outcomes), outcomes
    assert sum(f for _, _, f, _ in outcomes) > 0, outcomes
    # faults on the commands reached the engine and its guard refused garbled writes
    assert refused[0] > 0, refused
