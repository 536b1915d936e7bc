"""Map keys and values in the object's BTF types, as `bpftool map dump` shows them with BTF.

:func:`decode` turns the bytes of a BTF type into JSON-able data: a struct as an object of
its field names (the fields of anonymous struct and union members folded into it, as C
reaches them), a union as an object of every member, an array as a list (a char array as
its text up to the NUL when it is printable), an enum as its enumerator's name (the number
when none matches), an integer with its signedness (bool as true/false, wider than 64 bits
as a hex string; a `__be16`/`__be32`/`__be64` as the number in network byte order, so a
port 80 reads 80 -- where bpftool shows the host-order 20480), a bitfield as its own bits, a pointer as a number, a float as a float.

:func:`encode` is the inverse for input (maps.json, `map update|lookup|delete`): the same
shapes, with conveniences: a struct may leave fields out (they are zero), an array may be
shorter than its type (the rest is zero), an integer may be given as a number, a "0x..."
string, a decimal string, an enumerator name, or -- for a 4-byte integer or a 16-byte field
(`__be32`, `__u32[4]`, `__u8[16]`, `struct in6_addr`) -- dotted IPv4 or IPv6 text, stored in
network byte order (the bytes a packet carries, which is what programs compare); any struct,
union or array may be raw hex of exactly its size. At the top of a key or value, hex of exactly
the map's key or value size is always raw bytes (maps.json and the CLI as before); other text
on the command line is read as JSON when it parses, else as text. Global data (.data, .rodata,
.bss) is an object of its variables; those not named keep the object's initial values. Every
error names the field path and the type it expected.
"""
from __future__ import annotations

import ipaddress
import struct

from bpfpga.compiler import btf as B
from bpfpga.errors import LoadError

MAX_DEPTH = 32


class TypeError_(LoadError):
    """A value that does not fit its BTF type (LoadError: one line, names the field)."""


def _path(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


def _fields(btf: B.Btf, t: B.BtfType, depth: int = 0):
    """(name, member, base bit offset) of a struct/union's members, anonymous members'
    fields folded in."""
    for m in t.members:
        if m.name == "" and depth < MAX_DEPTH:
            inner = btf.skip_mods(m.type)
            if inner.kind in (B.BTF_KIND_STRUCT, B.BTF_KIND_UNION):
                for name, mm, off in _fields(btf, inner, depth + 1):
                    yield name, mm, m.bit_offset + off
                continue
        yield m.name, m, 0


def _member_bits(btf: B.Btf, m: B.Member) -> tuple[int, int]:
    """(bit offset, bitfield size or 0) of a member. Without the struct's kind_flag a
    bitfield is an INT member whose int_bits are fewer than its size's (old encoding)."""
    bits = m.bitfield_size
    if not bits:
        mt = btf.skip_mods(m.type)
        if mt.kind == B.BTF_KIND_INT and mt.int_bits and mt.int_bits < 8 * mt.size:
            bits = mt.int_bits
    return m.bit_offset, bits


def _is_char(btf: B.Btf, tid: int) -> bool:
    t = btf.skip_mods(tid)
    # `char` (clang rarely sets BTF_INT_CHAR); __u8 (unsigned char) arrays stay numbers
    return t.kind == B.BTF_KIND_INT and t.size == 1 and (
        bool(t.int_encoding & B.BTF_INT_CHAR) or t.name == "char")


def _big_endian(btf: B.Btf, tid: int) -> bool:
    """A `__be16`/`__be32`/`__be64` (a typedef on the way to the integer): its number is in
    network byte order, as the program's bpf_htons/bpf_ntohl see it."""
    for _ in range(MAX_DEPTH):
        t = btf.type(tid)
        if t.kind == B.BTF_KIND_TYPEDEF and t.name in ("__be16", "__be32", "__be64"):
            return True
        if t.kind not in B._MODIFIERS:
            return False
        tid = t.type
    return False


# ---------------------------------------------------------------------------------- decode
def decode(btf: B.Btf, tid: int, data: bytes, depth: int = 0):
    if depth > MAX_DEPTH:
        return data.hex()
    t = btf.skip_mods(tid)
    k = t.kind
    if k == B.BTF_KIND_INT:
        if _big_endian(btf, tid) and not t.int_encoding & B.BTF_INT_BOOL:
            return int.from_bytes(data[:t.size], "big")
        return _decode_int(t, data)
    if k in (B.BTF_KIND_ENUM, B.BTF_KIND_ENUM64):
        signed = bool(t.kind_flag)
        v = int.from_bytes(data[:t.size], "little", signed=signed)
        for name, val in t.values:
            if val == v or (val & ((1 << (8 * t.size)) - 1)) == (v & ((1 << (8 * t.size)) - 1)):
                return name
        return v
    if k == B.BTF_KIND_PTR:
        return int.from_bytes(data[:8], "little")
    if k == B.BTF_KIND_FLOAT:
        return struct.unpack({4: "<f", 8: "<d"}[t.size], data[:t.size])[0] \
            if t.size in (4, 8) else data[:t.size].hex()
    if k == B.BTF_KIND_ARRAY:
        es = btf.size(t.elem_type)
        if _is_char(btf, t.elem_type):
            raw = data[:t.nelems]
            text = raw.split(b"\0", 1)[0]
            if all(32 <= c < 127 for c in text) and not raw[len(text):].strip(b"\0"):
                return text.decode()
        return [decode(btf, t.elem_type, data[i * es:(i + 1) * es], depth + 1)
                for i in range(t.nelems)]
    if k == B.BTF_KIND_DATASEC:         # global data: its variables by name
        out = {}
        for vi in t.secinfo:
            var = btf.type(vi.type)
            out[var.name] = decode(btf, var.type, data[vi.offset:vi.offset + vi.size],
                                   depth + 1)
        return out
    if k in (B.BTF_KIND_STRUCT, B.BTF_KIND_UNION):
        out = {}
        for name, m, base in _fields(btf, t):
            off, bits = _member_bits(btf, m)
            off += base
            if bits:
                word = int.from_bytes(data, "little")
                v = (word >> off) & ((1 << bits) - 1)
                mt = btf.skip_mods(m.type)
                if mt.kind == B.BTF_KIND_INT and mt.int_encoding & B.BTF_INT_SIGNED and \
                        v >> (bits - 1):
                    v -= 1 << bits
                out[name] = v
            else:
                size = btf.size(m.type)
                out[name] = decode(btf, m.type, data[off // 8:off // 8 + size], depth + 1)
        return out
    return data.hex()


def _decode_int(t: B.BtfType, data: bytes):
    raw = data[:t.size]
    if t.int_encoding & B.BTF_INT_BOOL:
        return raw != bytes(len(raw))
    if t.size > 8:
        return "0x" + raw[::-1].hex()
    return int.from_bytes(raw, "little", signed=bool(t.int_encoding & B.BTF_INT_SIGNED))


# ---------------------------------------------------------------------------------- encode
def encode(btf: B.Btf, tid: int, value, where: str = "", depth: int = 0) -> bytes:
    if depth > MAX_DEPTH:
        raise TypeError_(f"{where or 'value'}: type nesting too deep")
    t = btf.skip_mods(tid)
    size = btf.size(tid)
    tname = btf.type_name(tid)
    k = t.kind
    if isinstance(value, str) and k in (B.BTF_KIND_STRUCT, B.BTF_KIND_UNION,
                                        B.BTF_KIND_ARRAY, B.BTF_KIND_DATASEC):
        raw = _exact_hex(value, size)
        if raw is not None:
            return raw
        ip = _ip(value, size)
        if ip is not None:
            return ip
    if k == B.BTF_KIND_INT or k in (B.BTF_KIND_ENUM, B.BTF_KIND_ENUM64) or \
            k == B.BTF_KIND_PTR:
        b = _encode_scalar(t, size, value, where, tname)
        if _big_endian(btf, tid) and not (isinstance(value, str) and _ip(value.strip(), size)):
            b = b[::-1]
        return b
    if k == B.BTF_KIND_FLOAT and size in (4, 8):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError_(f"{where or 'value'}: expected a number ({tname}), not "
                             f"{_show(value)}")
        return struct.pack({4: "<f", 8: "<d"}[size], value)
    if k == B.BTF_KIND_ARRAY:
        es = btf.size(t.elem_type)
        if isinstance(value, str) and _is_char(btf, t.elem_type):
            b = value.encode()
            if len(b) > t.nelems:
                raise TypeError_(f"{where or 'value'}: text of {len(b)} bytes does not fit "
                                 f"{tname}")
            return b.ljust(size, b"\0")
        if not isinstance(value, list):
            raise TypeError_(f"{where or 'value'}: expected a list ({tname}) or {size} bytes "
                             f"of hex, not {_show(value)}")
        if len(value) > t.nelems:
            raise TypeError_(f"{where or 'value'}: {len(value)} elements, {tname} holds "
                             f"{t.nelems}")
        out = b"".join(encode(btf, t.elem_type, v, f"{where}[{i}]", depth + 1)
                       for i, v in enumerate(value))
        return out.ljust(size, b"\0")
    if k == B.BTF_KIND_DATASEC:
        if not isinstance(value, dict):
            raise TypeError_(f"{where or 'value'}: expected an object of the variables of "
                             f"{t.name}, not {_show(value)}")
        buf = bytearray(size)
        byname = {btf.type(vi.type).name: vi for vi in t.secinfo}
        for name, v in value.items():
            vi = byname.get(name)
            if vi is None:
                raise TypeError_(f"{_path(where, name)}: {t.name} has no variable '{name}' "
                                 f"(variables: {', '.join(byname)})")
            buf[vi.offset:vi.offset + vi.size] = encode(btf, btf.type(vi.type).type, v,
                                                        _path(where, name), depth + 1)
        return bytes(buf)
    if k in (B.BTF_KIND_STRUCT, B.BTF_KIND_UNION):
        if not isinstance(value, dict):
            raise TypeError_(f"{where or 'value'}: expected an object with the fields of "
                             f"{tname} or {size} bytes of hex, not {_show(value)}")
        fields = {name: (m, base) for name, m, base in _fields(btf, t)}
        word = 0
        for name, v in value.items():
            if name not in fields:
                raise TypeError_(f"{_path(where, name)}: {tname} has no field '{name}' "
                                 f"(fields: {', '.join(n for n in fields if n)})")
            m, base = fields[name]
            off, bits = _member_bits(btf, m)
            off += base
            if bits:
                mt = btf.skip_mods(m.type)
                iv = _int_value(mt, v, _path(where, name), btf.type_name(m.type))
                lo = -(1 << (bits - 1)) if mt.kind == B.BTF_KIND_INT and \
                    mt.int_encoding & B.BTF_INT_SIGNED else 0
                hi = (1 << bits) - 1 if lo == 0 else (1 << (bits - 1)) - 1
                if not lo <= iv <= hi:
                    raise TypeError_(f"{_path(where, name)}: {v} does not fit a {bits}-bit "
                                     f"field")
                word &= ~(((1 << bits) - 1) << off)
                word |= (iv & ((1 << bits) - 1)) << off
            else:
                b = encode(btf, m.type, v, _path(where, name), depth + 1)
                mask = ((1 << (8 * len(b))) - 1) << off
                word = (word & ~mask) | (int.from_bytes(b, "little") << off)
        return word.to_bytes(size, "little")
    raise TypeError_(f"{where or 'value'}: values of type {tname} cannot be given in a typed "
                     f"form; give hex")


def _show(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _exact_hex(s: str, size: int) -> bytes | None:
    h = s.replace(" ", "")
    if len(h) != 2 * size or any(c not in "0123456789abcdefABCDEF" for c in h):
        return None
    return bytes.fromhex(h)


def _ip(s: str, size: int) -> bytes | None:
    if size not in (4, 16):
        return None
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        return None
    return a.packed if len(a.packed) == size else None


def _int_value(t: B.BtfType, v, where: str, tname: str) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        if t.kind in (B.BTF_KIND_ENUM, B.BTF_KIND_ENUM64):
            for name, val in t.values:
                if name == v:
                    return val
        s = v.strip()
        try:
            if s.lower().startswith(("0x", "-0x")):
                return int(s, 16)
            if s.isascii() and s.lstrip("-").isdigit() and len(s) <= 40:
                return int(s, 10)
        except ValueError:
            pass
        names = ", ".join(n for n, _ in t.values[:8]) if t.values else ""
        raise TypeError_(f"{where or 'value'}: expected an integer ({tname})"
                         + (f" or one of {names}" if names else "") + f", not {_show(v)}")
    raise TypeError_(f"{where or 'value'}: expected an integer ({tname}), not {_show(v)}")


def _encode_scalar(t: B.BtfType, size: int, v, where: str, tname: str) -> bytes:
    if isinstance(v, str):
        ip = _ip(v.strip(), size)
        if ip is not None:
            return ip
    iv = _int_value(t, v, where, tname)
    signed = (t.kind == B.BTF_KIND_INT and bool(t.int_encoding & B.BTF_INT_SIGNED)) or \
        (t.kind in (B.BTF_KIND_ENUM, B.BTF_KIND_ENUM64) and t.kind_flag)
    lo = -(1 << (8 * size - 1)) if signed else 0
    hi = (1 << (8 * size - (1 if signed else 0))) - 1
    if not lo <= iv <= hi:
        # a negative number for an unsigned type is taken as its two's complement, as C does
        if not signed and -(1 << (8 * size - 1)) <= iv < 0:
            iv &= (1 << (8 * size)) - 1
        else:
            raise TypeError_(f"{where or 'value'}: {iv} does not fit {tname} ({size} bytes"
                             f"{', signed' if signed else ''})")
    return (iv & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


# ---------------------------------------------------------------------------------- a map
class MapTypes:
    """The key and value types of one map, when the object's BTF names them."""

    def __init__(self, btf: B.Btf | None, key_tid: int, value_tid: int, key_size: int,
                 value_size: int, name: str = "map", data_vars=(), data: bytes | None = None):
        self.btf, self.name = btf, name
        ok = btf is not None
        self.key_tid = key_tid if ok and key_tid and _sized(btf, key_tid, key_size) else 0
        self.value_tid = value_tid if ok and value_tid and \
            _sized(btf, value_tid, value_size) else 0
        self.key_size, self.value_size = key_size, value_size
        # global data (.data, .rodata, .bss): the value is its variables, by name, where the
        # loader found them (the object's DATASEC leaves offsets to the loader)
        self.data_vars = list(data_vars) if ok else []
        self.data = bytes(data or b"").ljust(value_size, b"\0")[:value_size]
        if self.data_vars:
            self.value_tid = -1

    @classmethod
    def of(cls, obj, md) -> "MapTypes":
        btf = None
        if getattr(obj, "btf", None):
            try:
                btf = B.Btf(obj.btf)
            except LoadError:
                btf = None
        return cls(btf, md.btf_key_type_id, md.btf_value_type_id, md.key_size,
                   md.value_size, md.name, getattr(md, "data_vars", ()), md.data)

    @property
    def typed(self) -> bool:
        return bool(self.key_tid or self.value_tid)

    def key(self, v, ctx: str = "") -> bytes:
        """Key bytes from hex, or from JSON data / text in the key's BTF type; `ctx` (e.g.
        the maps.json file and entry) starts the error message."""
        return self._in(v, self.key_tid, self.key_size, "key", ctx)

    def value(self, v, ctx: str = "") -> bytes:
        return self._in(v, self.value_tid, self.value_size, "value", ctx)

    def _in(self, v, tid: int, size: int, label: str, ctx: str) -> bytes:
        try:
            return self._bytes(v, tid, size, label)
        except TypeError_ as e:
            raise TypeError_(f"{ctx + ': ' if ctx else ''}map '{self.name}' {e}") from None

    def _bytes(self, v, tid: int, size: int, where: str) -> bytes:
        if isinstance(v, (bytes, bytearray)):
            return bytes(v)
        if isinstance(v, str):
            raw = _exact_hex(v.replace(":", ""), size)
            if raw is not None:
                return raw
            if tid:         # command-line text: JSON if it reads as JSON, else the text
                import json
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
        if not tid:
            raise TypeError_(f"{where}: expected {size} bytes of hex (the object has no BTF "
                             f"type for it), not {_show(v)}")
        b = self._vars_in(v, where) if tid == -1 else encode(self.btf, tid, v, where)
        if len(b) != size:
            raise TypeError_(f"{where}: the BTF type gives {len(b)} bytes, the map has {size}")
        return b

    def show_key(self, b: bytes):
        return decode(self.btf, self.key_tid, bytes(b)) if self.key_tid else None

    def show_value(self, b: bytes):
        if self.value_tid == -1:
            return {n: decode(self.btf, t, bytes(b)[o:o + sz]) for n, o, sz, t in self.data_vars}
        return decode(self.btf, self.value_tid, bytes(b)) if self.value_tid else None

    def _vars_in(self, v, where: str) -> bytes:
        if not isinstance(v, dict):
            raise TypeError_(f"{where}: expected an object of the variables "
                             f"({', '.join(n for n, *_ in self.data_vars)}) or "
                             f"{self.value_size} bytes of hex, not {_show(v)}")
        buf = bytearray(self.data)      # the variables not named keep the object's values
        by = {n: (o, sz, t) for n, o, sz, t in self.data_vars}
        for name, x in v.items():
            if name not in by:
                raise TypeError_(f"{_path(where, name)}: {self.name} has no variable "
                                 f"'{name}' (variables: {', '.join(by)})")
            o, sz, t = by[name]
            buf[o:o + sz] = encode(self.btf, t, x, _path(where, name))
        return bytes(buf)


def _sized(btf: B.Btf, tid: int, size: int) -> bool:
    try:
        return btf.size(tid) == size
    except LoadError:
        return False
