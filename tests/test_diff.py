"""`bpfpga diff` and `bpfpga run` beside the kernel: the kernel's helper probe
(`bpfpga kernel features`), frames some target cannot run (runts), time-dependent maps found
by oracles with varied clocks, and the kernel's ns per packet."""
import json
import random
import struct

import pytest
from click.testing import CliRunner

import bpfobjs
from bpfpga.host.cli import main
from conftest import REPO

EXAMPLES = sorted(p for p in (REPO / "examples").glob("*/") if (p / f"{p.name}.o").exists())


@pytest.fixture(scope="module")
def kernel():
    from bpfpga.host.kernel import kernel_available
    ok, why = kernel_available()
    if not ok:
        pytest.skip(why)


@pytest.fixture(scope="module")
def objs():
    return bpfobjs.build_all()


def invoke(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


# ------------------------------------------------------------------ the probe
def test_kernel_features_cli(kernel):
    r = invoke("kernel", "features", "-j")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    helpers = {h["id"]: h for h in out["helpers"]}
    maps = {m["name"]: m for m in out["map_types"]}
    assert helpers[1]["allowed"] and helpers[1]["name"] == "bpf_map_lookup_elem"
    # a socket helper is never an XDP helper: refused, with the verifier's words
    assert helpers[9]["allowed"] is False and "cannot use helper" in helpers[9]["reason"]
    assert maps["hash"]["allowed"] and maps["lpm_trie"]["allowed"]
    assert len(helpers) > 200 and len(maps) > 30
    r = invoke("kernel", "features")
    assert r.exit_code == 0 and "bpf_xdp_adjust_meta" in r.output
    assert "helpers allowed" in r.output and "map types" in r.output


def test_probe_agrees_with_loading(kernel):
    """The probe's answer for bpf_xdp_adjust_meta is what loading a program that calls it
    gives: the probe decides, not a kernel version."""
    from bpfpga.errors import TargetError
    from bpfpga.host.features import helper
    from bpfpga.host.kernel import KernelTarget
    from test_xdp_helpers_kernel import ADJUST_META, build
    f = helper(54)
    try:
        KernelTarget(build(ADJUST_META, helpers=[54])).close()
        loaded, err = True, ""
    except TargetError as e:
        loaded, err = False, str(e)
    assert loaded == f.allowed, err
    if not loaded:
        assert f.reason in err and "this kernel refuses bpf_xdp_adjust_meta#54 for XDP" \
            in f.refusal()


def test_diff_says_not_compared_in_one_line(kernel):
    from bpfpga.compiler.elf import load_object
    from bpfpga.host.features import not_compared
    ex = REPO / "examples/tailcall"
    why = not_compared(load_object(str(ex / "tailcall.o")))
    r = invoke("diff", ex / "tailcall.o", "--targets", "kernel,ref", "--pcap",
               ex / "traffic.pcap", "--maps", ex / "maps.json", "--max-packets", 200)
    lines = [ln for ln in r.output.splitlines() if "not compared" in ln]
    if why is None:
        assert lines == [] and "on kernel, ref" in r.output
    else:
        assert lines == [f"kernel: not compared: {why}"], r.output
        assert "0 packets compared on ref" in r.output
    assert r.exit_code == 0, r.output


# ------------------------------------------------------------------ runts
def with_runts(packets, seed=1):
    """The packets with examples/runts.pcap's frames (1..13 bytes) spread among them."""
    from bpfpga.sim import pcap
    runts = pcap.read(REPO / "examples/runts.pcap")
    rng = random.Random(seed)
    out = list(packets)
    for p in runts:
        out.insert(rng.randrange(len(out) + 1), p)
    return out, len(runts)


def _runt_pcap(tmp_path, src):
    from bpfpga.sim import pcap
    pk, n = with_runts(pcap.read(src))
    path = tmp_path / "with_runts.pcap"
    pcap.write(path, pk)
    return path, n, pk


def test_runts_percpu_counter(kernel, objs, tmp_path):
    """A PERCPU_ARRAY packet counter over traffic with runts: the kernel never sees the
    runts, the maps are compared before they run, so no false divergence; the runts are
    reported in one line with their count."""
    path, n, pk = _runt_pcap(tmp_path, REPO / "examples/pass/traffic.pcap")
    r = invoke("diff", objs["pktcount"], "--targets", "kernel,ref", "--pcap", path, "-j",
               "--no-timing")
    out = json.loads(r.output)
    assert out["map_divergences"] == [] and out["divergences"] == [], out["map_divergences"]
    assert out["compared"] == len(pk) - n
    # ref refuses what the kernel and the engine refuse (sim/frame.py)
    assert sorted(out["skipped"]) == ["kernel", "ref"]
    assert all(sum(v.values()) == n for v in out["skipped"].values())
    assert r.exit_code == 0
    r = invoke("diff", objs["pktcount"], "--targets", "kernel,ref", "--pcap", path,
               "--no-timing")
    lines = [ln for ln in r.output.splitlines() if "not run on every target" in ln]
    assert lines == [f"frames not run on every target: kernel: {n} frames shorter than 14 "
                     f"bytes: the kernel's BPF_PROG_TEST_RUN refuses them; ref: {n} frames "
                     f"shorter than 14 bytes: ref refuses them, as the kernel and the "
                     f"engine"], r.output


def test_runts_ran_on_ref_after_the_snapshot(objs):
    """The deferred frames still run on the targets that take them: the reference machine's
    final counter for class 0 (< 14 bytes) holds every runt."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.host.diff import compare_targets
    from bpfpga.sim import pcap
    from bpfpga.sim.xdp import XdpRef
    pk, n = with_runts(pcap.read(REPO / "examples/pass/traffic.pcap")[:100])
    o = load_object(str(objs["pktcount"]))

    class NoRunts(XdpRef):     # a target that refuses runts, as the kernel does
        def refuses(self, packet):
            return "runts" if len(packet) < 14 else None

    class TakesRunts(XdpRef):  # one that runs them (ref itself refuses them too now)
        def refuses(self, packet):
            return None
    a, b = NoRunts(o), TakesRunts(o)
    res = compare_targets(o, {"norunts": a, "ref": b}, pk)
    assert res["map_divergences"] == [] and res["skipped"] == {"norunts": {"runts": n}}
    assert res["compared"] == 100 and res["deferred"] == n
    cnt = struct.unpack("<Q", b.map_lookup("pkt_count", bytes(4))[0][:8])[0]
    assert cnt == n and a.map_lookup("pkt_count", bytes(4))[0][:8] == bytes(8)


@pytest.mark.parametrize("ex", EXAMPLES, ids=lambda p: p.name)
def test_examples_with_runts(kernel, ex, tmp_path):
    path, n, pk = _runt_pcap(tmp_path, ex / "traffic.pcap")
    args = ["diff", ex / f"{ex.name}.o", "--targets", "kernel,ref", "--pcap", path, "-j",
            "--no-timing"]
    if (ex / "maps.json").exists():
        args += ["--maps", ex / "maps.json"]
    out = json.loads(invoke(*args).output)
    assert out["map_divergences"] == [] and out["divergences"] == []
    for t in out["targets"]:
        assert sum(out["skipped"][t].values()) == n


# ------------------------------------------------------------------ clocks
def conn_traffic(n=600, seed=5):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        eth = bytes.fromhex("020000000001" "020000000102" "0800")
        syn = rng.random() < 0.4
        tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), rng.choice([22, 80, 443]),
                          rng.getrandbits(32), 0, 5 << 4, 0x02 if syn else 0x10, 512, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0,
                         bytes([10, 0, 0, rng.randrange(1, 255)]), bytes([10, 0, 1, 1]))
        out.append(eth + ip + tcp)
    return out


def test_connection_rate_counter_is_masked(kernel, objs, tmp_path):
    from bpfpga.sim import pcap
    path = tmp_path / "conn.pcap"
    pcap.write(path, conn_traffic())
    r = invoke("diff", objs["connrate"], "--targets", "kernel,ref", "--pcap", path, "-j",
               "--no-timing")
    out = json.loads(r.output)
    assert out["divergences"] == [] and out["map_divergences"] == [], out["map_divergences"]
    assert out["compared"] == 600 and r.exit_code == 0


def test_oracle_clocks_disagree_on_the_rate():
    """What the masking relies on: among the oracles, the per-second counter and the number
    of windows differ (one oracle stays inside one second, one crosses a boundary at every
    packet, one crosses one boundary at the kernel's pace)."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.host.diff import _oracle
    o = load_object(str(bpfobjs.build_all()["connrate"]))
    oracle = _oracle(o, None, None)
    pk = conn_traffic(300)
    syns = sum(1 for p in pk if p[47] == 0x02)
    vals = []
    for t in oracle:
        for p in pk:
            t.run(p)
        sec, conns, windows = struct.unpack("<QQQ", t.map_lookup("conn_rate", bytes(4)))
        vals.append((conns, windows))
    assert (syns, 1) in vals            # everything inside one second
    assert (1, syns) in vals            # a second boundary between any two packets
    assert any(1 < c < syns and w == 2 for c, w in vals), vals   # one boundary mid-run
    assert len({v for v in vals}) >= 3


def test_masking_still_reports_a_real_divergence(kernel, objs):
    """A difference that does not depend on time (a port counter changed on one target) is
    reported, and only that: the time-dependent rate counter stays masked."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.host.diff import _oracle, compare_targets
    from bpfpga.host.kernel import KernelTarget
    from bpfpga.sim.xdp import XdpRef
    o = load_object(str(objs["connrate"]))
    k, ref = KernelTarget(o), XdpRef(o)
    try:
        ref.map_update("port_packets", struct.pack("<H", 8080), struct.pack("<Q", 5))
        res = compare_targets(o, {"kernel": k, "ref": ref}, conn_traffic(200),
                              _oracle(o, None, None))
    finally:
        k.close()
    assert res["divergences"] == []
    assert [(d["map"], d["key"]) for d in res["map_divergences"]] == \
        [("port_packets", struct.pack("<H", 8080).hex())]


# ------------------------------------------------------------------ kernel time
def test_repeat_reruns_on_what_the_last_run_left(kernel):
    """Why time_packet does not use BPF_PROG_TEST_RUN's repeat: the kernel reruns the program
    on the buffer the previous run left (a program moving data by one byte sees 64 - 10)."""
    from bpfpga import isa
    from bpfpga.host import bpfsys as S
    I = isa.Insn
    code = isa.encode([I(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_X, 6, 1),
                       I(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, 2, 0, 0, 1),
                       I(isa.BPF_JMP | isa.BPF_CALL, 0, 0, 0, 44),
                       I(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 2, 6, 0),
                       I(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 0, 6, 4),
                       I(isa.BPF_ALU64 | isa.BPF_SUB | isa.BPF_X, 0, 2),
                       I(isa.BPF_JMP | isa.BPF_EXIT)])
    import os
    fd, _ = S.prog_load(code, name="rerun")
    try:
        assert S.prog_test_run(fd, bytes(64), repeat=1)[0] == 63
        assert S.prog_test_run(fd, bytes(64), repeat=10)[0] == 54
    finally:
        os.close(fd)


def test_run_kernel_reports_ns_per_packet(kernel):
    ex = REPO / "examples/lb"
    r = invoke("run", ex / "lb.o", "--target", "kernel", "--pcap", ex / "traffic.pcap",
               "--maps", ex / "maps.json", "-j")
    out = json.loads(r.output)
    ns = [p["kernel_ns"] for p in out["packets"]]
    kt = out["kernel_ns_per_packet"]
    assert len(ns) == len(out["packets"]) == kt["packets"]
    assert kt["median"] == sorted(ns)[(len(ns) - 1) // 2] and kt["harness_ns"] > 0
    assert kt["max"] > 0          # the load balancer costs the kernel something
    r = invoke("run", ex / "lb.o", "--target", "kernel", "--pcap", ex / "traffic.pcap",
               "--maps", ex / "maps.json", "-q")
    assert "per packet: kernel " in r.output and "ns (median over" in r.output


def test_diff_reports_kernel_time_and_results_stay_exact(kernel):
    """Timing runs on a second copy of the object: the compared maps see each packet once."""
    ex = REPO / "examples/firewall"
    r = invoke("diff", ex / "firewall.o", "--pcap", ex / "traffic.pcap", "--maps",
               ex / "maps.json", "-j")
    out = json.loads(r.output)
    assert out["map_divergences"] == [] and r.exit_code == 0
    kt = out["kernel_ns_per_packet"]
    assert kt["packets"] == out["compared"] and kt["median"] is not None
