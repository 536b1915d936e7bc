"""Issue 14, parts 4-7, against the kernel: bpf_redirect_map's flags (BPF_F_BROADCAST,
BPF_F_EXCLUDE_INGRESS), maps of maps whose inner maps maps.json defines, `.rodata` set before
load and frozen after, and which programs and maps of an object a run takes. Everything runs
through the CLI as a user would (`bpfpga diff OBJ --targets kernel,ref[,rtl] --maps M`)."""
import json
import random

import pytest
from click.testing import CliRunner

import bpfobjs
from bpfpga import isa
from bpfpga import obj as O
from bpfpga.compiler import mapsjson
from bpfpga.compiler.elf import load_object
from bpfpga.errors import BpfpgaError, LoadError, TargetError
from bpfpga.host.cli import main
from bpfpga.sim import pcap
from bpfpga.sim.xdp import XdpRef


@pytest.fixture(scope="module")
def objs():
    return bpfobjs.build_all()


@pytest.fixture(scope="module")
def rand_pcap(tmp_path_factory):
    rng = random.Random(14)
    pk = [bytes(rng.getrandbits(8) for _ in range(rng.choice([14, 16, 20, 60, 64, 100])))
          for _ in range(300)]
    p = tmp_path_factory.mktemp("pcap") / "rand.pcap"
    pcap.write(p, pk)
    return p


def kernel_targets():
    from bpfpga.host.kernel import kernel_available
    ok, _ = kernel_available()
    return ["kernel"] if ok else []


def need_kernel():
    from bpfpga.host.kernel import kernel_available
    ok, why = kernel_available()
    if not ok:
        pytest.skip(why)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def diff(obj, targets, pcap_path, maps=None, extra=()):
    args = ["diff", obj, "--targets", ",".join(targets), "--pcap", pcap_path, "-j", *extra]
    if maps:
        args += ["--maps", maps]
    r = cli(*args)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    out = json.loads(r.stdout)
    assert out["divergences"] == [], out["divergences"][:3]
    assert out["map_divergences"] == [], out["map_divergences"][:3]
    assert r.exit_code == 0
    return out


def write_json(tmp_path, name, data):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


@pytest.fixture(scope="module")
def xdp_model():
    from bpfpga.sim.rtl_xdp_build import build
    return build()


# --- 4. bpf_redirect_map flags ---------------------------------------------------------------
DEVMAP_JSON = {"ports": [{"key": "00000000", "value": "01000000"},
                         {"key": "02000000", "value": "01000000"}]}


def _pkt(key, sel, low):
    return bytes([key, sel, low]) + bytes(13)


@pytest.mark.parametrize("key,sel,low,verdict", [
    (7, 0, 2, isa.XDP_PASS),         # a missing key: the low two flag bits
    (0, 0, 2, isa.XDP_REDIRECT),     # present
    (7, 1, 0, isa.XDP_REDIRECT),     # BROADCAST: REDIRECT although the key is missing
    (5, 2, 0, isa.XDP_REDIRECT),     # BROADCAST | EXCLUDE_INGRESS, beyond max_entries
    (7, 3, 3, isa.XDP_TX),           # EXCLUDE_INGRESS alone: valid, the key decides
    (7, 4, 1, isa.XDP_REDIRECT),     # BROADCAST with a fallback verdict: still REDIRECT
    (0, 5, 0, isa.XDP_ABORTED),      # bit 2: no flag of a devmap
    (0, 6, 0, isa.XDP_ABORTED),      # bit 5 with BROADCAST
    (0, 7, 0, isa.XDP_ABORTED),      # bit 40
])
def test_redirect_map_flags_ref(objs, key, sel, low, verdict):
    t = XdpRef(load_object(str(objs["bcast"])))
    for e in DEVMAP_JSON["ports"]:
        t.map_update("ports", bytes.fromhex(e["key"]), bytes.fromhex(e["value"]))
    r = t.run(_pkt(key, sel, low))
    assert r.verdict == verdict
    if verdict == isa.XDP_REDIRECT:
        assert r.redirect == (0 if sel in (1, 2, 4) else 1)


def test_redirect_map_broadcast_matches_kernel(objs, rand_pcap, tmp_path):
    need_kernel()
    m = write_json(tmp_path, "devmap.json", DEVMAP_JSON)
    pk = pcap.read(rand_pcap) + [_pkt(k, s, lo) for k in (0, 2, 5, 7) for s in range(8)
                                 for lo in range(4)]
    p = tmp_path / "bcast.pcap"
    pcap.write(p, pk)
    out = diff(objs["bcast"], ["kernel", "ref"], p, m)
    assert out["compared"] == len(pk)


def test_redirect_map_broadcast_rtl(objs, tmp_path, xdp_model):
    m = write_json(tmp_path, "devmap.json", DEVMAP_JSON)
    pk = [_pkt(k, s, lo) for k in (0, 2, 5, 7) for s in range(8) for lo in range(4)]
    p = tmp_path / "bcast.pcap"
    pcap.write(p, pk)
    out = diff(objs["bcast"], kernel_targets() + ["ref", "rtl"], p, m)
    assert out["compared"] == len(pk)


# --- 5. maps of maps with inner maps from maps.json ------------------------------------------
INNER = {
    "tenant_a": {"type": "hash", "key_size": 4, "value_size": 4, "max_entries": 8,
                 "entries": [{"key": "01000000", "value": "03000000"},
                             {"key": "02000000", "value": "01000000"},
                             {"key": "05000000", "value": "00000000"}]},
    "tenant_b": {"type": "hash", "key_size": 4, "value_size": 4, "max_entries": 8,
                 "entries": [{"key": "03000000", "value": "02000000"}]},
    "port_0": {"type": "array", "key_size": 4, "value_size": 4, "max_entries": 8,
               "entries": [{"key": "00000000", "value": "07000000"}]},
    "port_1": {"type": 2, "key_size": 4, "value_size": 4, "max_entries": 8},
    "by_tenant": [{"key": "01000000", "map": "tenant_a"}, {"key": "04000000", "map": "tenant_b"},
                  {"key": "06000000", "map": "tenant_a"}],
    "by_port": [{"key": "00000000", "map": "port_0"}, {"key": "01000000", "map": "port_1"}],
}


def test_map_in_map_inner_from_maps_json(objs, tmp_path):
    path = str(objs["mapinmap"])
    bare = load_object(path)
    assert [bare.map(n).value_size for n in ("by_tenant", "by_port")] == [4, 4]
    o = mapsjson.prepare(bare, mapsjson.read(write_json(tmp_path, "m.json", INNER)))
    assert o.map("by_tenant").inner.name == "by_tenant.inner"
    assert (o.map("by_tenant").inner.type, o.map("by_port").inner.type) == (
        O.BPF_MAP_TYPE_HASH, O.BPF_MAP_TYPE_ARRAY)
    assert bare.map("by_tenant").inner is None     # the loaded object is not changed
    assert [m.name for m in o.maps][-4:] == ["tenant_a", "tenant_b", "port_0", "port_1"]
    # the slots name inner maps, and lookups go through them
    t = XdpRef(o)
    from bpfpga.host.targets import apply_maps
    apply_maps(t, o, mapsjson.load(write_json(tmp_path, "m.json", INNER)))
    assert t.run(bytes([1, 1, 0]) + bytes(13)).verdict == isa.XDP_TX      # tenant_a[1] = 3
    assert t.run(bytes([4, 3, 0]) + bytes(13)).verdict == isa.XDP_PASS    # tenant_b[3] = 2
    assert t.run(bytes([0, 0, 0]) + bytes(13)).verdict == isa.XDP_TX      # port_0[0] exists
    assert t.map_lookup("port_0", bytes(4)) == (8).to_bytes(4, "little")


@pytest.mark.parametrize("rtl", [False, True], ids=["kernel-ref", "kernel-ref-rtl"])
def test_map_in_map_diff(objs, rand_pcap, tmp_path, rtl, request):
    targets = kernel_targets() + ["ref"]
    if rtl:
        request.getfixturevalue("xdp_model")
        targets.append("rtl")
    elif not kernel_targets():
        pytest.skip("needs the kernel target")
    m = write_json(tmp_path, "m.json", INNER)
    out = diff(objs["mapinmap"], targets, rand_pcap, m)
    assert out["compared"] >= 250


def test_maps_json_definition_errors(objs, tmp_path):
    path = str(objs["mapinmap"])
    o = load_object(path)
    cases = [({"hits": {"type": "array", "key_size": 4, "value_size": 8, "max_entries": 4}},
              "map 'hits': the object defines it already"),
             ({"x": {"type": "ringbuf", "key_size": 4, "value_size": 4, "max_entries": 4}},
              "map 'x': a maps.json map cannot be of type ringbuf"),
             ({"x": {"type": "hash", "key_size": 0, "value_size": 4, "max_entries": 4}},
              "map 'x': 'key_size' must be"),
             ({"x": {"type": "hash", "key_size": 4, "value_size": 4, "max_entries": 4,
                     "size": 1}}, "map 'x': unknown field 'size'")]
    for data, msg in cases:
        with pytest.raises(LoadError, match=msg) as e:
            mapsjson.prepare(o, mapsjson.read(write_json(tmp_path, "bad.json", data)))
        assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path))
    # an outer map no maps.json slot gives a template: refused by every target
    only = {k: v for k, v in INNER.items() if k != "by_port"}
    for t in ["ref"] + kernel_targets():
        r = cli("run", path, "--target", t, "--pcap", tmp_path / "none.pcap", "--maps",
                write_json(tmp_path, "m.json", only))
        assert r.exit_code == 1
        assert "map 'by_port' (array_of_maps) has no inner map definition" in r.output


# --- 6. read-only data -----------------------------------------------------------------------
RO = {".rodata": [{"key": "00000000", "value": "0300000000000000"}]}


def test_rodata_set_before_load_matches_kernel(objs, rand_pcap, tmp_path):
    need_kernel()
    out = diff(objs["rodata"], ["kernel", "ref"], rand_pcap, write_json(tmp_path, "r.json", RO))
    assert out["compared"] == 300
    r = cli("run", objs["rodata"], "--pcap", rand_pcap, "--maps",
            write_json(tmp_path, "r.json", RO), "-j")
    verdicts = {p["verdict"] for p in json.loads(r.stdout)["packets"]}
    assert verdicts == {"TX"}, verdicts       # cfg_verdict = 3 from maps.json, not PASS


def test_rodata_frozen_after_load(objs, tmp_path):
    o = mapsjson.prepare(load_object(str(objs["rodata"])),
                         mapsjson.read(write_json(tmp_path, "r.json", RO)))
    t = XdpRef(o)
    assert t.map_lookup(".rodata", bytes(4))[:4] == (3).to_bytes(4, "little")
    with pytest.raises(TargetError, match="map '.rodata' is read-only data, frozen"):
        t.map_update(".rodata", bytes(4), bytes(8))
    with pytest.raises(LoadError, match="value of 4 bytes, the section has 8"):
        mapsjson.prepare(load_object(str(objs["rodata"])), mapsjson.read(write_json(
            tmp_path, "r.json", {".rodata": [{"key": "00000000", "value": "03000000"}]})))


def test_rodata_write_refused_everywhere(objs, rand_pcap, xdp_model):
    path = objs["rodata"]
    msgs = {}
    for t in ["ref", "rtl"] + kernel_targets():
        r = cli("run", path, "--prog", "rodata_writer", "--target", t, "--pcap", rand_pcap)
        assert r.exit_code == 1, r.output
        msgs[t] = r.output.strip().splitlines()[-1]
    for t in ("ref", "rtl"):
        assert "program 'rodata_writer': instruction 3: store into read-only map '.rodata'" \
            in msgs[t], msgs[t]
    if "kernel" in msgs:
        assert "write into map forbidden" in msgs["kernel"] and "at 3:" in msgs["kernel"]
    # the program that only reads it runs
    assert XdpRef(load_object(str(path))).run(bytes(14)).verdict == isa.XDP_PASS


def test_rodata_write_analysis():
    from bpfpga.compiler.asm import assemble_insns
    from bpfpga.compiler.check import _readonly_write

    def prog(src):
        ins = assemble_insns(src)
        for i in ins:       # `lddw rX, 0x2000000N`: the value of map N (src_reg 6)
            if i.spec.kind == isa.LDDW and i.imm >> 28 == 2:
                i.src, i.imm = isa.BPF_PSEUDO_MAP_IDX_VALUE, i.imm & 0xFF
            elif i.spec.kind == isa.LDDW and i.imm >> 28 == 1:
                i.src, i.imm = isa.BPF_PSEUDO_MAP_IDX, i.imm & 0xFF
        return isa.encode(ins)
    ro = {1: ".rodata"}
    # through a copy, an offset and a stack spill, on one branch only
    spilled = prog("lddw %r1, 0x20000001\nadd %r1, 4\nstxdw [%r10-8], %r1\nmov %r0, 0\n"
                   "jeq %r0, 0, +2\nldxdw %r2, [%r10-8]\nstw [%r2+0], 1\nexit")
    assert _readonly_write(spilled, ro) == (7, 1, "store into")
    # map 0 is writable; reading map 1 is fine
    assert _readonly_write(prog("lddw %r1, 0x20000000\nstw [%r1+0], 1\nlddw %r2, 0x20000001\n"
                                "ldxw %r0, [%r2+0]\nexit"), ro) is None
    # map_update_elem on it, and a lookup's pointer written
    assert _readonly_write(prog("lddw %r1, 0x10000001\nmov %r2, %r10\nadd %r2, -4\n"
                                "mov %r3, %r2\nmov %r4, 0\ncall 2\nexit"), ro)[2] == "update of"
    assert _readonly_write(prog("lddw %r1, 0x10000001\nmov %r2, %r10\nadd %r2, -4\ncall 1\n"
                                "jeq %r0, 0, +1\nstxw [%r0+0], %r0\nexit"), ro)[0] == 6


def refused_everywhere(path, pcap_path, msg, *extra):
    """`bpfpga run` of the object fails on ref and the kernel with the one line msg."""
    for t in ["ref"] + kernel_targets():
        r = cli("run", path, "--target", t, "--pcap", pcap_path, *extra)
        assert r.exit_code == 1, r.output
        assert r.output.strip().splitlines()[-1] == f"error: {path}: {msg}"


def test_zero_max_entries_names_map_size(objs, rand_pcap):
    refused_everywhere(objs["mixed"], rand_pcap, "map 'sized_later' (hash) has max_entries 0 "
                       "in the object (it is sized at load time): give its size with "
                       "--map-size sized_later=ENTRIES")


# --- 7. which program ------------------------------------------------------------------------
@pytest.mark.parametrize("section,attach", [
    ("xdp", "xdp"), ("xdp/lb", "xdp"), ("xdp.frags", "xdp"), ("xdp.frags/lb", "xdp"),
    ("xdp/devmap", "devmap"), ("xdp.frags/devmap", "devmap"), ("xdp_devmap", "devmap"),
    ("xdp_devmap/fwd", "devmap"), ("xdp/cpumap", "cpumap"), ("xdp.frags/cpumap", "cpumap"),
    ("xdp_cpumap/x", "cpumap"), ("xdpfoo", None), ("xdp_prog", None), ("tc", None),
    ("kprobe/xdp", None), (".text", None)])
def test_xdp_sections(section, attach):
    assert O.xdp_attach(section) == attach


def test_other_program_types_listed_not_run(objs, rand_pcap):
    path = objs["mixed"]
    r = cli("prog", "show", path, "-j")
    d = json.loads(r.stdout)
    assert [(p["name"], p["type"], p.get("attach")) for p in d["programs"]] == [
        ("on_sleep", "kprobe", None), ("tc_prog", "sched_cls", None),
        ("mixed_xdp", "xdp", "xdp"), ("mixed_devmap", "xdp", "devmap")]
    assert d["default_program"] == "mixed_xdp"
    o = load_object(str(path))
    assert o.program().name == "mixed_xdp"
    for t in ["ref"] + kernel_targets():
        r = cli("run", path, "--target", t, "--pcap", rand_pcap, "--map-size",
                "sized_later=16", "-j")
        assert r.exit_code == 0, r.output
        assert f"note: {path}: left out map(s) 'events' (ringbuf): no XDP program uses " \
            in r.stderr
        assert json.loads(r.stdout)["summary"] == {"PASS": 300}
    refused_everywhere(path, rand_pcap, "program 'tc_prog' is in section 'tc', a sched_cls "
                       "program, not XDP", "--map-size", "sized_later=16", "--prog", "tc_prog")


def test_unsupported_map_used_by_xdp_is_an_error(objs):
    o = load_object(str(objs["mixed"]), map_sizes={"sized_later": 4})
    o.programs[2].maps_used.append("events")    # as if the XDP program referenced it
    with pytest.raises(BpfpgaError, match="map 'events'.*ringbuf"):
        XdpRef(o)


def test_kfunc_named(objs, rand_pcap):
    refused_everywhere(objs["kfunc"], rand_pcap, "program 'kf_prog': instruction 4: call to "
                       "kfunc 'bpf_xdp_metadata_rx_timestamp': kfuncs are kernel functions, "
                       "which bpfpga does not support")
