"""maps.json: map contents to load before running.

A JSON object mapping a map name to a list of entries ``{"key": HEX, "value": HEX}`` with
keys and values as raw in-memory bytes in hex. A per-CPU map's "value" is replicated to every
CPU (or give "values": [HEX, ...], one per CPU). For PROG_ARRAY the value may be a program
name (``{"key": "00000000", "prog": "stage1"}``), for map-in-map an inner map name
(``"map": "inner_a"``).

A name the object does not have, given an object instead of a list, defines a map of its
own: the inner map of a map of maps that the object leaves to its loader (an outer map
without ``__array(values, ...)``)::

    "inner_a": {"type": "hash", "key_size": 4, "value_size": 8, "max_entries": 16,
                "map_flags": 0, "entries": [{"key": "01000000", "value": "..."}]}

(``type`` a name as ``prog show`` prints it, or the uapi number). :func:`prepare` adds these
maps to the object, makes the first one an outer map's slots name its inner map template
(what the kernel takes as ``inner_map_fd``), and sets the initial bytes of ``.rodata*`` maps,
which every target freezes after load: those must be set before it.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from bpfpga.errors import LoadError
from bpfpga.obj import BPF_MAP_TYPE_PROG_ARRAY, MAP_IN_MAP_TYPES, MAP_TYPE_NAMES, \
    SUPPORTED_MAP_TYPES, BpfObject, MapDef, is_frozen

USER_SECTION = "maps.json"      # MapDef.section of the maps a maps.json defines
DEF_KEYS = ("type", "key_size", "value_size", "max_entries", "map_flags", "entries")


@dataclass
class MapsFile:
    path: str
    entries: dict      # map name -> [(key, value)], the defined maps' entries too
    defs: dict         # map name -> MapDef, the maps it defines


def _show(v, limit: int = 40) -> str:
    """A value from the file, short enough for a one-line error."""
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} characters)"


def _name(v, what, where) -> str:
    if not isinstance(v, str) or not v:
        raise LoadError(f"{where}: \"{what}\" takes a {what} name, not {_show(v)}")
    return v


def load(path: str | Path) -> dict[str, list[tuple[bytes, object]]]:
    """The entries of a maps.json, by map name."""
    return read(path).entries


def read(path: str | Path) -> MapsFile:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise LoadError(f"{p}: cannot read: {e.strerror}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise LoadError(f"{p}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                        f"{e.start})") from None
    except json.JSONDecodeError as e:
        raise LoadError(f"{p}: invalid JSON: {e}") from None
    except RecursionError:
        raise LoadError(f"{p}: JSON nested too deeply") from None
    return parse(data, p)


def parse(data, source: str | Path = "maps.json") -> MapsFile:
    """A maps.json already read (a dict, as json.load gives it); `source` names it in
    errors."""
    p = Path(source)
    if not isinstance(data, dict):
        raise LoadError(f"{p}: expected an object mapping map names to entry lists")
    out: dict[str, list] = {}
    defs: dict[str, MapDef] = {}
    for name, entries in data.items():
        if isinstance(entries, dict):
            defs[name] = _definition(p, name, entries)
            entries = entries.get("entries", [])
        if not isinstance(entries, list):
            raise LoadError(f"{p}: map '{name}': expected a list of entries")
        out[name] = [_entry(p, name, i, e) for i, e in enumerate(entries)]
    return MapsFile(str(p), out, defs)


def _definition(p: Path, name: str, d: dict) -> MapDef:
    where = f"{p}: map '{name}'"
    bad = [k for k in d if k not in DEF_KEYS]
    if bad:
        raise LoadError(f"{where}: unknown field '{bad[0]}' (fields: {', '.join(DEF_KEYS)})")
    by_name = {v: k for k, v in MAP_TYPE_NAMES.items()}
    t = d.get("type")
    mtype = by_name.get(t) if isinstance(t, str) else t
    if not isinstance(mtype, int) or isinstance(mtype, bool):
        raise LoadError(f"{where}: 'type' must be a map type name (e.g. \"hash\") or number, "
                        f"not {t!r}")
    if mtype not in SUPPORTED_MAP_TYPES or mtype in MAP_IN_MAP_TYPES:
        raise LoadError(f"{where}: a maps.json map cannot be of type "
                        f"{MAP_TYPE_NAMES.get(mtype, mtype)}")
    vals = []
    for k in ("key_size", "value_size", "max_entries", "map_flags"):
        v = d.get(k, 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFFFFFF or (
                v == 0 and k != "map_flags"):
            raise LoadError(f"{where}: '{k}' must be an integer 1..{0xFFFFFFFF}"
                            + (" (or 0)" if k == "map_flags" else "") + f", not {v!r}")
        vals.append(v)
    return MapDef(name, mtype, *vals, section=USER_SECTION)


@dataclass
class Typed:
    """A key or value given in its BTF type (not hex): resolved against the object by
    :func:`resolve` (compiler/btfvalue.py)."""
    data: object


def _kv(v, where):
    """Hex text as bytes (as before); anything else (a JSON object, list, number, other
    text: an address, an enumerator) for the object's BTF types to resolve."""
    if isinstance(v, str):
        h = v.replace(" ", "")
        if len(h) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in h):
            return bytes.fromhex(h)
    if isinstance(v, (dict, list, str, int, float, bool)):
        return Typed(v)
    raise LoadError(f"{where}: expected hex or a value of the map's BTF type, not {_show(v)}")


def _entry(p: Path, name: str, i: int, e) -> tuple[bytes, object]:
    where = f"{p}: map '{name}' entry {i}"
    if not isinstance(e, dict) or "key" not in e:
        raise LoadError(f"{where}: expected {{\"key\": HEX, \"value\": HEX}}")
    key = _kv(e["key"], where)
    if "value" in e:
        val = _kv(e["value"], where)
    elif "values" in e:
        if not isinstance(e["values"], list) or not e["values"]:
            raise LoadError(f"{where}: \"values\" takes a list of values, one per CPU, "
                            f"not {_show(e['values'])}")
        val = [_kv(v, where) for v in e["values"]]
    elif "prog" in e:
        val = ("prog", _name(e["prog"], "prog", where))
    elif "map" in e:
        val = ("map", _name(e["map"], "map", where))
    else:
        raise LoadError(f"{where}: no value")
    return key, val


def resolve(obj: BpfObject, entries: dict, path: str = "maps.json") -> dict:
    """The entries with every typed key and value (:class:`Typed`) turned into bytes by the
    object's BTF types of its map; errors name the entry and the field."""
    from bpfpga.compiler.btfvalue import MapTypes
    maps = {m.name: m for m in obj.maps}
    out = {}
    for name, lst in entries.items():
        md = maps.get(name)
        if md is None or not any(_has_typed(k) or _has_typed(v) for k, v in lst):
            out[name] = lst
            continue
        mt = MapTypes.of(obj, md)
        res = []
        for i, (k, v) in enumerate(lst):
            ctx = f"{path}: entry {i}"
            if isinstance(k, Typed):
                k = mt.key(k.data, ctx)
            if isinstance(v, Typed):
                v = mt.value(v.data, ctx)
            elif isinstance(v, list):
                v = [mt.value(x.data, ctx) if isinstance(x, Typed) else x for x in v]
            res.append((k, v))
        out[name] = res
    return out


def _has_typed(v) -> bool:
    return isinstance(v, Typed) or isinstance(v, list) and any(isinstance(x, Typed) for x in v)


def prepare(obj: BpfObject, mf: MapsFile) -> BpfObject:
    """The object with what a maps.json sets before load: its own maps appended (after the
    object's, so map references keep their indices), inner map templates for maps of maps
    that have none (the first map maps.json defines among the outer map's entries), the
    initial bytes of `.rodata*` maps."""
    names = {m.name for m in obj.maps}
    maps = [copy.copy(m) for m in obj.maps]
    for name, md in mf.defs.items():
        if name in names:
            raise LoadError(f"{mf.path}: map '{name}': the object defines it already; give "
                            f"its entries as a list")
        maps.append(md)
    from bpfpga.compiler.elf import inner_template
    for m in maps:
        if m.type in MAP_IN_MAP_TYPES and m.inner is None:
            first = next((v[1] for _, v in mf.entries.get(m.name, ())
                          if isinstance(v, tuple) and v[0] == "map" and v[1] in mf.defs), None)
            if first is not None:
                m.inner = inner_template(mf.defs[first], m.name)
    out = dataclasses.replace(obj, maps=maps)
    frozen = {m.name: m for m in maps if is_frozen(m) and m.name in mf.entries}
    if frozen:
        ents = resolve(out, {n: mf.entries[n] for n in frozen}, mf.path)
        for n, m in frozen.items():
            m.data = frozen_bytes(mf.path, m, ents[n])
    return out


def frozen_bytes(path: str, md: MapDef, entries: list) -> bytes:
    """The bytes a maps.json gives a `.rodata*` map (one entry, key 0, the whole value)."""
    if len(entries) != 1 or entries[0][0] != bytes(4) or not isinstance(entries[0][1], bytes):
        raise LoadError(f"{path}: map '{md.name}' is read-only data: give one entry, key "
                        f"00000000, with its {md.value_size} bytes")
    val = entries[0][1]
    if len(val) != md.value_size:
        raise LoadError(f"{path}: map '{md.name}': value of {len(val)} bytes, the section has "
                        f"{md.value_size}")
    return val


def check(obj: BpfObject, entries: dict, source: str = "maps.json") -> None:
    """Refuse, before any target is written, entries the object cannot take: a map it does
    not have, a key of the wrong size, a PROG_ARRAY slot that names no program of the object,
    a map-of-maps slot that names no map, a program or map name in a map of plain values.
    The same on every target (the kernel would refuse a wrong fd kind with EINVAL)."""
    names = {m.name: m for m in obj.maps}
    for name, lst in entries.items():
        md = names.get(name)
        if md is None:
            raise LoadError(f"{source} names map '{name}', which the object does not have "
                            f"(maps: {', '.join(names) or 'none'})")
        for i, (key, val) in enumerate(lst):
            where = f"{source}: map '{name}' ({md.type_name}) entry {i}"
            if len(key) != md.key_size:
                raise LoadError(f"{where}: key of {len(key)} bytes, the map's keys are "
                                f"{md.key_size}")
            kind, what = val if isinstance(val, tuple) else ("value", None)
            if md.type == BPF_MAP_TYPE_PROG_ARRAY:
                if kind != "prog":
                    raise LoadError(f"{where}: a program slot takes \"prog\": NAME, not a "
                                    f"{kind}")
                try:
                    obj.program(what)
                except (KeyError, IndexError):
                    raise LoadError(f"{where}: no program '{what}' in the object (programs: "
                                    f"{', '.join(p.name for p in obj.programs)})") from None
            elif md.type in MAP_IN_MAP_TYPES:
                if kind != "map":
                    raise LoadError(f"{where}: a map-of-maps slot takes \"map\": NAME, not a "
                                    f"{kind}")
                inner = names.get(what)
                if inner is None or inner is md:
                    raise LoadError(f"{where}: no inner map '{what}' in the object")
            elif kind != "value":
                raise LoadError(f"{where}: takes \"value\": HEX, not a {kind} name")


def for_load(obj: BpfObject, mf: MapsFile) -> tuple[BpfObject, dict]:
    """What a device load (`prog load --maps`, the cocotb bench) takes from a maps.json: the
    object with its own maps and `.rodata` bytes (:func:`prepare`), and the entries of the
    other maps as bytes, checked against it (:func:`resolve`, :func:`check`)."""
    obj = prepare(obj, mf)
    names = {m.name: m for m in obj.maps}
    entries = resolve(obj, {n: lst for n, lst in mf.entries.items()
                            if n not in names or not is_frozen(names[n])}, mf.path)
    check(obj, entries, mf.path)
    return obj, entries
