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
# the map types bpfpga runs (the reference machine's, sim/maps.py MAP_CLASSES)
SUPPORTED_MAP_TYPES = frozenset({
    BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_LPM_TRIE,
    BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS,
    BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH})

BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10

# bpf_redirect_map flags (uapi enum): the low two bits are the verdict on a missing key
# (XDP_ABORTED..XDP_TX); which others a map type takes is the kernel's flag_mask of its
# map_redirect (__bpf_xdp_redirect_map): any other bit gives XDP_ABORTED
BPF_F_BROADCAST = 1 << 3
BPF_F_EXCLUDE_INGRESS = 1 << 4
REDIRECT_ACTION_MASK = 3
REDIRECT_MAP_FLAGS = {BPF_MAP_TYPE_DEVMAP: BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
                      BPF_MAP_TYPE_DEVMAP_HASH: BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
                      BPF_MAP_TYPE_CPUMAP: 0, BPF_MAP_TYPE_XSKMAP: 0}


def is_frozen(md: "MapDef") -> bool:
    """`.rodata*` global data: set before load and frozen after (BPF_MAP_FREEZE), as libbpf
    does; programs cannot write it (BPF_F_RDONLY_PROG) and neither can the host after load."""
    return md.data is not None and md.section.startswith(".rodata")


def refuse_frozen_write(md: "MapDef") -> None:
    """A host write to a frozen map fails on every target, as the kernel's does (EPERM)."""
    if is_frozen(md):
        from bpfpga.errors import TargetError
        raise TargetError(f"map '{md.name}' is read-only data, frozen after load: give its "
                          f"bytes in maps.json (--maps), which sets them before load")


# XDP program sections, as libbpf's section_defs take them (and the legacy xdp_devmap and
# xdp_cpumap names of libbpf < 1.0, whose "xdp" prefix took them): a name ending in "/" is
# a prefix, any other must match exactly; the first match gives the attach point.
XDP_SECTIONS = (("xdp.frags/devmap", "devmap"), ("xdp/devmap", "devmap"),
                ("xdp_devmap", "devmap"), ("xdp_devmap/", "devmap"),
                ("xdp.frags/cpumap", "cpumap"), ("xdp/cpumap", "cpumap"),
                ("xdp_cpumap", "cpumap"), ("xdp_cpumap/", "cpumap"),
                ("xdp.frags", "xdp"), ("xdp.frags/", "xdp"), ("xdp", "xdp"), ("xdp/", "xdp"))


def xdp_attach(section: str) -> str | None:
    """The attach point of an XDP program section (``xdp``, ``devmap``, ``cpumap``), or None
    when the section holds no XDP program."""
    for name, attach in XDP_SECTIONS:
        if section == name or (name.endswith("/") and section.startswith(name)):
            return attach
    return None


# a few other program types by their libbpf section prefix (bpftool's names), for listings
OTHER_SECTIONS = (("socket", "socket_filter"), ("kprobe", "kprobe"), ("kretprobe", "kprobe"),
                  ("uprobe", "kprobe"), ("uretprobe", "kprobe"), ("tc", "sched_cls"),
                  ("tcx", "sched_cls"), ("classifier", "sched_cls"), ("action", "sched_act"),
                  ("tracepoint", "tracepoint"), ("tp", "tracepoint"),
                  ("raw_tracepoint", "raw_tracepoint"), ("raw_tp", "raw_tracepoint"),
                  ("perf_event", "perf_event"), ("cgroup_skb", "cgroup_skb"),
                  ("fentry", "tracing"), ("fexit", "tracing"), ("fmod_ret", "tracing"),
                  ("lsm", "lsm"), ("sk_skb", "sk_skb"), ("sk_msg", "sk_msg"),
                  ("struct_ops", "struct_ops"), ("syscall", "syscall"), ("lwt_in", "lwt_in"),
                  ("lwt_out", "lwt_out"), ("lwt_xmit", "lwt_xmit"))


def section_prog_type(section: str) -> str:
    """The program type a section name gives: ``xdp`` for XDP_SECTIONS, else the type of
    its first name component as libbpf reads it, or ``unknown``."""
    if xdp_attach(section) is not None:
        return "xdp"
    head = section.split("/", 1)[0]
    for pfx, t in OTHER_SECTIONS:
        if head == pfx or head == pfx + ".s":
            return t
    return "unknown"


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
    # global data: (variable name, offset, size, BTF type id) of each variable it holds
    data_vars: list = field(default_factory=list)
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
    # kfunc calls (extern kernel functions, BPF_PSEUDO_KFUNC_CALL) by slot: name. bpfpga runs
    # none; a target refuses a program that has any (compiler/select.py)
    kfuncs: dict[int, str] = field(default_factory=dict)

    @property
    def n_insns(self) -> int:
        return len(self.insns) // 8

    @property
    def prog_type(self) -> str:
        return section_prog_type(self.section)

    @property
    def is_xdp(self) -> bool:
        return xdp_attach(self.section) is not None


@dataclass
class BpfObject:
    path: str
    programs: list[Program]
    maps: list[MapDef]
    license: str = ""
    btf: bytes | None = None   # raw .BTF section, for targets that want to hand it on
    # maps a run leaves out (compiler/select.py xdp_view): unused, of a type not supported
    left_out: list["MapDef"] = field(default_factory=list)
    other_programs: list["Program"] = field(default_factory=list)   # (not XDP: never run)

    def map_index(self, name: str) -> int:
        for i, m in enumerate(self.maps):
            if m.name == name:
                return i
        raise KeyError(name)

    def map(self, name: str) -> MapDef:
        return self.maps[self.map_index(name)]

    @property
    def xdp_programs(self) -> list[Program]:
        return [p for p in self.programs if p.is_xdp]

    def program(self, name: str | None = None) -> Program:
        """A program by function or section name; None: the first XDP program. A program
        of another type is not one to run: KeyError, as for an unknown name."""
        if name is None:
            return self.xdp_programs[0]
        for p in self.xdp_programs:
            if p.name == name or p.section == name:
                return p
        raise KeyError(name)

    def program_choices(self, name: str | None) -> str:
        """Why :meth:`program` found nothing, for a one-line error."""
        others = [p for p in self.programs if not p.is_xdp] + self.other_programs
        for p in others:
            if name in (p.name, p.section):
                return (f"program '{p.name}' is in section '{p.section}', a {p.prog_type} "
                        f"program, not XDP")
        xdp = ", ".join(p.name for p in self.xdp_programs) or "none"
        what = f"no XDP program '{name}'" if name is not None else "no XDP program"
        return f"{what} (XDP programs: {xdp})"
