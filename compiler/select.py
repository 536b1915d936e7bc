"""What of an object a run takes: its XDP programs, and the maps they can reach.

An object may hold programs of other types (a kprobe next to the XDP program) and maps only
those use; ``bpfpga prog show`` lists everything, but a target runs :func:`xdp_view`: the
XDP programs (sections of bpfpga/obj.py ``XDP_SECTIONS``) and every map except those of a
type bpfpga does not support that no XDP program references (they are listed in
``BpfObject.left_out``). Map references (lddw src_reg 5/6, imm = map index) are renumbered.
"""
from __future__ import annotations

import dataclasses
import struct

from bpfpga import isa
from bpfpga.errors import LoadError
from bpfpga.obj import MAP_IN_MAP_TYPES, SUPPORTED_MAP_TYPES, BpfObject

OP_LDDW = 0x18


def xdp_view(obj: BpfObject) -> BpfObject:
    """The object as a target runs it (the object itself when nothing is left out). Refuses
    (LoadError) what no target can run: see :func:`check_runnable`."""
    obj = _view(obj)
    check_runnable(obj)
    return obj


def check_runnable(obj: BpfObject) -> None:
    """What no target runs: an XDP program that calls a kfunc; maps the loader must complete
    before a target can create them: max_entries 0 in the object (libbpf lets the loader size
    them), a map of maps without an inner map."""
    for p in obj.xdp_programs:
        for slot, name in sorted(p.kfuncs.items()):
            raise LoadError(f"{obj.path}: program '{p.name}': instruction {slot}: call to "
                            f"kfunc '{name}': kfuncs are kernel functions, which bpfpga does "
                            f"not support")
    for m in obj.maps:
        if m.max_entries == 0 and m.data is None:
            raise LoadError(f"{obj.path}: map '{m.name}' ({m.type_name}) has max_entries 0 in "
                            f"the object (it is sized at load time): give its size with "
                            f"--map-size {m.name}=ENTRIES")
        if m.type in MAP_IN_MAP_TYPES and m.inner is None and not m.init_slots:
            raise LoadError(f"{obj.path}: map '{m.name}' ({m.type_name}) has no inner map "
                            f"definition: declare __array(values, ...) in the object, or "
                            f"define an inner map in maps.json (--maps) and name it in a "
                            f"slot of '{m.name}'")


def _view(obj: BpfObject) -> BpfObject:
    progs = obj.xdp_programs
    if not progs:
        secs = ", ".join(sorted({f"{p.section} ({p.prog_type})" for p in obj.programs}))
        raise LoadError(f"{obj.path}: no XDP program (sections: {secs or 'none'})")
    used = {n for p in progs for n in p.maps_used}
    keep = {m.name for m in obj.maps if m.type in SUPPORTED_MAP_TYPES or m.name in used}
    for m in obj.maps:
        if m.name in keep:
            keep |= {v for v in m.init_slots.values() if isinstance(v, str)}
    left = [m for m in obj.maps if m.name not in keep]
    if len(progs) == len(obj.programs) and not left:
        return obj
    new_index = {}
    for i, m in enumerate(obj.maps):
        if m.name in keep:
            new_index[i] = len(new_index)
    out = [dataclasses.replace(p, insns=_renumber(p.insns, new_index, obj, p.name))
           for p in progs] if left else list(progs)
    return dataclasses.replace(obj, programs=out,
                               maps=[m for m in obj.maps if m.name in keep],
                               left_out=list(obj.left_out) + left,
                               other_programs=[p for p in obj.programs if not p.is_xdp])


def _renumber(insns: bytes, new_index: dict[int, int], obj: BpfObject, prog: str) -> bytes:
    code = bytearray(insns)
    i = 0
    while i + 1 < len(code) // 8:
        if code[8 * i] == OP_LDDW:
            if code[8 * i + 1] >> 4 in (isa.BPF_PSEUDO_MAP_IDX, isa.BPF_PSEUDO_MAP_IDX_VALUE):
                old = struct.unpack_from("<I", code, 8 * i + 4)[0]
                if old not in new_index:
                    raise LoadError(f"{obj.path}: program '{prog}': instruction {i}: map "
                                    f"index {old} out of range")
                struct.pack_into("<I", code, 8 * i + 4, new_index[old])
            i += 2
            continue
        i += 1
    return bytes(code)


def left_out_note(obj: BpfObject) -> str | None:
    """One line naming the maps a run left out, or None."""
    if not obj.left_out:
        return None
    names = ", ".join(f"'{m.name}' ({m.type_name})" for m in obj.left_out)
    return (f"{obj.path}: left out map(s) {names}: no XDP program uses them and bpfpga does "
            f"not support their type")
