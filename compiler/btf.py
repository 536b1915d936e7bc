"""A reader for BTF, the BPF Type Format of an object's ``.BTF`` section.

Layout (uapi/linux/btf.h), all little-endian in a BPF object::

    header   magic 0xeB9F (u16), version 1 (u8), flags (u8), hdr_len (u32),
             type_off, type_len, str_off, str_len (u32, relative to the end of the header)
    types    one ``struct btf_type`` (name_off, info, size|type: 3 x u32) per type, ids from 1
             (0 is void), each followed by kind-specific data sized by ``vlen``
    strings  NUL-terminated names, offset 0 is the empty string

``info`` packs vlen (bits 0..15), kind (bits 24..28) and kind_flag (bit 31). The parser keeps
every kind the kernel defines; what the loader needs from it is the shape of BTF-defined maps
(``.maps``) and type sizes and names. Every defect is a :class:`LoadError` naming the type.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bpfpga.errors import LoadError

BTF_MAGIC = 0xEB9F

BTF_KIND_UNKN = 0
BTF_KIND_INT = 1
BTF_KIND_PTR = 2
BTF_KIND_ARRAY = 3
BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_ENUM = 6
BTF_KIND_FWD = 7
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_FUNC = 12
BTF_KIND_FUNC_PROTO = 13
BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15
BTF_KIND_FLOAT = 16
BTF_KIND_DECL_TAG = 17
BTF_KIND_TYPE_TAG = 18
BTF_KIND_ENUM64 = 19

KIND_NAMES = {
    BTF_KIND_UNKN: "UNKN", BTF_KIND_INT: "INT", BTF_KIND_PTR: "PTR", BTF_KIND_ARRAY: "ARRAY",
    BTF_KIND_STRUCT: "STRUCT", BTF_KIND_UNION: "UNION", BTF_KIND_ENUM: "ENUM",
    BTF_KIND_FWD: "FWD", BTF_KIND_TYPEDEF: "TYPEDEF", BTF_KIND_VOLATILE: "VOLATILE",
    BTF_KIND_CONST: "CONST", BTF_KIND_RESTRICT: "RESTRICT", BTF_KIND_FUNC: "FUNC",
    BTF_KIND_FUNC_PROTO: "FUNC_PROTO", BTF_KIND_VAR: "VAR", BTF_KIND_DATASEC: "DATASEC",
    BTF_KIND_FLOAT: "FLOAT", BTF_KIND_DECL_TAG: "DECL_TAG", BTF_KIND_TYPE_TAG: "TYPE_TAG",
    BTF_KIND_ENUM64: "ENUM64",
}

# INT encoding bits
BTF_INT_SIGNED = 1 << 0
BTF_INT_CHAR = 1 << 1
BTF_INT_BOOL = 1 << 2

# VAR / FUNC linkage
BTF_VAR_STATIC = 0
BTF_VAR_GLOBAL_ALLOCATED = 1
BTF_VAR_GLOBAL_EXTERN = 2
BTF_FUNC_STATIC = 0
BTF_FUNC_GLOBAL = 1
BTF_FUNC_EXTERN = 2

# kinds whose third word is a size; the others carry a type id there
_SIZED = {BTF_KIND_INT, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM, BTF_KIND_ENUM64,
          BTF_KIND_DATASEC, BTF_KIND_FLOAT}
# kinds that only qualify another type: sizes and shapes look through them
_MODIFIERS = {BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT,
              BTF_KIND_TYPE_TAG}
MAX_RESOLVE_DEPTH = 32      # as libbpf: deeper chains of modifiers are treated as a loop
_HDR = struct.Struct("<HBBIIIII")


@dataclass
class Member:
    """A STRUCT/UNION member. bit_offset from the start; bitfield_size 0 when not a bitfield."""
    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def offset(self) -> int:
        return self.bit_offset // 8


@dataclass
class VarSecinfo:
    """One variable of a DATASEC: its VAR (or FUNC) type id, offset and size in the section."""
    type: int
    offset: int
    size: int


@dataclass
class BtfType:
    id: int
    kind: int
    name: str
    info: int
    size_or_type: int
    # kind-specific
    int_encoding: int = 0             # INT
    int_offset: int = 0
    int_bits: int = 0
    elem_type: int = 0                # ARRAY
    index_type: int = 0
    nelems: int = 0
    members: list[Member] = field(default_factory=list)       # STRUCT / UNION
    values: list[tuple[str, int]] = field(default_factory=list)  # ENUM / ENUM64
    params: list[tuple[str, int]] = field(default_factory=list)  # FUNC_PROTO
    linkage: int = 0                  # VAR (its own word), FUNC (in vlen)
    secinfo: list[VarSecinfo] = field(default_factory=list)    # DATASEC
    component_idx: int = -1           # DECL_TAG

    @property
    def vlen(self) -> int:
        return self.info & 0xFFFF

    @property
    def kind_flag(self) -> bool:
        return bool(self.info >> 31)

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))

    @property
    def size(self) -> int:
        """The size word of sized kinds (INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT)."""
        return self.size_or_type

    @property
    def type(self) -> int:
        """The referenced type id of PTR, TYPEDEF, modifiers, FUNC, FUNC_PROTO (return), VAR,
        DECL_TAG and TYPE_TAG."""
        return self.size_or_type

    def member(self, name: str) -> Member | None:
        for m in self.members:
            if m.name == name:
                return m
        return None


class Btf:
    """Parsed BTF: ``types[i]`` is type id i (``types[0]`` is void)."""

    def __init__(self, data: bytes):
        self.raw = bytes(data)
        self.types: list[BtfType] = [BtfType(0, BTF_KIND_UNKN, "void", 0, 0)]
        self._parse()
        self._by_name: dict[str, list[int]] | None = None

    # --- parsing ---------------------------------------------------------------------------
    def _parse(self) -> None:
        d = self.raw
        if len(d) < _HDR.size:
            raise LoadError(f"BTF: header truncated ({len(d)} bytes)")
        magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            _HDR.unpack_from(d, 0)
        if magic != BTF_MAGIC:
            raise LoadError(f"BTF: bad magic 0x{magic:04x} (big-endian or not BTF)")
        if version != 1:
            raise LoadError(f"BTF: unsupported version {version}")
        if hdr_len < _HDR.size or hdr_len > len(d):
            raise LoadError(f"BTF: bad header length {hdr_len}")
        for what, off, ln in (("type", type_off, type_len), ("string", str_off, str_len)):
            if hdr_len + off + ln > len(d):
                raise LoadError(f"BTF: {what} section [{off}, {off + ln}) beyond the "
                                f"{len(d) - hdr_len} bytes of data")
        if type_off % 4:
            raise LoadError(f"BTF: type section offset {type_off} is not 4-byte aligned")
        self.strings = d[hdr_len + str_off: hdr_len + str_off + str_len]
        if str_len and self.strings[-1] != 0:
            raise LoadError("BTF: string section is not NUL-terminated")
        types = d[hdr_len + type_off: hdr_len + type_off + type_len]
        pos = 0
        n = len(types)

        def words(count: int, fmt: str = "I") -> tuple:
            nonlocal pos
            sz = 4 * count
            if pos + sz > n:
                raise LoadError(f"BTF: type {len(self.types)} truncated at byte {pos}")
            out = struct.unpack_from("<" + fmt * count, types, pos)
            pos += sz
            return out

        while pos < n:
            tid = len(self.types)
            name_off, info, st = words(3)
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            t = BtfType(tid, kind, self.string(name_off, tid), info, st)
            if kind == BTF_KIND_INT:
                (v,) = words(1)
                t.int_encoding = (v >> 24) & 0x0F
                t.int_offset = (v >> 16) & 0xFF
                t.int_bits = v & 0xFF
            elif kind == BTF_KIND_ARRAY:
                t.elem_type, t.index_type, t.nelems = words(3)
            elif kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
                for _ in range(vlen):
                    mname, mtype, moff = words(3)
                    if t.kind_flag:
                        m = Member(self.string(mname, tid), mtype, moff & 0xFFFFFF, moff >> 24)
                    else:
                        m = Member(self.string(mname, tid), mtype, moff)
                    t.members.append(m)
            elif kind in (BTF_KIND_ENUM, BTF_KIND_ENUM64):
                # kind_flag: 1 when the values are signed, 0 when unsigned
                for _ in range(vlen):
                    if kind == BTF_KIND_ENUM:
                        ename, v = words(2)
                        bits = 32
                    else:
                        ename, lo, hi = words(3)
                        v, bits = lo | (hi << 32), 64
                    if t.kind_flag and v >> (bits - 1):
                        v -= 1 << bits
                    t.values.append((self.string(ename, tid), v))
            elif kind == BTF_KIND_FUNC_PROTO:
                for _ in range(vlen):
                    pname, ptype = words(2)
                    t.params.append((self.string(pname, tid), ptype))
            elif kind == BTF_KIND_VAR:
                (t.linkage,) = words(1)
            elif kind == BTF_KIND_DATASEC:
                for _ in range(vlen):
                    t.secinfo.append(VarSecinfo(*words(3)))
            elif kind == BTF_KIND_DECL_TAG:
                (t.component_idx,) = words(1, "i")
            elif kind == BTF_KIND_FUNC:
                t.linkage = vlen
            elif kind in (BTF_KIND_PTR, BTF_KIND_FWD, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE,
                          BTF_KIND_CONST, BTF_KIND_RESTRICT, BTF_KIND_FLOAT,
                          BTF_KIND_TYPE_TAG):
                pass
            else:
                raise LoadError(f"BTF: type {tid} has unknown kind {kind}")
            self.types.append(t)

    def string(self, off: int, tid: int | None = None) -> str:
        if off == 0:
            return ""
        if off >= len(self.strings):
            where = f"type {tid}: " if tid is not None else ""
            raise LoadError(f"BTF: {where}name offset {off} beyond the string section")
        end = self.strings.find(b"\0", off)
        return self.strings[off:end].decode("utf-8", "replace")

    # --- queries ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.types)

    def type(self, tid: int) -> BtfType:
        if not 0 <= tid < len(self.types):
            raise LoadError(f"BTF: type id {tid} out of range (1..{len(self.types) - 1})")
        return self.types[tid]

    def find(self, name: str, kind: int | None = None) -> BtfType | None:
        """The first type with this name (and kind, when given)."""
        if self._by_name is None:
            self._by_name = {}
            for t in self.types[1:]:
                if t.name:
                    self._by_name.setdefault(t.name, []).append(t.id)
        for tid in self._by_name.get(name, ()):
            t = self.types[tid]
            if kind is None or t.kind == kind:
                return t
        return None

    def datasec(self, name: str) -> BtfType | None:
        return self.find(name, BTF_KIND_DATASEC)

    def skip_mods(self, tid: int) -> BtfType:
        """The type behind typedef/const/volatile/restrict/type_tag."""
        t = self.type(tid)
        for _ in range(MAX_RESOLVE_DEPTH):
            if t.kind not in _MODIFIERS:
                return t
            t = self.type(t.type)
        raise LoadError(f"BTF: type {tid}: modifier chain too deep (a loop?)")

    def size(self, tid: int) -> int:
        """Size in bytes of a type, through typedefs, modifiers, arrays and VARs."""
        return self._size(tid, 0)

    def _size(self, tid: int, depth: int) -> int:
        if depth > MAX_RESOLVE_DEPTH:
            raise LoadError(f"BTF: type {tid}: type chain too deep (a loop?)")
        t = self.type(tid)
        k = t.kind
        if k in _SIZED:
            return t.size
        if k == BTF_KIND_PTR:
            return 8
        if k in _MODIFIERS or k == BTF_KIND_VAR:
            return self._size(t.type, depth + 1)
        if k == BTF_KIND_ARRAY:
            return t.nelems * self._size(t.elem_type, depth + 1)
        what = "void" if tid == 0 else f"{t.kind_name} '{t.name}'" if t.name else t.kind_name
        raise LoadError(f"BTF: type {tid} ({what}) has no size")

    def type_name(self, tid: int) -> str:
        """A C-like spelling of a type: 'struct flow', 'u32 *', '__u8[6]', 'const int'."""
        return self._name(tid, 0)

    def _name(self, tid: int, depth: int) -> str:
        if depth > MAX_RESOLVE_DEPTH:
            return "..."
        if tid == 0:
            return "void"
        if not 0 < tid < len(self.types):
            return f"<bad type {tid}>"
        t = self.types[tid]
        k = t.kind
        if k in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            kw = "struct" if k == BTF_KIND_STRUCT else "union"
            return f"{kw} {t.name}" if t.name else f"{kw} {{...}}"
        if k in (BTF_KIND_ENUM, BTF_KIND_ENUM64):
            return f"enum {t.name}" if t.name else "enum {...}"
        if k == BTF_KIND_FWD:
            return ("union " if t.kind_flag else "struct ") + t.name
        if k == BTF_KIND_PTR:
            return self._name(t.type, depth + 1) + " *"
        if k == BTF_KIND_ARRAY:
            return f"{self._name(t.elem_type, depth + 1)}[{t.nelems}]"
        if k in (BTF_KIND_CONST, BTF_KIND_VOLATILE, BTF_KIND_RESTRICT):
            return f"{KIND_NAMES[k].lower()} {self._name(t.type, depth + 1)}"
        if k == BTF_KIND_TYPE_TAG:
            return f"{self._name(t.type, depth + 1)} __tag({t.name})"
        if k == BTF_KIND_FUNC_PROTO:
            args = ", ".join(self._name(p, depth + 1) for _, p in t.params) or "void"
            return f"{self._name(t.type, depth + 1)} (*)({args})"
        return t.name or KIND_NAMES.get(k, "?")

    def ptr_array_len(self, tid: int) -> int | None:
        """The N of ``__uint(name, N)``, encoded as ``int (*name)[N]``; None if not that shape."""
        t = self.skip_mods(tid)
        if t.kind != BTF_KIND_PTR:
            return None
        a = self.skip_mods(t.type)
        if a.kind != BTF_KIND_ARRAY:
            return None
        return a.nelems
