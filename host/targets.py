"""Open a target by name on an object, and load maps.json into it."""
from __future__ import annotations

from bpfpga.errors import BpfpgaError
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS,
                        BPF_MAP_TYPE_PROG_ARRAY, BpfObject, is_frozen)
from bpfpga.compiler.mapsjson import frozen_bytes
from bpfpga.target import Target

TARGETS = ("ref", "rtl", "kernel", "board")


def open_target(name: str, obj: BpfObject, prog: str | None = None, device: str | None = None,
                **kw) -> Target:
    """Open target `name` on an object; `device` is the board target's URL (else
    $BPFPGA_DEVICE); other keywords go to the target (budget, ncpus, ...)."""
    if name == "ref":
        from bpfpga.sim.xdp import XdpRef
        return XdpRef(obj, prog, **kw)
    if name == "kernel":
        from bpfpga.host.kernel import KernelTarget
        return KernelTarget(obj, prog)
    if name == "rtl":
        from bpfpga.host.board import RtlTarget
        return RtlTarget(obj, prog, **kw)
    if name == "board":
        from bpfpga.host.board import BoardTarget
        return BoardTarget(obj, prog, url=device, **kw)
    raise BpfpgaError(f"unknown target '{name}' (choose from {', '.join(TARGETS)})")


def apply_maps(target: Target, obj: BpfObject, entries: dict) -> int:
    """Load maps.json entries (bpfpga.compiler.mapsjson.load) into a target; returns the
    number of entries written."""
    from bpfpga.compiler.mapsjson import check, resolve
    entries = resolve(obj, entries)
    check(obj, entries)
    with target.batch():
        return _apply_maps(target, obj, entries)


def _apply_maps(target: Target, obj: BpfObject, entries: dict) -> int:
    n = 0
    names = {m.name: m for m in obj.maps}
    for name, lst in entries.items():
        md = names[name]            # mapsjson.check (apply_maps) refused unknown names
        if is_frozen(md):
            # set before load (compiler/mapsjson.py prepare) and frozen since, as libbpf
            if frozen_bytes(name, md, lst) != bytes(md.data or b""):
                raise BpfpgaError(f"map '{name}' is read-only data, frozen after load: its "
                                  f"maps.json bytes must be in the object before (mapsjson."
                                  f"prepare)")
            n += 1
            continue
        for key, val in lst:
            if isinstance(val, tuple):
                kind, what = val
                if md.type == BPF_MAP_TYPE_PROG_ARRAY and kind == "prog":
                    target.set_prog_slot(name, int.from_bytes(key[:4], "little"), what)
                elif md.type in (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS) and \
                        kind == "map":
                    target.set_inner_map(name, key, what)
                else:
                    target.map_update(name, key, val)
            else:
                target.map_update(name, key, val)
            n += 1
    return n
