"""The object model shared by the loader, the linker and every target.

The ELF loader (compiler/elf.py) turns a clang object into a :class:`BpfObject`: programs
with their subprograms appended and bpf-to-bpf calls resolved, and maps. A map reference in a
program is an ``lddw`` whose src_reg is BPF_PSEUDO_MAP_IDX (imm = index into
``BpfObject.maps``) or BPF_PSEUDO_MAP_IDX_VALUE (imm = index, second imm = offset into the
value), the kernel's own encoding for "map by index"; each target rewrites it to its own
handle (a map fd for the kernel, an address in the map window for the hardware).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# enum bpf_map_type (uapi/linux/bpf.h)
BPF_MAP_TYPE_UNSPEC = 0
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_STACK_TRACE = 7
BPF_MAP_TYPE_CGROUP_ARRAY = 8
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_SOCKMAP = 15
BPF_MAP_TYPE_CPUMAP = 16
BPF_MAP_TYPE_XSKMAP = 17
BPF_MAP_TYPE_DEVMAP_HASH = 25
BPF_MAP_TYPE_RINGBUF = 27

MAP_TYPE_NAMES = {v: k[len("BPF_MAP_TYPE_"):].lower() for k, v in dict(globals()).items()
                  if k.startswith("BPF_MAP_TYPE_")}

PERCPU_TYPES = {BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
                BPF_MAP_TYPE_LRU_PERCPU_HASH}
MAP_IN_MAP_TYPES = {BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS}

BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10


@dataclass
class MapDef:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    inner: "MapDef | None" = None          # template of the inner map (map-in-map types)
    # initial slots: for PROG_ARRAY {index: program name}; for map-in-map {index: inner map name}
    init_slots: dict = field(default_factory=dict)
    data: bytes | None = None              # initial value of global data maps (.data/.rodata)
    section: str = ".maps"
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    pinning: int = 0

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES.get(self.type, str(self.type))

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_TYPES


@dataclass
class Program:
    name: str                  # function symbol name
    section: str               # ELF section it lives in
    insns: bytes               # linked code: the entry function first, subprograms after it
    entry_len: int = 0         # instructions (slots) of the entry function itself
    helpers: list[int] = field(default_factory=list)   # helper ids it calls
    maps_used: list[str] = field(default_factory=list)  # map names it references
    # function names by first slot: the entry function at 0, each appended subprogram
    symbols: dict[int, str] = field(default_factory=dict)

    @property
    def n_insns(self) -> int:
        return len(self.insns) // 8


@dataclass
class BpfObject:
    path: str
    programs: list[Program]
    maps: list[MapDef]
    license: str = ""
    btf: bytes | None = None   # raw .BTF section, for targets that want to hand it on

    def map_index(self, name: str) -> int:
        for i, m in enumerate(self.maps):
            if m.name == name:
                return i
        raise KeyError(name)

    def map(self, name: str) -> MapDef:
        return self.maps[self.map_index(name)]

    def program(self, name: str | None = None) -> Program:
        if name is None:
            return self.programs[0]
        for p in self.programs:
            if p.name == name or p.section == name:
                return p
        raise KeyError(name)
