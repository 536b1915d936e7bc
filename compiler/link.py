"""Link a BpfObject for the hardware address map: lay every map (and every inner map
instance) out in the map window, give each a handle, and resolve map references.

The layout is the same for the reference machine and the hardware: values of map n live at
``Region.base + slot * Region.stride`` (per-CPU maps: one block of slots per CPU), keys of hash
maps in a separate key area, and the handle ``memmap.map_handle(n)`` names the map.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bpfpga import isa, memmap
from bpfpga.errors import LoadError
from bpfpga.records import MAP_DESC
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, MAP_IN_MAP_TYPES,
                        BpfObject, MapDef)

HASH_LIKE = {1, 5, 9, 10, 11, 13, 25}


def _round8(n: int) -> int:
    return (n + 7) & ~7


@dataclass
class Region:
    n: int                   # map number (handle index)
    md: MapDef
    base: int                # address of slot 0 (cpu 0)
    stride: int              # bytes per value slot
    slots: int               # value slots per CPU
    cpus: int                # 1, or the CPU count for per-CPU maps
    key_base: int = 0
    key_stride: int = 0
    # hardware layout only (hw_layout): hash/LPM/DEVMAP metadata (u32 count, 4 pad, one state
    # byte per slot) and the hash table's slot count (a power of two)
    meta_base: int = 0
    nslots: int = 0

    @property
    def handle(self) -> int:
        return memmap.map_handle(self.n)

    @property
    def size(self) -> int:
        return self.stride * self.slots * self.cpus + self.key_stride * self.slots

    def value_addr(self, slot: int, cpu: int = 0) -> int:
        return self.base + (cpu * self.slots + slot) * self.stride


@dataclass
class Image:
    obj: BpfObject
    regions: list[Region] = field(default_factory=list)   # index = map number
    by_name: dict[str, Region] = field(default_factory=dict)
    size: int = 0                                          # bytes of map memory used
    ncpus: int = 1

    def region(self, name: str) -> Region:
        try:
            return self.by_name[name]
        except KeyError:
            raise LoadError(f"no map named '{name}' in {self.obj.path}") from None


# the kernel's map_alloc_check rules for the sizes of a map (kernel/bpf/arraymap.c, hashtab.c,
# devmap.c): type -> (key_size or None for any non-zero, value_size or None for any non-zero)
_ARRAYS = {2: (4, None), 6: (4, None), 3: (4, (4,)), 12: (4, (4,)), 14: (4, (4, 8)),
           25: (4, (4, 8)), 13: (None, (4,))}


def check_map(md: MapDef) -> None:
    """Refuse a map the kernel's BPF_MAP_CREATE refuses for its sizes (EINVAL), with one line
    naming it: the same object must be refused on every target."""
    key, values = _ARRAYS.get(md.type, (None, None))
    why = None
    if md.max_entries <= 0 and md.data is None:
        why = "max_entries 0"
    elif key is not None and md.key_size != key:
        why = f"key_size {md.key_size} (the kernel requires {key})"
    elif key is None and md.key_size <= 0:
        why = "key_size 0"
    elif values is not None and md.value_size not in values:
        why = f"value_size {md.value_size} (the kernel requires " \
              f"{' or '.join(map(str, values))})"
    elif md.value_size <= 0:
        why = "value_size 0"
    if why:
        raise LoadError(f"map '{md.name}' ({md.type_name}): {why}; the kernel refuses it")


def value_slots(md: MapDef) -> int:
    """Value slots a map needs: map-in-map and PROG_ARRAY store handles, not values."""
    return max(md.max_entries, 1)


def layout(obj: BpfObject, ncpus: int = 1, map_size: int = memmap.MAP_SIZE,
           extra_inner: int = 0) -> Image:
    img = Image(obj, ncpus=ncpus)
    addr = memmap.MAP_BASE

    def add(md: MapDef, name: str) -> Region:
        nonlocal addr
        if md.type in MAP_IN_MAP_TYPES or md.type == 3:
            stride = 8                      # a handle / program index / ifindex per slot
        else:
            stride = _round8(md.value_size)
        cpus = ncpus if md.percpu else 1
        slots = value_slots(md)
        r = Region(len(img.regions), md, addr, stride, slots, cpus)
        if md.type in HASH_LIKE:
            r.key_stride = _round8(md.key_size)
            r.key_base = addr + stride * slots * cpus
        end = addr + r.size
        if end - memmap.MAP_BASE > map_size:
            raise LoadError(f"map '{name}' ({md.type_name}, {md.max_entries} entries of "
                            f"{md.value_size} bytes) does not fit the map memory "
                            f"({map_size} bytes; {end - memmap.MAP_BASE} needed): shrink it "
                            f"with --map-size {name}=ENTRIES")
        addr = (end + 63) & ~63
        img.regions.append(r)
        img.by_name[name] = r
        return r

    for md in obj.maps:
        check_map(md)
        add(md, md.name)
    # inner map instances named by map-in-map slots are ordinary maps of the object; a
    # map-in-map whose slots the host fills later gets its inner maps from the host.
    img.size = addr - memmap.MAP_BASE
    return img


def resolve_lddw(img: Image, ins: isa.Insn, pc: int) -> int:
    """The 64-bit value of an lddw that references a map (src_reg 5 or 6)."""
    idx = ins.imm & 0xFFFFFFFF
    if ins.src == isa.BPF_PSEUDO_MAP_IDX:
        if idx >= len(img.obj.maps):
            raise LoadError(f"instruction {pc}: map index {idx} out of range")
        return img.regions[idx].handle
    if ins.src == isa.BPF_PSEUDO_MAP_IDX_VALUE:
        lo = idx
        off = ins.imm >> 32
        if lo >= len(img.obj.maps):
            raise LoadError(f"instruction {pc}: map index {lo} out of range")
        r = img.regions[lo]
        if r.md.type not in (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY) or \
                off >= r.md.value_size:
            raise LoadError(f"instruction {pc}: direct value access into map '{r.md.name}' "
                            f"at offset {off} is not allowed")
        return r.value_addr(0) + off
    raise LoadError(f"instruction {pc}: lddw with src_reg {ins.src} is not supported "
                    f"(only maps and map values)")


# ---------------------------------------------------------------------------- hardware layout
HW_HASH = {1, 5, 9, 10, 13}         # (HASH_OF_MAPS: a hash table of inner map handles)
HW_LPM = 11
HW_SLOT_TYPES = {3, 12, 13, 14}      # PROG_ARRAY, ARRAY_OF_MAPS, HASH_OF_MAPS, DEVMAP
HW_TYPES = {2, 6} | HW_HASH | {HW_LPM} | HW_SLOT_TYPES


def hw_layout(obj: BpfObject, ncpus: int, map_size: int, map_base: int = 0,
              first_map: int = 0) -> tuple[Image, int]:
    """The map layout of the hardware engine (hdl/xdp.py): values of every map first (the
    program-visible window, whose end, an offset into map memory, is returned with the image),
    then keys and metadata (reachable by the helper units and the host only, so a stray
    program store cannot break a hash table). Hash maps are open-addressing tables of a
    power-of-two slot count >= max_entries, with a value and a key per slot; LPM tries keep
    their entries dense (slot < count).

    ``map_base`` (a multiple of 64) and ``first_map`` place the object in map memory and in the
    descriptor table: the loader puts a new object beside the running one (host/device.py
    ``install``), so its maps are written while the old program runs on its own. ``map_size``
    is the end of the memory the object may use; ``Image.size`` counts from ``map_base``."""
    img = Image(obj, ncpus=ncpus)
    addr = memmap.MAP_BASE + map_base
    for md in obj.maps:
        check_map(md)
        if md.type not in HW_TYPES:
            raise LoadError(f"map '{md.name}': map type {md.type_name} is not supported by "
                            f"the hardware engine")
        stride = 8 if md.type in HW_SLOT_TYPES else _round8(md.value_size)
        slots = value_slots(md)
        if md.type in HW_HASH:
            slots = 1 << (slots - 1).bit_length()
        r = Region(first_map + len(img.regions), md, addr, stride, slots,
                   ncpus if md.percpu else 1)
        r.nslots = slots
        addr = (addr + stride * slots * r.cpus + 63) & ~63
        img.regions.append(r)
        img.by_name[md.name] = r
    map_len = addr - memmap.MAP_BASE
    for r in img.regions:
        md = r.md
        if md.type in HW_HASH or md.type == HW_LPM:
            r.key_stride = _round8(md.key_size)
            r.key_base = addr
            addr = (addr + r.key_stride * r.slots + 63) & ~63
        if md.type in HW_HASH or md.type in (HW_LPM, 14):
            r.meta_base = addr
            addr = (addr + 8 + r.slots + 63) & ~63
    img.size = addr - memmap.MAP_BASE - map_base
    if img.size + map_base > map_size:
        big = max(img.regions, key=lambda r: r.stride * r.slots * r.cpus + r.key_stride * r.slots)
        raise LoadError(f"the maps of {obj.path} need {img.size} bytes of map memory; the "
                        f"engine has {map_size}: shrink the largest, '{big.md.name}' "
                        f"({big.md.type_name}, {big.md.max_entries} entries), with "
                        f"--map-size {big.md.name}=ENTRIES")
    return img, map_len


def _jmp(op: int, dst: int = 0, off: int = 0, imm: int = 0) -> isa.Insn:
    return isa.make(isa.lookup(isa.BPF_JMP | op | isa.BPF_K), dst=dst, off=off, imm=imm)


def link_image(obj: BpfObject, entry, img: Image) -> tuple[bytes, dict[str, int], list]:
    """Every program of the object in one image for the engine (hdl/xdp.py): the trampoline
    slot, the entry program, the others, the tail-call table. Map references (lddw src_reg 5
    and 6) are resolved against ``img``. Returns (code, program number by name, spans
    [(first slot, end, name)]).

    Slot 0 is ``jne r2, 0, +L`` (r2 = 0 for a packet's first program: fall into the entry
    program); a tail call enters at slot 0 with r2 = program number + 1 and the table at L
    (``jeq r2, k + 1, entry_k`` for each program, then ``r0 = 0; exit``) jumps to it."""
    progs = [entry] + [p for p in obj.programs if p is not entry]
    spans = []
    body: list[isa.Insn] = []
    pos = 1
    for p in progs:
        insns = isa.decode(bytes(p.insns), strict=False)
        pc = 0
        for ins in insns:
            if ins.slots == 2 and ins.src in (isa.BPF_PSEUDO_MAP_IDX,
                                              isa.BPF_PSEUDO_MAP_IDX_VALUE):
                try:
                    v = resolve_lddw(img, ins, pc)
                except LoadError as e:
                    raise LoadError(f"{obj.path}: program '{p.name}': {e}") from None
                ins = isa.Insn(ins.opcode, ins.dst, 0, ins.off, v, ins.spec)
            body.append(ins)
            pc += ins.slots
        spans.append((pos, pos + pc, p.name))
        pos += pc
    table = pos
    tab = [_jmp(isa.BPF_JEQ, dst=2, off=s - (table + k + 1), imm=k + 1)
           for k, (s, _, _) in enumerate(spans)]
    tab += [isa.make(isa.lookup(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K), dst=0, imm=0),
            isa.make(isa.lookup(isa.BPF_JMP | isa.BPF_EXIT))]
    code = isa.encode([_jmp(isa.BPF_JNE, dst=2, off=table - 1, imm=0)] + body + tab)
    return code, {name: k for k, (_, _, name) in enumerate(spans)}, spans


def program_pc(spans, pc: int) -> tuple[str | None, int]:
    """A pc of the engine's image (link_image's spans: first slot, end, program name) as
    (program, pc in that program); (None, pc) for a pc in the trampoline."""
    for s, e, name in spans:
        if s <= pc < e:
            return name, pc - s
    return None, pc


def hw_descriptor(r: Region) -> list[int]:
    """The 8 descriptor words of a map (bpfpga/records.py MAP_DESC)."""
    md = r.md
    off = memmap.MAP_BASE
    return MAP_DESC.pack(
        type=md.type, key_size=md.key_size, value_size=md.value_size,
        max_entries=md.max_entries, base=r.base - off, stride=r.stride,
        key_stride=r.key_stride,
        # one value block per core for PERCPU maps only: a shared map's cores all use
        # block 0 (the helper unit adds core * this to every value address)
        cpu_stride=r.stride * r.slots if r.cpus > 1 else 0,
        key_base=(r.key_base - off) if r.key_base else 0,
        meta=(r.meta_base - off) if r.meta_base else 0,
        mask=max(r.nslots, 1) - 1)
