"""maps.json: map contents to load before running.

A JSON object mapping a map name to a list of entries ``{"key": HEX, "value": HEX}`` with
keys and values as raw in-memory bytes in hex. A per-CPU map's "value" is replicated to every
CPU (or give "values": [HEX, ...], one per CPU). For PROG_ARRAY the value may be a program
name (``{"key": "00000000", "prog": "stage1"}``), for map-in-map an inner map name
(``"map": "inner_a"``).
"""
from __future__ import annotations

import json
from pathlib import Path

from bpfpga.errors import LoadError
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS,
                        BPF_MAP_TYPE_PROG_ARRAY, BpfObject)

MAP_IN_MAP = (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS)


def _show(v, limit: int = 40) -> str:
    """A value from the file, short enough for a one-line error."""
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} characters)"


def _hex(s, where):
    if not isinstance(s, str):
        raise LoadError(f"{where}: {_show(s)} is not a hex string")
    try:
        return bytes.fromhex(s.replace(" ", ""))
    except ValueError:
        raise LoadError(f"{where}: '{_show(s)}' is not hex") from None


def _name(v, what, where) -> str:
    if not isinstance(v, str) or not v:
        raise LoadError(f"{where}: \"{what}\" takes a {what} name, not {_show(v)}")
    return v


def load(path: str | Path) -> dict[str, list[tuple[bytes, object]]]:
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
    if not isinstance(data, dict):
        raise LoadError(f"{p}: expected an object mapping map names to entry lists")
    out: dict[str, list] = {}
    for name, entries in data.items():
        if not isinstance(entries, list):
            raise LoadError(f"{p}: map '{name}': expected a list of entries")
        lst = []
        for i, e in enumerate(entries):
            where = f"{p}: map '{name}' entry {i}"
            if not isinstance(e, dict) or "key" not in e:
                raise LoadError(f"{where}: expected {{\"key\": HEX, \"value\": HEX}}")
            key = _hex(e["key"], where)
            if "value" in e:
                val = _hex(e["value"], where)
            elif "values" in e:
                if not isinstance(e["values"], list) or not e["values"]:
                    raise LoadError(f"{where}: \"values\" takes a list of HEX, one per CPU, "
                                    f"not {_show(e['values'])}")
                val = [_hex(v, where) for v in e["values"]]
            elif "prog" in e:
                val = ("prog", _name(e["prog"], "prog", where))
            elif "map" in e:
                val = ("map", _name(e["map"], "map", where))
            else:
                raise LoadError(f"{where}: no value")
            lst.append((key, val))
        out[name] = lst
    return out


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
            elif md.type in MAP_IN_MAP:
                if kind != "map":
                    raise LoadError(f"{where}: a map-of-maps slot takes \"map\": NAME, not a "
                                    f"{kind}")
                inner = names.get(what)
                if inner is None or inner is md:
                    raise LoadError(f"{where}: no inner map '{what}' in the object")
            elif kind != "value":
                raise LoadError(f"{where}: takes \"value\": HEX, not a {kind} name")
