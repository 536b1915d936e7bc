"""The object loader (compiler/elf.py) on objects clang builds from tests/objects/*.c."""
from __future__ import annotations

import glob
import io
import json
import random
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from bpfpga import obj as O
from bpfpga.compiler import elf
from bpfpga.compiler.elf import load_bytes, load_object
from bpfpga.errors import LoadError
from bpfpga.isa import (BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_MAP_IDX,
                        BPF_PSEUDO_MAP_IDX_VALUE, unpack_slot)

from bpfpga.helpers import HELPER_IDS

import bpfobjs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def objs() -> dict[str, Path]:
    return bpfobjs.build_all()


def slots(p: O.Program):
    """(pc, opcode, dst, src, off, imm, imm of the next slot) for every slot."""
    n = p.n_insns
    for pc in range(n):
        op, dst, src, off, imm = unpack_slot(p.insns, pc)
        hi = unpack_slot(p.insns, pc + 1)[4] if pc + 1 < n else 0
        yield pc, op, dst, src, off, imm, hi


def calls(p: O.Program) -> list[tuple[int, str]]:
    """Every bpf-to-bpf call as (pc, name of the function it lands on)."""
    out = []
    for pc, op, _d, src, _o, imm, _h in slots(p):
        if op == 0x85 and src == BPF_PSEUDO_CALL:
            out.append((pc, p.symbols[pc + 1 + imm]))
    return out


def elf_of(path: Path) -> ELFFile:
    return ELFFile(io.BytesIO(path.read_bytes()))


def func_bytes(path: Path, name: str) -> bytes:
    e = elf_of(path)
    sym = e.get_section_by_name(".symtab").get_symbol_by_name(name)[0]
    data = e.get_section(sym["st_shndx"]).data()
    return data[sym["st_value"]:sym["st_value"] + sym["st_size"]]


def sym_value(path: Path, name: str) -> int:
    e = elf_of(path)
    return e.get_section_by_name(".symtab").get_symbol_by_name(name)[0]["st_value"]


def one_line_error(exc: pytest.ExceptionInfo, path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    return msg


# --- programs and calls ------------------------------------------------------------------------
def test_programs_in_section_order_then_offset(objs):
    o = load_object(str(objs["progs"]))
    assert [(p.name, p.section) for p in o.programs] == [
        ("first", "xdp"), ("second", "xdp"), ("third", "xdp/extra"), ("fourth", "xdp.frags"),
        ("with_callback", "xdp/loop")]
    assert o.program().name == "first"
    assert o.program("third").section == "xdp/extra"
    assert o.license == "GPL"
    assert o.maps == []


def test_subprograms_appended_and_calls_resolved(objs):
    path = objs["progs"]
    o = load_object(str(path))
    first = o.program("first")
    # the entry function first, each subprogram once, transitively
    assert sorted(first.symbols.values()) == ["first", "leaf", "middle"]
    assert first.symbols[0] == "first"
    assert first.entry_len == len(func_bytes(path, "first")) // 8
    assert first.n_insns == sum(len(func_bytes(path, n)) // 8 for n in ("first", "middle", "leaf"))
    assert sorted(calls(first)) == sorted([(1, "middle")] + [
        (pc, "leaf") for pc, _ in calls(first) if pc != 1])
    assert [n for _, n in calls(first)].count("leaf") == 2
    # bodies are the original bytes except for the call immediates
    for off, name in first.symbols.items():
        orig = func_bytes(path, name)
        got = first.insns[off * 8: off * 8 + len(orig)]
        for i in range(0, len(orig), 8):
            if orig[i] == 0x85 and orig[i + 1] >> 4 == BPF_PSEUDO_CALL:
                assert got[i:i + 4] == orig[i:i + 4]
            else:
                assert got[i:i + 8] == orig[i:i + 8]
    assert first.helpers == [HELPER_IDS["get_prandom_u32"]]
    second = o.program("second")
    assert calls(second) == [(1, "global_sub")]                  # global .text function
    assert second.helpers == [HELPER_IDS["ktime_get_ns"]]
    assert o.program("third").symbols == {0: "third"} and o.program("third").helpers == []


def test_call_within_the_same_section(objs):
    # `same_section_helper` is static in xdp.frags: clang resolves the call without a relocation
    p = load_object(str(objs["progs"])).program("fourth")
    assert calls(p) == [(1, "same_section_helper")]
    assert p.helpers == [HELPER_IDS["get_smp_processor_id"]]


def test_callback_address_becomes_pseudo_func(objs):
    p = load_object(str(objs["progs"])).program("with_callback")
    lddw = [(pc, imm) for pc, op, _d, src, _o, imm, _h in slots(p)
            if op == 0x18 and src == BPF_PSEUDO_FUNC]
    assert len(lddw) == 1
    pc, imm = lddw[0]
    assert p.symbols[pc + 1 + imm] == "loop_cb"
    assert p.helpers == [HELPER_IDS["loop"]]


# --- BTF-defined maps ---------------------------------------------------------------------------
def test_btf_maps(objs):
    o = load_object(str(objs["maps"]))
    m = {x.name: x for x in o.maps}
    assert set(m) == {"flows", "counters", "stats", "conns", "prefixes", "ports", "inner_a",
                      "inner_b", "outer", "outer_hash", "jumps"}
    want = {  # type, key, value, max_entries, flags
        "flows": (O.BPF_MAP_TYPE_HASH, 16, 16, 1024, 0),
        "counters": (O.BPF_MAP_TYPE_ARRAY, 4, 8, 16, 0),
        "stats": (O.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 24, 4, 0),
        "conns": (O.BPF_MAP_TYPE_LRU_HASH, 16, 4, 65536, 0),
        "prefixes": (O.BPF_MAP_TYPE_LPM_TRIE, 8, 1, 256, O.BPF_F_NO_PREALLOC),
        "ports": (O.BPF_MAP_TYPE_DEVMAP, 4, 4, 8, 0),
        "inner_a": (O.BPF_MAP_TYPE_ARRAY, 4, 4, 32, 0),
        "outer": (O.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 4, 0),
        "outer_hash": (O.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 8, 0),
        "jumps": (O.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0),
    }
    for name, (t, k, v, n, f) in want.items():
        assert (m[name].type, m[name].key_size, m[name].value_size, m[name].max_entries,
                m[name].map_flags) == (t, k, v, n, f), name
        assert m[name].section == ".maps"
    assert m["flows"].btf_key_type_id and m["flows"].btf_value_type_id
    assert m["stats"].btf_key_type_id == 0          # __uint(key_size, ...) has no type
    assert m["stats"].percpu and not m["flows"].percpu


def test_prog_array_slots_from_values(objs):
    o = load_object(str(objs["maps"]))
    assert o.map("jumps").init_slots == {1: "tail_a", 3: "tail_b"}


def test_map_in_map_inner_template_and_slots(objs):
    o = load_object(str(objs["maps"]))
    outer = o.map("outer")
    assert outer.init_slots == {0: "inner_a", 2: "inner_b"}
    assert (outer.inner.type, outer.inner.key_size, outer.inner.value_size,
            outer.inner.max_entries) == (O.BPF_MAP_TYPE_ARRAY, 4, 4, 32)
    assert outer.inner.name == "outer.inner"
    oh = o.map("outer_hash")
    assert (oh.inner.type, oh.inner.key_size, oh.inner.value_size, oh.inner.max_entries) == (
        O.BPF_MAP_TYPE_HASH, 8, 2, 100)
    assert oh.init_slots == {}


def test_map_references_become_map_idx(objs):
    o = load_object(str(objs["maps"]))
    entry = o.program("entry")
    refs = [o.maps[imm].name for _pc, op, _d, src, _o, imm, hi in slots(entry)
            if op == 0x18 and src == BPF_PSEUDO_MAP_IDX and hi == 0]
    assert refs == ["flows", "counters", "outer", "jumps", "ports"]
    assert entry.maps_used == ["flows", "counters", "outer", "jumps", "ports"]
    assert entry.helpers == [HELPER_IDS[h] for h in
                             ("map_lookup_elem", "tail_call", "redirect_map")]
    # no lddw is left with a plain 0 immediate where a map was meant
    assert all(src in (0, BPF_PSEUDO_MAP_IDX) for _pc, op, _d, src, *_ in slots(entry)
               if op == 0x18)
    assert o.program("tail_a").maps_used == ["counters"]


# --- legacy maps ---------------------------------------------------------------------------------
def test_legacy_bpf_map_def_beside_btf_maps(objs):
    o = load_object(str(objs["legacy"]))
    assert [(m.name, m.section) for m in o.maps] == [
        ("legacy_hash", "maps"), ("legacy_arr", "maps"), ("modern", ".maps")]
    h = o.map("legacy_hash")
    assert (h.type, h.key_size, h.value_size, h.max_entries) == (O.BPF_MAP_TYPE_HASH, 8, 16,
                                                                  128)
    assert o.map("legacy_arr").type == O.BPF_MAP_TYPE_PERCPU_ARRAY
    p = o.programs[0]
    assert p.maps_used == ["legacy_hash", "legacy_arr", "modern"]


def test_iproute2_bpf_elf_map(objs):
    o = load_object(str(objs["elfmap"]))
    outer = o.map("map_outer")
    assert outer.type == O.BPF_MAP_TYPE_ARRAY_OF_MAPS and outer.max_entries == 2
    assert outer.inner is not None and outer.inner.max_entries == 1
    assert outer.init_slots == {1: "map_inner"}
    assert o.map("pinned_lru").pinning == 2
    assert o.map("pinned_lru").type == O.BPF_MAP_TYPE_LRU_HASH


# --- global data ---------------------------------------------------------------------------------
def test_global_data_maps(objs):
    path = objs["data"]
    o = load_object(str(path))
    m = {x.name: x for x in o.maps}
    assert set(m) == {".rodata", ".data", ".bss", ".rodata.config"}
    for x in m.values():
        assert (x.type, x.key_size, x.max_entries) == (O.BPF_MAP_TYPE_ARRAY, 4, 1)
        assert x.value_size == len(x.data)
    ro = m[".rodata"]
    assert ro.map_flags == O.BPF_F_RDONLY_PROG | O.BPF_F_MMAPABLE
    assert m[".data"].map_flags == O.BPF_F_MMAPABLE
    assert struct.unpack_from("<I", ro.data, sym_value(path, "drop_port"))[0] == 53
    assert struct.unpack_from("<Q", ro.data, sym_value(path, "magic"))[0] == 0x1122334455667788
    assert m[".rodata.config"].data == b"\x02"
    assert struct.unpack_from("<I", m[".data"].data, sym_value(path, "seen"))[0] == 7
    assert struct.unpack_from("<I", m[".data"].data, sym_value(path, "static_count"))[0] == 9
    assert m[".bss"].data == bytes(m[".bss"].value_size)


def test_global_data_references_carry_offsets(objs):
    path = objs["data"]
    o = load_object(str(path))
    p = o.programs[0]
    got = {(o.maps[imm].name, hi) for _pc, op, _d, src, _o, imm, hi in slots(p)
           if op == 0x18 and src == BPF_PSEUDO_MAP_IDX_VALUE}
    want = {(".rodata", sym_value(path, "drop_port")), (".rodata", sym_value(path, "magic")),
            (".rodata.config", 0), (".bss", sym_value(path, "misses")),
            (".bss", sym_value(path, "hits")), (".data", sym_value(path, "seen")),
            (".data", sym_value(path, "static_pad")),       # section symbol + imm
            (".data", sym_value(path, "static_count"))}
    assert got == want
    assert sym_value(path, "static_count") != 0
    assert sorted(p.symbols.values()) == ["count", "data_prog"]
    assert o.license == "Dual BSD/GPL"


# --- load-time overrides -------------------------------------------------------------------------
def test_map_size_override(objs):
    o = load_object(str(objs["maps"]), map_sizes={"flows": 7, "jumps": 8})
    assert o.map("flows").max_entries == 7 and o.map("jumps").max_entries == 8
    with pytest.raises(LoadError, match="no map named 'nope'") as e:
        load_object(str(objs["maps"]), map_sizes={"nope": 3})
    one_line_error(e, objs["maps"])
    with pytest.raises(LoadError, match="global data"):
        load_object(str(objs["data"]), map_sizes={".bss": 3})
    with pytest.raises(LoadError, match="entries"):
        load_object(str(objs["maps"]), map_sizes={"flows": 0})
    # a smaller PROG_ARRAY than its initial slots
    with pytest.raises(LoadError, match="map 'jumps': initial slot 3"):
        load_object(str(objs["maps"]), map_sizes={"jumps": 2})


def test_inner_map_supplied_at_load(objs):
    from bpfpga.compiler.select import xdp_view
    path = str(objs["noinner"])
    # the object loads (prog show lists it; maps.json may supply the inner map), with the
    # value size libbpf gives a map of maps; a target refuses it without an inner map
    bare = load_object(path)
    assert bare.map("tables").inner is None and bare.map("tables").value_size == 4
    with pytest.raises(LoadError, match="map 'tables'.*no inner map.*maps.json") as e:
        xdp_view(bare)
    one_line_error(e, path)
    tmpl = O.MapDef("whatever", O.BPF_MAP_TYPE_HASH, 4, 8, 16)
    o = load_object(path, inner_maps={"tables": tmpl})
    inner = o.map("tables").inner
    assert (inner.type, inner.key_size, inner.value_size, inner.max_entries) == (
        O.BPF_MAP_TYPE_HASH, 4, 8, 16)
    assert inner.name == "tables.inner" and tmpl.name == "whatever"
    with pytest.raises(LoadError, match="no map of that name"):
        load_object(path, inner_maps={"other": tmpl})
    with pytest.raises(LoadError, match="not a map of maps"):
        load_object(str(objs["maps"]), inner_maps={"flows": tmpl})


# --- errors --------------------------------------------------------------------------------------
def test_unknown_helper(objs):
    with pytest.raises(LoadError, match=r"section xdp: instruction \d+: unknown helper id 9999"
                       ) as e:
        load_object(str(objs["badhelper"]))
    one_line_error(e, objs["badhelper"])


def test_unknown_map_type(objs):
    with pytest.raises(LoadError, match="map 'odd': unknown map type 99") as e:
        load_object(str(objs["badmaptype"]))
    one_line_error(e, objs["badmaptype"])


def test_unknown_legacy_map_type(objs, tmp_path):
    path = objs["legacy"]
    e = elf_of(path)
    sec = e.get_section_by_name("maps")
    off = sec["sh_offset"] + sym_value(path, "legacy_arr")
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, off, 4242)
    with pytest.raises(LoadError, match="map 'legacy_arr': unknown map type 4242"):
        load_bytes(bytes(data), "legacy")


def test_strings_and_static_only_data(objs):
    o = load_object(str(objs["strings"]))
    m = {x.name: x for x in o.maps}
    assert m[".rodata.str1.1"].data.startswith(b"abcdefgh\0")
    assert b"queue %d" in m[".rodata"].data
    # only static variables there: not mmapable (as libbpf), still read-only
    assert m[".rodata"].map_flags == O.BPF_F_RDONLY_PROG
    assert o.programs[0].helpers == [HELPER_IDS["trace_printk"]]


def test_extern_is_an_error(objs):
    with pytest.raises(LoadError, match=r"section xdp: instruction \d+: reference to unresolved "
                       r"symbol 'LINUX_KERNEL_VERSION'") as e:
        load_object(str(objs["extern"]))
    one_line_error(e, objs["extern"])


def test_no_programs(objs):
    with pytest.raises(LoadError, match="no programs"):
        load_object(str(objs["noprog"]))


def _header_patch(path: Path, at: int, fmt: str, value: int) -> bytes:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, at, value)
    return bytes(data)


def test_not_bpf_machine(objs):
    with pytest.raises(LoadError, match="not BPF") as e:
        load_bytes(_header_patch(objs["progs"], 18, "<H", 62), "x86.o")
    one_line_error(e, "x86.o")


def test_not_elf64_little_endian(objs):
    with pytest.raises(LoadError, match="64-bit"):
        load_bytes(_header_patch(objs["progs"], 4, "B", 1), "o")
    with pytest.raises(LoadError, match="little-endian"):
        load_bytes(_header_patch(objs["progs"], 5, "B", 2), "o")
    with pytest.raises(LoadError, match="not an ELF file"):
        load_bytes(b"#!/bin/sh\necho\n", "o")
    with pytest.raises(LoadError, match="cannot read"):
        load_object("/nonexistent/dir/x.o")


def test_truncated(objs):
    data = objs["progs"].read_bytes()
    for n in (0, 10, 63, len(data) // 3, len(data) - 100):
        with pytest.raises(LoadError) as e:
            load_bytes(data[:n], "cut.o")
        one_line_error(e, "cut.o")


def _shdr_offset(path: Path, name: str) -> tuple[int, int]:
    e = elf_of(path)
    for i, s in enumerate(e.iter_sections()):
        if s.name == name:
            return e["e_shoff"] + i * e["e_shentsize"], i
    raise KeyError(name)


def test_code_size_not_multiple_of_8(objs):
    at, _ = _shdr_offset(objs["progs"], "xdp/extra")
    data = _header_patch(objs["progs"], at + 32, "<Q", 13)          # sh_size
    with pytest.raises(LoadError, match="section xdp/extra: code size 13 is not a multiple of 8"):
        load_bytes(data, "o")


def _reloc_patch(path: Path, relsec: str, index: int, *, offset=None, rtype=None, sym=None):
    e = elf_of(path)
    s = e.get_section_by_name(relsec)
    at = s["sh_offset"] + 16 * index
    data = bytearray(path.read_bytes())
    off, info = struct.unpack_from("<QQ", data, at)
    off = off if offset is None else offset
    rt = info & 0xFFFFFFFF if rtype is None else rtype
    sy = info >> 32 if sym is None else sym
    struct.pack_into("<QQ", data, at, off, (sy << 32) | rt)
    return bytes(data)


def test_bad_relocations(objs):
    path = objs["progs"]
    # .relxdp entry 0: R_BPF_64_32 on the call at instruction 1 of `first`
    with pytest.raises(LoadError, match=r"section xdp: instruction 1: unsupported relocation "
                       r"type R_BPF_64_ABS32 against '.text'") as e:
        load_bytes(_reloc_patch(path, ".relxdp", 0, rtype=3), str(path))
    one_line_error(e, path)
    with pytest.raises(LoadError, match=r"section xdp: instruction 0: R_BPF_64_32 relocation "
                       r"against '.text' is not on a bpf-to-bpf call"):
        load_bytes(_reloc_patch(path, ".relxdp", 0, offset=0), "o")
    with pytest.raises(LoadError, match=r"section xdp: instruction 1: relocation against "
                       r"unknown symbol #5000"):
        load_bytes(_reloc_patch(path, ".relxdp", 0, sym=5000), "o")
    with pytest.raises(LoadError, match="is not on an instruction"):
        load_bytes(_reloc_patch(path, ".relxdp", 0, offset=4), "o")
    mpath = objs["maps"]
    # a map relocation moved off its lddw
    with pytest.raises(LoadError, match=r"section xdp: instruction 0: R_BPF_64_64 relocation "
                       r"against 'counters' is not on an lddw"):
        load_bytes(_reloc_patch(mpath, ".relxdp", 0, offset=0), "o")


def test_relocation_against_non_map(objs):
    # point the `counters` lddw relocation at the LICENSE symbol
    mpath = objs["maps"]
    e = elf_of(mpath)
    lic = [i for i, s in enumerate(e.get_section_by_name(".symtab").iter_symbols())
           if s.name == "LICENSE"][0]
    with pytest.raises(LoadError, match=r"section xdp: instruction 4: reference to 'LICENSE' "
                       r"in section license, which is neither a map nor global data"):
        load_bytes(_reloc_patch(mpath, ".relxdp", 0, sym=lic), "o")


# --- the examples, when they are there -----------------------------------------------------------
EXAMPLES = sorted(glob.glob(str(REPO / "examples" / "*" / "*.o")))


@pytest.mark.parametrize("path", EXAMPLES or [None],
                         ids=[Path(p).stem for p in EXAMPLES] or ["none"])
def test_examples_load(path):
    if path is None:
        pytest.skip("no examples/*/*.o built yet")
    o = load_object(path)
    assert o.programs and all(p.n_insns > 0 for p in o.programs)
    for p in o.programs:
        for _pc, op, _d, src, _o, imm, hi in slots(p):
            if op == 0x18 and src in (BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE):
                assert 0 <= imm < len(o.maps)


# --- the CLI -------------------------------------------------------------------------------------
def test_cli_prog_show(objs):
    from click.testing import CliRunner
    from bpfpga.host.cli import main

    r = CliRunner().invoke(main, ["prog", "show", str(objs["maps"])])
    assert r.exit_code == 0, r.output
    for word in ("tail_a", "entry", "jumps", "prog_array", "array_of_maps", "lpm_trie",
                 "redirect_map"):
        assert word in r.output
    r = CliRunner().invoke(main, ["prog", "show", "-j", "--map-size", "flows=5",
                                  str(objs["maps"])])
    assert r.exit_code == 0, r.output
    j = json.loads(r.output)
    assert [p["name"] for p in j["programs"]] == ["tail_a", "tail_b", "entry"]
    e = j["programs"][2]
    assert e["helpers"] == ["bpf_map_lookup_elem", "bpf_tail_call", "bpf_redirect_map"]
    assert e["insns"] == e["bytes_xlated"] // 8 and e["type"] == "xdp"
    flows = [m for m in j["maps"] if m["name"] == "flows"][0]
    assert (flows["type"], flows["bytes_key"], flows["bytes_value"], flows["max_entries"]) == (
        "hash", 16, 16, 5)
    outer = [m for m in j["maps"] if m["name"] == "outer"][0]
    assert outer["inner"]["type"] == "array" and outer["init_slots"] == {"0": "inner_a",
                                                                        "2": "inner_b"}


def test_cli_errors_are_one_line(objs):
    from click.testing import CliRunner
    from bpfpga.host.cli import main

    for args in (["prog", "show", str(objs["badhelper"])],
                 ["prog", "show", str(objs["maps"]), "--map-size", "flows"],
                 ["prog", "show", str(objs["maps"]), "--map-size", "nope=1"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1
        err = r.stderr if hasattr(r, "stderr") else r.output
        assert err.startswith("error: ") and err.count("\n") == 1, err


# --- fuzz ----------------------------------------------------------------------------------------
def _mutants(data: bytes, rng: random.Random, n: int):
    e = ELFFile(io.BytesIO(data))
    secs = [(s.name, s["sh_offset"], s["sh_size"], e["e_shoff"] + i * e["e_shentsize"])
            for i, s in enumerate(e.iter_sections())]
    interesting = [s for s in secs if s[0] in (".BTF", ".maps", "maps", ".symtab", ".strtab")
                   or s[0].startswith((".rel", "xdp", ".text", ".data", ".rodata"))]
    for _ in range(n):
        d = bytearray(data)
        kind = rng.randrange(6)
        if kind == 0:                       # random bytes anywhere
            for _ in range(rng.randint(1, 8)):
                d[rng.randrange(len(d))] = rng.randrange(256)
        elif kind == 1:                     # truncation
            d = d[:rng.randrange(len(d))]
        elif kind == 2 and interesting:     # bytes inside an interesting section
            _n, off, size, _h = rng.choice(interesting)
            if size:
                for _ in range(rng.randint(1, 6)):
                    d[off + rng.randrange(size)] = rng.randrange(256)
        elif kind == 3:                     # a section header field
            _n, _o, _s, h = rng.choice(secs)
            field = rng.choice([(4, "<I"), (8, "<Q"), (24, "<Q"), (32, "<Q"), (40, "<I"),
                                (44, "<I"), (56, "<Q")])
            val = rng.choice([0, 1, 7, 13, 0xFFFF, 0xFFFFFFFF, len(d), rng.randrange(1 << 16)])
            struct.pack_into(field[1], d, h + field[0], val & (0xFFFFFFFF if field[1] == "<I"
                                                              else (1 << 64) - 1))
        elif kind == 4 and interesting:     # a 32-bit word inside an interesting section
            _n, off, size, _h = rng.choice(interesting)
            if size >= 4:
                at = off + rng.randrange(size - 3) // 4 * 4
                struct.pack_into("<I", d, at, rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF,
                                                          rng.randrange(1 << 32)]))
        else:                               # the ELF header
            at = rng.randrange(64)
            d[at] = rng.randrange(256)
        yield bytes(d)


def test_fuzz_mutated_objects(objs, monkeypatch):
    monkeypatch.setattr(elf, "SAFETY_NET", False)   # any non-LoadError must surface here
    rng = random.Random(20240611)
    names = ["maps", "progs", "data", "legacy", "elfmap", "tags"]
    total = loaded = 0
    for name in names:
        data = objs[name].read_bytes()
        for i, m in enumerate(_mutants(data, rng, 220)):
            total += 1
            try:
                o = load_bytes(m, f"{name}#{i}")
            except LoadError as e:
                msg = str(e)
                assert "\n" not in msg and msg.startswith(f"{name}#{i}: "), msg
            else:
                assert isinstance(o, O.BpfObject) and o.programs
                loaded += 1
    assert total >= 1000
    # most mutations land in debug info the loader ignores; both outcomes must occur
    assert 0 < loaded < total


# --- against libbpf's own reading of the same objects ------------------------------------------
def _libbpf():
    import ctypes
    import ctypes.util

    try:
        lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1")
    except OSError:
        pytest.skip("libbpf.so is not installed (libbpf-dev)")
    vp = ctypes.c_void_p
    lib.bpf_object__open.restype = vp
    lib.bpf_object__open.argtypes = [ctypes.c_char_p]
    lib.bpf_object__close.argtypes = [vp]
    lib.libbpf_get_error.restype = ctypes.c_long
    lib.libbpf_get_error.argtypes = [vp]
    for f in ("bpf_object__next_map", "bpf_object__next_program"):
        getattr(lib, f).restype = vp
        getattr(lib, f).argtypes = [vp, vp]
    for f in ("bpf_map__name", "bpf_program__name", "bpf_program__section_name"):
        getattr(lib, f).restype = ctypes.c_char_p
        getattr(lib, f).argtypes = [vp]
    for f in ("bpf_map__type", "bpf_map__key_size", "bpf_map__value_size",
              "bpf_map__max_entries", "bpf_map__map_flags"):
        getattr(lib, f).restype = ctypes.c_uint
        getattr(lib, f).argtypes = [vp]
    return lib


def _libbpf_view(lib, path):
    """(programs, maps) as libbpf's bpf_object__open sees them, or None if it refuses."""
    o = lib.bpf_object__open(str(path).encode())
    if not o or lib.libbpf_get_error(o):
        return None
    progs, maps = [], []
    p = m = None
    while (p := lib.bpf_object__next_program(o, p)):
        progs.append((lib.bpf_program__name(p).decode(),
                      lib.bpf_program__section_name(p).decode()))
    while (m := lib.bpf_object__next_map(o, m)):
        maps.append((lib.bpf_map__name(m).decode(), lib.bpf_map__type(m),
                     lib.bpf_map__key_size(m), lib.bpf_map__value_size(m),
                     lib.bpf_map__max_entries(m), lib.bpf_map__map_flags(m)))
    lib.bpf_object__close(o)
    return progs, maps


def test_same_programs_and_maps_as_libbpf(objs):
    lib = _libbpf()
    compared = 0
    for path in [objs[n] for n in ("maps", "data", "tags", "strings")] + [
            Path(p) for p in EXAMPLES]:
        view = _libbpf_view(lib, path)
        if view is None:
            continue
        progs, maps = view
        o = load_object(str(path))
        assert [(p.name, p.section) for p in o.programs] == progs, path
        mine = [(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.map_flags)
                for m in o.maps]
        # libbpf names global data "<object prefix>.<section>"; bpfpga by the section
        assert [m[1:] for m in mine] == [m[1:] for m in maps], path
        for (a, *_), (b, *_) in zip(mine, maps):
            assert a == b or (a.startswith(".") and b.endswith(a.split(".", 2)[-1])), (a, b)
        compared += 1
    assert compared >= 3
