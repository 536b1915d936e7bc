"""Maps by their BTF types (compiler/btfvalue.py): keys and values printed and taken as
structs with field names, arrays, enums, bitfields, unions, signed integers, network-order
integers, addresses as text and global data by variable, in maps.json and the map commands;
errors name the field and the type."""
import json
import struct

import pytest
from click.testing import CliRunner

from bpfpga.compiler.btfvalue import MapTypes
from bpfpga.compiler.elf import load_object
from bpfpga.compiler.mapsjson import load as load_maps, resolve
from bpfpga.errors import LoadError
from bpfpga.host.cli import main
from conftest import REPO

KEY = {"addr": "10.0.0.1", "port": 80, "proto": 6}
VALUE = {"act": "ACT_DROP", "name": "web", "weight": 5, "zone": 17, "bias": -2,
         "gw": {"bytes": [192, 168, 0, 1]}}


@pytest.fixture(scope="module")
def typed():
    from bpfobjs import build_all
    return build_all()["typed"]


def _types(path, name):
    o = load_object(str(path))
    return MapTypes.of(o, o.map(name))


def test_struct_key_and_value_bytes(typed):
    mt = _types(typed, "services")
    k = mt.key(KEY)
    assert k == bytes([10, 0, 0, 1]) + struct.pack(">H", 80) + bytes([6, 0])
    v = mt.value(VALUE)
    assert v[:4] == struct.pack("<I", 1) and v[4:8] == bytes(4)           # ACT_DROP, hits
    assert v[8:16] == b"web".ljust(8, b"\0")
    assert v[16] == 5 | (17 << 3) and struct.unpack("<b", v[17:18])[0] == -2   # bitfields
    assert v[20:24] == bytes([192, 168, 0, 1])
    assert mt.show_key(k) == {"addr": 0x0A000001, "port": 80, "proto": 6, "pad": 0}
    shown = mt.show_value(v)
    assert shown["act"] == "ACT_DROP" and shown["name"] == "web" and shown["bias"] == -2
    assert (shown["weight"], shown["zone"]) == (5, 17)
    assert shown["gw"] == {"v4": 0x0100A8C0, "bytes": [192, 168, 0, 1]}
    # what is shown is taken back as the same bytes
    assert mt.key(mt.show_key(k)) == k and mt.value(shown) == v
    # hex of exactly the size is raw bytes, as before
    assert mt.key(k.hex()) == k and mt.key(json.dumps(KEY)) == k


@pytest.mark.parametrize("bad,words", [
    ({"port": 70000}, ["key.port", "70000 does not fit __be16"]),
    ({"nope": 1}, ["key.nope", "no field 'nope'", "fields: addr, port, proto, pad"]),
    ({"addr": "10.0.0.256"}, ["key.addr", "expected an integer (__be32)"]),
    ([1, 2], ["key:", "expected an object with the fields of struct svc_key"]),
])
def test_key_errors_name_the_field(typed, bad, words):
    with pytest.raises(LoadError) as e:
        _types(typed, "services").key(bad, "m.json: entry 3")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m.json: entry 3: map 'services' key")
    assert all(w in msg for w in words), msg


@pytest.mark.parametrize("bad,words", [
    ({"act": "ACT_FWD"}, ["value.act", "ACT_PASS"]),
    ({"weight": 8}, ["value.weight", "does not fit a 3-bit field"]),
    ({"name": "much too long"}, ["value.name", "does not fit char[8]"]),
    ({"bias": 200}, ["value.bias", "signed"]),
])
def test_value_errors_name_the_field(typed, bad, words):
    with pytest.raises(LoadError) as e:
        _types(typed, "services").value(bad)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_rodata_by_variable(typed):
    mt = _types(typed, ".rodata")
    assert mt.show_value(mt.data) == {"default_verdict": 2, "scale": 1}
    # a variable not named keeps the object's value
    assert mt.value({"scale": 3}) == struct.pack("<II", 2, 3)
    with pytest.raises(LoadError, match="no variable 'x'"):
        mt.value({"x": 1})


def test_lb_typed_maps_json_is_the_hex_one():
    """examples/lb/maps.typed.json (addresses as text, ports as numbers) gives the very bytes
    of the hand-made hex maps.json."""
    o = load_object(str(REPO / "examples/lb/lb.o"))
    a = resolve(o, load_maps(REPO / "examples/lb/maps.typed.json"))
    b = load_maps(REPO / "examples/lb/maps.json")
    assert a.keys() == b.keys() and a == b


def _packets():
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    hit = eth + bytes([10, 0, 0, 1]) + struct.pack(">H", 80) + bytes([6]) + bytes(30)
    miss = eth + bytes([10, 0, 0, 2]) + struct.pack(">H", 80) + bytes([6]) + bytes(30)
    return [hit, miss, hit, hit, miss]


def _typed_json(tmp_path):
    p = tmp_path / "typed.json"
    p.write_text(json.dumps({
        "services": [{"key": KEY, "value": VALUE},
                     {"key": {"addr": "10.0.0.9", "port": 53, "proto": 17},
                      "value": {"act": "ACT_TX"}}],
        ".rodata": [{"key": "00000000", "value": {"default_verdict": 3}}]}))
    return p


def test_typed_maps_json_on_kernel_and_ref(typed, tmp_path):
    """A typed maps.json (services by struct, .rodata by variable) on every target the same:
    the hits counter, the verdicts (ACT_DROP for the service, .rodata's XDP_TX otherwise)."""
    from bpfpga.host.kernel import kernel_available
    from bpfpga.sim import pcap
    pcap.write(tmp_path / "in.pcap", _packets())
    mj = _typed_json(tmp_path)
    r = CliRunner().invoke(main, ["run", str(typed), "--target", "ref", "--pcap",
                                  str(tmp_path / "in.pcap"), "--maps", str(mj), "-j"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert [p["verdict"] for p in out["packets"]] == \
        ["DROP", "TX", "DROP", "DROP", "TX"]
    ok, why = kernel_available()
    if not ok:
        pytest.skip(f"kernel target unavailable: {why}")
    r = CliRunner().invoke(main, ["diff", str(typed), "--targets", "kernel,ref", "--pcap",
                                  str(tmp_path / "in.pcap"), "--maps", str(mj), "-j",
                                  "--no-timing"])
    out = json.loads(r.output)
    assert out["compared"] == 5 and out["divergences"] == [] and \
        out["map_divergences"] == [], out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"services": [{"key": {"port": "http"}, "value": VALUE}]}))
    r = CliRunner().invoke(main, ["run", str(typed), "--target", "ref", "--pcap",
                                  str(tmp_path / "in.pcap"), "--maps", str(bad)])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "entry 0: map 'services' key.port: expected an integer" \
        in lines[0], r.output


def test_map_commands_typed_on_the_simulated_board(typed, tmp_path):
    """`map update|lookup|dump|delete` on `bpfpga sim-board` with JSON keys and values; the
    output's "formatted" gives them back by field; a wrong field is one line, exit 1."""
    from test_simboard import Board
    board = Board(tmp_path)
    try:
        board.cli("prog", "load", str(typed))
        board.cli("map", "update", "services", json.dumps(KEY), json.dumps(VALUE))
        got = json.loads(board.cli("map", "lookup", "services", json.dumps(KEY), "-j").stdout)
        mt = _types(typed, "services")
        assert got["key"] == mt.key(KEY).hex() and got["value"] == mt.value(VALUE).hex()
        assert got["formatted"]["key"]["port"] == 80
        assert got["formatted"]["value"]["name"] == "web"
        assert got["formatted"]["value"]["act"] == "ACT_DROP"
        text = board.cli("map", "dump", "services").stdout
        assert '"name": "web"' in text and "Found 1 element(s)" in text
        rows = json.loads(board.cli("map", "dump", "services", "-j").stdout)
        assert [r["formatted"]["key"]["addr"] for r in rows] == [0x0A000001]
        bad = board.cli("map", "update", "services", '{"port": 99999}', "00" * 24,
                        check=False)
        assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
        assert "key.port: 99999 does not fit __be16" in bad.stderr
        board.cli("map", "delete", "services", json.dumps(KEY))
        assert "Found 0 element(s)" in board.cli("map", "dump", "services").stdout
    finally:
        board.close()
