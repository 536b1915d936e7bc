"""The BTF parser (compiler/btf.py): on clang's output and on hand-encoded BTF of every kind."""
from __future__ import annotations

import io
import struct

import pytest
from elftools.elf.elffile import ELFFile

from bpfpga.compiler import btf as B
from bpfpga.compiler.btf import Btf
from bpfpga.errors import LoadError

import bpfobjs


@pytest.fixture(scope="session")
def objs():
    return bpfobjs.build_all()


def btf_of(path) -> Btf:
    e = ELFFile(io.BytesIO(path.read_bytes()))
    return Btf(e.get_section_by_name(".BTF").data())


# --- a small BTF encoder ---------------------------------------------------------------------------
class Enc:
    def __init__(self):
        self.strs = bytearray(b"\0")
        self.types = bytearray()
        self.n = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strs)
        self.strs += name.encode() + b"\0"
        return off

    def t(self, kind: int, name: str = "", vlen: int = 0, st: int = 0, kflag: int = 0,
          extra: bytes = b"") -> int:
        self.types += struct.pack("<III", self.s(name), (kflag << 31) | (kind << 24) | vlen, st)
        self.types += extra
        self.n += 1
        return self.n

    def blob(self) -> bytes:
        hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types),
                          len(self.strs))
        return hdr + bytes(self.types) + bytes(self.strs)


def every_kind() -> tuple[Btf, dict[str, int]]:
    e = Enc()
    ids = {}
    ids["int"] = e.t(B.BTF_KIND_INT, "int", st=4, extra=struct.pack("<I", (1 << 24) | 32))
    ids["u8"] = e.t(B.BTF_KIND_INT, "u8", st=1, extra=struct.pack("<I", 8))
    ids["ptr"] = e.t(B.BTF_KIND_PTR, st=ids["int"])
    ids["arr"] = e.t(B.BTF_KIND_ARRAY, extra=struct.pack("<III", ids["u8"], ids["int"], 6))
    mem = (struct.pack("<III", e.s("a"), ids["int"], 0)
           + struct.pack("<III", e.s("bits"), ids["int"], (3 << 24) | 32)
           + struct.pack("<III", e.s("mac"), ids["arr"], 40))
    ids["struct"] = e.t(B.BTF_KIND_STRUCT, "pkt", vlen=3, st=12, kflag=1, extra=mem)
    ids["union"] = e.t(B.BTF_KIND_UNION, "u", vlen=2, st=8,
                       extra=struct.pack("<III", e.s("x"), ids["int"], 0)
                       + struct.pack("<III", e.s("p"), ids["ptr"], 0))
    ids["enum"] = e.t(B.BTF_KIND_ENUM, "color", vlen=2, st=4, kflag=1,
                      extra=struct.pack("<Ii", e.s("RED"), -1) + struct.pack("<Ii", e.s("BLUE"),
                                                                             7))
    ids["fwd"] = e.t(B.BTF_KIND_FWD, "later", kflag=1)
    ids["typedef"] = e.t(B.BTF_KIND_TYPEDEF, "pkt_t", st=ids["struct"])
    ids["volatile"] = e.t(B.BTF_KIND_VOLATILE, st=ids["typedef"])
    ids["const"] = e.t(B.BTF_KIND_CONST, st=ids["volatile"])
    ids["restrict"] = e.t(B.BTF_KIND_RESTRICT, st=ids["ptr"])
    ids["proto"] = e.t(B.BTF_KIND_FUNC_PROTO, vlen=2, st=ids["int"],
                       extra=struct.pack("<II", e.s("ctx"), ids["ptr"])
                       + struct.pack("<II", e.s("n"), ids["u8"]))
    ids["func"] = e.t(B.BTF_KIND_FUNC, "main", vlen=B.BTF_FUNC_GLOBAL, st=ids["proto"])
    ids["var"] = e.t(B.BTF_KIND_VAR, "cfg", st=ids["const"], extra=struct.pack("<I", 1))
    ids["datasec"] = e.t(B.BTF_KIND_DATASEC, ".rodata", vlen=1, st=12,
                         extra=struct.pack("<III", ids["var"], 0, 12))
    ids["float"] = e.t(B.BTF_KIND_FLOAT, "double", st=8)
    ids["decl_tag"] = e.t(B.BTF_KIND_DECL_TAG, "hot", st=ids["struct"],
                          extra=struct.pack("<i", 1))
    ids["type_tag"] = e.t(B.BTF_KIND_TYPE_TAG, "user", st=ids["int"])
    ids["enum64"] = e.t(B.BTF_KIND_ENUM64, "big", vlen=2, st=8,
                        extra=struct.pack("<III", e.s("HUGE"), 0, 0x80000000)
                        + struct.pack("<III", e.s("ONE"), 1, 0))
    ids["enum64s"] = e.t(B.BTF_KIND_ENUM64, "sbig", vlen=1, st=8, kflag=1,
                         extra=struct.pack("<III", e.s("NEG"), 0xFFFFFFFE, 0xFFFFFFFF))
    ids["ptrarr"] = e.t(B.BTF_KIND_PTR, st=e.n + 2)     # __uint(x, 17): int (*x)[17]
    ids["arr17"] = e.t(B.BTF_KIND_ARRAY, extra=struct.pack("<III", ids["int"], ids["int"], 17))
    return Btf(e.blob()), ids


def test_every_kind_parses():
    b, ids = every_kind()
    assert len(b) == ids["arr17"] + 1
    kinds = {b.type(i).kind for i in ids.values()}
    assert kinds == set(range(1, 20))
    t = b.type(ids["int"])
    assert (t.int_encoding, t.int_bits, t.size) == (B.BTF_INT_SIGNED, 32, 4)
    a = b.type(ids["arr"])
    assert (a.elem_type, a.index_type, a.nelems) == (ids["u8"], ids["int"], 6)
    s = b.type(ids["struct"])
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in s.members] == [
        ("a", 0, 0), ("bits", 32, 3), ("mac", 40, 0)]
    assert s.member("mac").offset == 5 and s.member("nope") is None
    assert b.type(ids["enum"]).values == [("RED", -1), ("BLUE", 7)]
    assert b.type(ids["enum64"]).values == [("HUGE", 0x8000000000000000), ("ONE", 1)]
    assert b.type(ids["enum64s"]).values == [("NEG", -2)]
    assert b.type(ids["proto"]).params == [("ctx", ids["ptr"]), ("n", ids["u8"])]
    assert b.type(ids["func"]).linkage == B.BTF_FUNC_GLOBAL
    assert b.type(ids["var"]).linkage == 1
    assert b.type(ids["datasec"]).secinfo == [B.VarSecinfo(ids["var"], 0, 12)]
    assert b.type(ids["decl_tag"]).component_idx == 1
    assert b.type(ids["fwd"]).kind_flag
    assert b.datasec(".rodata").id == ids["datasec"]
    assert b.find("pkt_t").id == ids["typedef"]
    assert b.find("pkt_t", B.BTF_KIND_STRUCT) is None


def test_sizes_through_modifiers():
    b, ids = every_kind()
    assert b.size(ids["struct"]) == 12
    assert b.size(ids["const"]) == 12                   # const volatile pkt_t
    assert b.size(ids["var"]) == 12
    assert b.size(ids["arr"]) == 6
    assert b.size(ids["ptr"]) == 8 and b.size(ids["restrict"]) == 8
    assert b.size(ids["type_tag"]) == 4
    assert b.size(ids["enum64"]) == 8 and b.size(ids["float"]) == 8
    assert b.skip_mods(ids["const"]).id == ids["struct"]
    assert b.ptr_array_len(ids["ptrarr"]) == 17
    assert b.ptr_array_len(ids["ptr"]) is None
    for k in ("fwd", "func", "proto", "decl_tag"):
        with pytest.raises(LoadError, match="has no size"):
            b.size(ids[k])
    with pytest.raises(LoadError, match="void"):
        b.size(0)


def test_type_names():
    b, ids = every_kind()
    assert b.type_name(ids["const"]) == "const volatile pkt_t"
    assert b.type_name(ids["ptr"]) == "int *"
    assert b.type_name(ids["arr"]) == "u8[6]"
    assert b.type_name(ids["struct"]) == "struct pkt"
    assert b.type_name(ids["union"]) == "union u"
    assert b.type_name(ids["fwd"]) == "union later"
    assert b.type_name(ids["enum"]) == "enum color"
    assert b.type_name(ids["proto"]) == "int (*)(int *, u8)"
    assert b.type_name(0) == "void"
    assert b.type_name(9999) == "<bad type 9999>"


def test_clang_map_definitions(objs):
    b = btf_of(objs["maps"])
    ds = b.datasec(".maps")
    names = {b.type(v.type).name for v in ds.secinfo}
    assert {"flows", "counters", "outer", "jumps", "inner_a", "inner_b"} <= names
    flow = b.find("flow", B.BTF_KIND_STRUCT)
    assert b.size(flow.id) == 16
    assert [m.name for m in flow.members] == ["saddr", "daddr", "sport", "dport", "proto"]
    assert [m.offset for m in flow.members] == [0, 4, 8, 10, 12]
    backend_t = b.find("backend_t")
    assert b.skip_mods(backend_t.id).name == "backend" and b.size(backend_t.id) == 16
    flows = b.skip_mods(b.find("flows", B.BTF_KIND_VAR).type)
    assert b.ptr_array_len(flows.member("max_entries").type) == 1024
    assert b.ptr_array_len(flows.member("type").type) == 1            # BPF_MAP_TYPE_HASH
    key = b.skip_mods(flows.member("key").type)
    assert b.type_name(key.type) == "struct flow"
    conns = b.skip_mods(b.find("conns", B.BTF_KIND_VAR).type)
    val = b.skip_mods(conns.member("value").type)
    assert b.type_name(val.type) == "const volatile __u32" and b.size(val.type) == 4


def test_clang_tags_bitfields_and_float(objs):
    b = btf_of(objs["tags"])
    shape = b.find("shape", B.BTF_KIND_STRUCT)
    assert shape.kind_flag
    kind, big = shape.member("kind"), shape.member("big")
    assert (kind.bit_offset, kind.bitfield_size, big.bit_offset, big.bitfield_size) == (
        0, 3, 3, 1)
    assert b.find("counter", B.BTF_KIND_DECL_TAG).type == shape.id
    assert b.find("entry", B.BTF_KIND_DECL_TAG).component_idx == -1
    assert b.find("user", B.BTF_KIND_TYPE_TAG) is not None
    assert b.find("float", B.BTF_KIND_FLOAT).size == 4
    assert b.find("opaque", B.BTF_KIND_FWD) is not None
    color = b.find("color", B.BTF_KIND_ENUM)
    # kind_flag marks signed values (uapi since Linux 6.0); clang 14 leaves it 0
    red = -1 if color.kind_flag else 0xFFFFFFFF
    assert dict(color.values) == {"RED": red, "GREEN": 2, "BLUE": 0x7FFFFFFF}
    assert b.size(shape.id) == 64


def _hdr(**kw) -> bytes:
    f = dict(magic=0xEB9F, version=1, flags=0, hdr_len=24, type_off=0, type_len=0, str_off=0,
             str_len=1)
    f.update(kw)
    return struct.pack("<HBBIIIII", *f.values())


def test_malformed_btf():
    with pytest.raises(LoadError, match="header truncated"):
        Btf(b"\x9f\xeb\x01")
    with pytest.raises(LoadError, match="bad magic 0x9feb"):
        Btf(_hdr(magic=0x9FEB) + b"\0")
    with pytest.raises(LoadError, match="version 2"):
        Btf(_hdr(version=2) + b"\0")
    with pytest.raises(LoadError, match="string section"):
        Btf(_hdr(str_len=50) + b"\0")
    with pytest.raises(LoadError, match="NUL-terminated"):
        Btf(_hdr(str_len=1) + b"x")
    # a type cut short
    e = Enc()
    e.t(B.BTF_KIND_INT, "int", st=4, extra=struct.pack("<I", 32))
    blob = bytearray(e.blob())
    struct.pack_into("<I", blob, 12, len(e.types) - 2)           # type_len
    with pytest.raises(LoadError, match="type 1 truncated"):
        Btf(bytes(blob))
    # a name beyond the strings
    e = Enc()
    e.types += struct.pack("<III", 999, B.BTF_KIND_PTR << 24, 0)
    with pytest.raises(LoadError, match="type 1: name offset 999"):
        Btf(e.blob())
    # an unknown kind
    e = Enc()
    e.t(25)
    with pytest.raises(LoadError, match="type 1 has unknown kind 25"):
        Btf(e.blob())


def test_loops_and_bad_ids_are_errors():
    e = Enc()
    a = e.t(B.BTF_KIND_TYPEDEF, "a", st=2)
    e.t(B.BTF_KIND_CONST, st=a)
    e.t(B.BTF_KIND_PTR, st=77)
    b = Btf(e.blob())
    with pytest.raises(LoadError, match="too deep"):
        b.size(a)
    with pytest.raises(LoadError, match="too deep"):
        b.skip_mods(a)
    with pytest.raises(LoadError, match="type id 77 out of range"):
        b.type(77)
    assert b.type_name(a)    # names never raise
