"""`bpfpga prog show OBJ`: what an object holds, as bpftool would show it.

Programs (name, section, instruction slots, helpers by name, maps used) and maps (name, type,
key and value size, max_entries, flags, inner map, initial slots), as tables or, with ``-j``,
as JSON whose keys follow bpftool's ``prog show -j`` / ``map show -j``
(``bytes_key``, ``bytes_value``, ``max_entries``, ``flags``, ``bytes_xlated``...).
"""
from __future__ import annotations

import json
import re

import click

from bpfpga.errors import LoadError, escape
from bpfpga.helpers import HELPER_NAMES, helper_name
from bpfpga.obj import BpfObject, MapDef, Program, xdp_attach


def parse_map_sizes(values: tuple[str, ...]) -> dict[str, int]:
    """``--map-size NAME=ENTRIES`` options into a dict, the one parser of every command that
    takes them; ENTRIES is decimal or 0x hex, 1..2**32-1 (max_entries is a u32). A LoadError
    names a malformed one."""
    out: dict[str, int] = {}
    for v in values:
        name, sep, n = v.partition("=")
        ok = sep and name and re.fullmatch(r"[0-9]{1,10}|0[xX][0-9a-fA-F]{1,8}", n)
        entries = int(n, 0 if n[:2].lower() == "0x" else 10) if ok else 0
        if not 0 < entries < 1 << 32:
            raise LoadError(f"--map-size '{v}': expected NAME=ENTRIES with ENTRIES in "
                            f"1..4294967295")
        out[name] = entries
    return out


def map_json(m: MapDef) -> dict:
    d = {"name": m.name, "type": m.type_name, "flags": m.map_flags, "bytes_key": m.key_size,
         "bytes_value": m.value_size, "max_entries": m.max_entries, "section": m.section}
    if m.pinning:
        d["pinning"] = m.pinning
    if m.inner is not None:
        d["inner"] = map_json(m.inner)
    if m.init_slots:
        d["init_slots"] = {str(k): v for k, v in sorted(m.init_slots.items())}
    if m.data is not None:
        d["frozen" if m.name.startswith(".rodata") else "global_data"] = True
    return d


def prog_json(p: Program) -> dict:
    d = {"name": p.name, "type": p.prog_type, "section": p.section,
            "insns": p.n_insns, "bytes_xlated": len(p.insns), "entry_insns": p.entry_len,
            "subprogs": [n for off, n in sorted(p.symbols.items()) if off],
            "helpers": [helper_name(h) for h in p.helpers], "maps": list(p.maps_used)}
    if p.is_xdp:
        d["attach"] = xdp_attach(p.section)
    return d


def object_json(o: BpfObject) -> dict:
    return {"file": o.path, "license": o.license,
            "gpl_compatible": o.license in ("GPL", "GPL v2", "GPL and additional rights",
                                            "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"),
            "btf": o.btf is not None,
            "programs": [prog_json(p) for p in o.programs],
            "default_program": o.xdp_programs[0].name if o.xdp_programs else None,
            "maps": [map_json(m) for m in o.maps]}


def _flags(v: int) -> str:
    return f"0x{v:x}" if v else "0"


def print_object(o: BpfObject) -> None:
    from rich.console import Console
    from rich.table import Table

    def e(text) -> str:     # names come from the object: escaped for the terminal and rich
        return escape(text, markup=True)

    con = Console()
    pt = Table(title=e(f"{o.path}: {len(o.programs)} program(s)"
                       + (f", license {o.license}" if o.license else "")),
               title_justify="left")
    for c in ("#", "name", "type", "section", "insns", "subprogs", "helpers", "maps"):
        pt.add_column(c, justify="right" if c in ("#", "insns") else "left",
                      no_wrap=c in ("#", "insns", "section"))
    default = o.xdp_programs[0] if o.xdp_programs else None
    for i, p in enumerate(o.programs):
        sub = ", ".join(n for off, n in sorted(p.symbols.items()) if off)
        kind = p.prog_type + ("" if xdp_attach(p.section) in (None, "xdp")
                              else f" ({xdp_attach(p.section)})")
        pt.add_row(str(i), e(p.name) + ("*" if p is default else ""), kind, e(p.section),
                   str(p.n_insns), e(sub), ", ".join(HELPER_NAMES.get(h, str(h))
                                                     for h in p.helpers),
                   e(", ".join(p.maps_used)))
    con.print(pt)
    con.print("* the default program (the first XDP program; programs of other types are "
              "never run); insns counts 8-byte slots (lddw takes two)" if default else
              "no XDP program: nothing to run; insns counts 8-byte slots (lddw takes two)")
    if not o.maps:
        con.print("no maps")
        return
    mt = Table(title=f"{len(o.maps)} map(s)", title_justify="left")
    for c in ("#", "name", "type", "key", "value", "max_entries", "flags", "notes"):
        mt.add_column(c, justify="right" if c in ("#", "key", "value", "max_entries")
                      else "left", no_wrap=c != "notes")
    for i, m in enumerate(o.maps):
        notes = []
        if m.inner is not None:
            notes.append(f"inner {m.inner.type_name} {m.inner.key_size}/{m.inner.value_size}"
                         f" x{m.inner.max_entries}")
        if m.init_slots:
            notes.append("slots " + ", ".join(f"{k}={v}" for k, v in
                                              sorted(m.init_slots.items())))
        if m.data is not None:
            notes.append("global data")
        if m.pinning:
            notes.append(f"pinning {m.pinning}")
        if m.section not in (".maps",) and m.data is None:
            notes.append(f"section {m.section}")
        mt.add_row(str(i), e(m.name), m.type_name, str(m.key_size), str(m.value_size),
                   str(m.max_entries), _flags(m.map_flags), e("; ".join(notes)))
    con.print(mt)


def register(group: click.Group) -> None:
    @group.group("prog")
    def prog():
        """Inspect BPF objects."""

    @prog.command("show")
    @click.argument("obj", type=click.Path(dir_okay=False), required=False)
    @click.option("--device", "-d", "device", envvar="BPFPGA_DEVICE", metavar="URL",
                  default=None, help="Without OBJ: the device whose program to show "
                  "(default $BPFPGA_DEVICE).")
    @click.option("--timeout", type=float, default=10.0, help="Device answer timeout (s).")
    @click.option("-j", "--json", "as_json", is_flag=True, help="JSON output, as bpftool -j.")
    @click.option("--map-size", "map_size", multiple=True, metavar="NAME=ENTRIES",
                  help="Override a map's max_entries (repeatable).")
    def show(obj: str | None, device: str | None, timeout: float, as_json: bool,
             map_size: tuple[str, ...]):
        """Programs and maps of OBJ (a clang -target bpf object); without OBJ, the program
        loaded on the device."""
        from bpfpga.compiler.elf import load_object
        if obj is None:
            from bpfpga.host.cmd_device import show_loaded
            if not device:
                raise LoadError("prog show: give OBJ, or --device URL (or $BPFPGA_DEVICE)")
            show_loaded(device, timeout, as_json)
            return

        o = load_object(obj, map_sizes=parse_map_sizes(map_size))
        if as_json:
            click.echo(json.dumps(object_json(o), indent=2))
        else:
            print_object(o)
