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


def _hex(s, where):
    try:
        return bytes.fromhex(str(s).replace(" ", ""))
    except ValueError:
        raise LoadError(f"{where}: '{s}' is not hex") from None


def load(path: str | Path) -> dict[str, list[tuple[bytes, object]]]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as e:
        raise LoadError(f"{p}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise LoadError(f"{p}: invalid JSON: {e}") from None
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
                val = [_hex(v, where) for v in e["values"]]
            elif "prog" in e:
                val = ("prog", str(e["prog"]))
            elif "map" in e:
                val = ("map", str(e["map"]))
            else:
                raise LoadError(f"{where}: no value")
            lst.append((key, val))
        out[name] = lst
    return out
