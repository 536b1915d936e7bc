"""The object loader: a clang BPF object (ELF + BTF) into a :class:`bpfpga.obj.BpfObject`.

It follows libbpf's reading of an object, so the same ``.o`` means the same thing here as
under ``ip link set dev eth0 xdp obj prog.o`` or a libbpf loader:

* **Programs** are the global functions of every executable section other than ``.text``
  (``xdp``, ``xdp/...``, ``xdp.frags`` or any other name); several may share a section. They
  are listed in section order, then by offset, so the default (first) program is the first
  function of the first program section. Static functions anywhere, and every function of
  ``.text``, are subprograms.
* **Calls** (``call`` with src_reg 1, resolved by an R_BPF_64_32 relocation against a
  function or section symbol, or pc-relative within the section when there is none) and
  callback addresses (``lddw`` against a function, becoming src_reg BPF_PSEUDO_FUNC) pull
  their targets in: each needed subprogram is appended once after the entry function, and
  the immediates are rewritten pc-relative (``imm = target - (pc + 1)``) as the kernel
  expects.
* **Maps** come from the BTF-defined ``.maps`` section (``__uint``/``__type``/``__array``
  members, ``values`` for PROG_ARRAY slots and map-in-map inner maps), from a legacy
  ``maps`` section (``struct bpf_map_def``, 20 bytes, or iproute2's ``struct bpf_elf_map``,
  36 bytes, told apart by the section size divided by the number of map symbols) and from
  global data: each ``.rodata*``, ``.data*`` and ``.bss*`` section becomes a one-entry
  ARRAY named after its section (``.rodata``, ``.bss``, ``.rodata.config``), whose value is
  the section's initial bytes. Order in ``BpfObject.maps``: legacy, BTF, global data.
* **Map references** (R_BPF_64_64 on an ``lddw``) become src_reg BPF_PSEUDO_MAP_IDX with
  imm = index into ``BpfObject.maps``; global data becomes BPF_PSEUDO_MAP_IDX_VALUE with
  imm = index and the second slot's imm = offset into the value (symbol value + addend).

Everything the loader cannot take is a :class:`LoadError`, one line naming the file and the
section, instruction or map at fault. That includes malformed files: pyelftools reads the
ELF header and section table, its exceptions are turned into LoadErrors, and everything
after that works on bounds-checked bytes.
"""
from __future__ import annotations

import copy
import io
import struct
from dataclasses import dataclass

from bpfpga import obj as O
from bpfpga.errors import LoadError
from bpfpga.helpers import HELPER_NAMES, UAPI_MAP_TYPES
from bpfpga.isa import (BPF_PSEUDO_CALL, BPF_PSEUDO_FUNC, BPF_PSEUDO_KFUNC_CALL,
                        BPF_PSEUDO_MAP_IDX, BPF_PSEUDO_MAP_IDX_VALUE)
from bpfpga.compiler import btf as B

EM_BPF = 247
ET_REL = 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 1, 2, 3, 4, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_COMPRESSED = 0x1, 0x2, 0x4, 0x800
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON = 0, 0xFF00, 0xFFF1, 0xFFF2

R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10
RELOC_NAMES = {R_BPF_NONE: "R_BPF_NONE", R_BPF_64_64: "R_BPF_64_64",
               R_BPF_64_ABS64: "R_BPF_64_ABS64", R_BPF_64_ABS32: "R_BPF_64_ABS32",
               R_BPF_64_NODYLD32: "R_BPF_64_NODYLD32", R_BPF_64_32: "R_BPF_64_32"}

OP_LDDW = 0x18      # BPF_LD | BPF_IMM | BPF_DW
OP_CALL = 0x85      # BPF_JMP | BPF_CALL

MAPS_SEC = ".maps"
LEGACY_MAPS_SEC = "maps"
BPF_MAP_DEF_SIZE = 20       # struct bpf_map_def: 5 x u32
BPF_ELF_MAP_SIZE = 36       # iproute2 struct bpf_elf_map: 9 x u32
MAX_DATA_SECTION = 64 << 20  # larger global data is surely a corrupt size
DATA_PREFIXES = (".rodata", ".data", ".bss")

# when True, a bug in the loader (any exception that is not a LoadError) is reported as a
# LoadError asking for a bug report instead of a traceback; the fuzz test turns it off
SAFETY_NET = True


def load_object(path: str, map_sizes: dict[str, int] | None = None,
                inner_maps: dict[str, O.MapDef] | None = None) -> O.BpfObject:
    """Load a clang ``-target bpf`` object.

    ``map_sizes`` overrides max_entries by map name; ``inner_maps`` supplies (or replaces)
    the inner map template of map-in-map maps, by outer map name.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LoadError(f"{path}: cannot read: {e.strerror or e}") from None
    return load_bytes(data, path, map_sizes, inner_maps)


def load_bytes(data: bytes, path: str = "<object>", map_sizes: dict[str, int] | None = None,
               inner_maps: dict[str, O.MapDef] | None = None) -> O.BpfObject:
    """:func:`load_object` on an object already in memory (``path`` names it in errors)."""
    if not SAFETY_NET:
        return _Loader(path, data).load(map_sizes or {}, inner_maps or {})
    try:
        return _Loader(path, data).load(map_sizes or {}, inner_maps or {})
    except LoadError:
        raise
    except RecursionError:
        raise LoadError(f"{path}: object too deeply nested to load") from None
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        raise LoadError(f"{path}: internal loader error ({type(e).__name__}: {e}); "
                        "please report it with the object") from None


# --- the ELF file as plain data ----------------------------------------------------------------
@dataclass
class _Sec:
    idx: int
    name: str
    type: int
    flags: int
    size: int
    offset: int
    link: int
    info: int
    entsize: int
    data: bytes | None = None   # None for NOBITS (zeros)

    @property
    def is_code(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


@dataclass
class _Sym:
    idx: int
    name: str
    value: int
    size: int
    type: int
    bind: int
    shndx: int


@dataclass
class _Func:
    sec: int          # section index
    start: int        # first slot in the section
    n: int            # slots
    name: str
    bind: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.sec, self.start)


_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")


def _cstr(buf: bytes, off: int) -> str:
    if not 0 <= off < len(buf):
        return ""
    end = buf.find(b"\0", off)
    if end < 0:
        end = len(buf)
    return buf[off:end].decode("utf-8", "replace")


class _Loader:
    def __init__(self, path: str, data: bytes):
        self.path = path
        self.data = data

    def err(self, msg: str) -> LoadError:
        return LoadError(f"{self.path}: {msg}")

    # --- reading --------------------------------------------------------------------------
    def read(self) -> None:
        d = self.data
        if len(d) < 4 or d[:4] != b"\x7fELF":
            raise self.err("not an ELF file")
        if len(d) < _EHDR.size:
            raise self.err(f"truncated ELF header ({len(d)} bytes)")
        ident, e_type, e_machine, _v, _entry, _phoff, e_shoff, _fl, _ehsize, _phes, _phn, \
            e_shentsize, e_shnum, e_shstrndx = _EHDR.unpack_from(d, 0)
        if ident[4] != 2:
            raise self.err("not a 64-bit ELF file (ELFCLASS64 expected)")
        if ident[5] != 1:
            raise self.err("not a little-endian ELF file (big-endian BPF is not supported)")
        if e_machine != EM_BPF:
            raise self.err(f"ELF machine is {e_machine}, not BPF (EM_BPF {EM_BPF}); "
                           "compile with clang -target bpf")
        if e_type != ET_REL:
            raise self.err(f"ELF type {e_type} is not a relocatable object (ET_REL)")
        if e_shnum == 0:
            raise self.err("no section headers")
        if e_shentsize != 64:
            raise self.err(f"section header size {e_shentsize}, expected 64")
        if e_shoff + e_shnum * e_shentsize > len(d):
            raise self.err(f"truncated: section headers end at byte "
                           f"{e_shoff + e_shnum * e_shentsize}, file has {len(d)}")
        if e_shstrndx >= e_shnum:
            raise self.err(f"section name table index {e_shstrndx} out of range")
        try:
            from elftools.elf.elffile import ELFFile
            elf = ELFFile(io.BytesIO(d))
        except Exception as e:  # noqa: BLE001 - pyelftools raises many kinds on bad input
            raise self.err(f"malformed ELF: {type(e).__name__}: {e}") from None
        raw = []
        for i in range(e_shnum):
            try:
                s = elf.get_section(i)
                h = s.header
                raw.append((i, s.name, h["sh_type"], h["sh_flags"], h["sh_size"],
                            h["sh_offset"], h["sh_link"], h["sh_info"], h["sh_entsize"]))
            except Exception as e:  # noqa: BLE001
                raise self.err(f"section #{i}: malformed section header: "
                               f"{type(e).__name__}: {e}") from None
        # pyelftools names the standard section types; the loader works with numbers
        from elftools.elf.enums import ENUM_SH_TYPE_BASE
        self.secs: list[_Sec] = []
        for i, name, stype, flags, size, off, link, info, entsize in raw:
            stype = stype if isinstance(stype, int) else ENUM_SH_TYPE_BASE.get(stype, -1)
            if not isinstance(name, str):
                name = str(name)
            sec = _Sec(i, name or f"#{i}", stype, int(flags), int(size), int(off), int(link),
                       int(info), int(entsize))
            if stype not in (SHT_NOBITS, 0):
                if off + size > len(d):
                    raise self.err(f"section {name or i}: truncated (bytes {off}..{off + size} "
                                   f"beyond the end of the file at {len(d)})")
                sec.data = d[off:off + size]
            self.secs.append(sec)
        self._read_symbols()
        self._read_relocations()

    def _read_symbols(self) -> None:
        self.syms: list[_Sym] = []
        tabs = [s for s in self.secs if s.type == SHT_SYMTAB]
        if not tabs:
            return
        if len(tabs) > 1:
            raise self.err("more than one symbol table")
        st = tabs[0]
        if st.size % _SYM.size:
            raise self.err(f"section {st.name}: size {st.size} is not a multiple of "
                           f"{_SYM.size}")
        if not 0 < st.link < len(self.secs) or self.secs[st.link].type != SHT_STRTAB:
            raise self.err(f"section {st.name}: link {st.link} is not a string table")
        strtab = self.secs[st.link].data or b""
        for i in range(st.size // _SYM.size):
            name, info, _other, shndx, value, size = _SYM.unpack_from(st.data, i * _SYM.size)
            self.syms.append(_Sym(i, _cstr(strtab, name), value, size, info & 0xF, info >> 4,
                                  shndx))
        self.symtab_idx = st.idx

    def _read_relocations(self) -> None:
        self.rels: dict[int, list[tuple[int, int, int]]] = {}   # target sec -> (off, type, sym)
        for s in self.secs:
            if s.type == SHT_RELA:
                if 0 < s.info < len(self.secs) and (self.secs[s.info].is_code
                                                    or self.secs[s.info].name == MAPS_SEC):
                    raise self.err(f"section {s.name}: RELA relocations are not supported")
                continue
            if s.type != SHT_REL:
                continue
            if not 0 < s.info < len(self.secs):
                raise self.err(f"section {s.name}: relocates section {s.info}, out of range")
            tgt = self.secs[s.info]
            if not (tgt.is_code or tgt.name == MAPS_SEC):
                continue   # .BTF, .BTF.ext, .debug_*: nothing the loader uses
            if s.size % _REL.size:
                raise self.err(f"section {s.name}: size {s.size} is not a multiple of "
                               f"{_REL.size}")
            if not self.syms:
                raise self.err(f"section {s.name}: relocations but no symbol table")
            out = self.rels.setdefault(s.info, [])
            for i in range(s.size // _REL.size):
                off, info = _REL.unpack_from(s.data, i * _REL.size)
                out.append((off, info & 0xFFFFFFFF, info >> 32))

    def sec_named(self, name: str) -> _Sec | None:
        for s in self.secs:
            if s.name == name:
                return s
        return None

    def sym_desc(self, symi: int) -> str:
        if 0 <= symi < len(self.syms):
            s = self.syms[symi]
            if s.type == STT_SECTION and not s.name and s.shndx < len(self.secs):
                return self.secs[s.shndx].name
            return s.name or f"#{symi}"
        return f"#{symi}"

    # --- the whole load -----------------------------------------------------------------------
    def load(self, map_sizes: dict[str, int], inner_maps: dict[str, O.MapDef]) -> O.BpfObject:
        self.read()
        lic = self.sec_named("license")
        license = ""
        if lic is not None and lic.data:
            license = lic.data.split(b"\0", 1)[0].decode("utf-8", "replace")
        self.btf: B.Btf | None = None
        bs = self.sec_named(".BTF")
        if bs is not None and bs.data is not None:
            try:
                self.btf = B.Btf(bs.data)
            except LoadError as e:
                raise self.err(f"section .BTF: {e}") from None
        self.maps: list[O.MapDef] = []
        self.map_at: dict[tuple[int, int], int] = {}   # (section, offset) -> map index
        self.data_map: dict[int, int] = {}             # section -> map index
        self._legacy_maps()
        self._btf_maps()
        self._data_maps()
        self._collect_functions()
        self._check_code_relocations()
        programs = [self._link(f) for f in self.entries]
        if not programs:
            raise self.err("no programs (no global function in an executable section "
                           "other than .text)")
        self.programs = {p.name for p in programs}
        self._map_slots()
        self._apply_overrides(map_sizes, inner_maps)
        return O.BpfObject(self.path, programs, self.maps, license,
                           bs.data if bs is not None else None)

    # --- maps -----------------------------------------------------------------------------------
    def _check_type(self, m: O.MapDef) -> None:
        if m.type == 0 or m.type not in UAPI_MAP_TYPES:
            raise self.err(f"map '{m.name}': unknown map type {m.type}")
        for what in ("key_size", "value_size", "max_entries", "map_flags"):
            v = getattr(m, what)
            if not 0 <= v <= 0xFFFFFFFF:
                raise self.err(f"map '{m.name}': {what} {v} does not fit in 32 bits")

    def _add_map(self, m: O.MapDef, sec: int, off: int) -> None:
        if any(x.name == m.name for x in self.maps):
            raise self.err(f"map '{m.name}' is defined twice")
        self.map_at[(sec, off)] = len(self.maps)
        self.maps.append(m)

    def _legacy_maps(self) -> None:
        sec = self.sec_named(LEGACY_MAPS_SEC)
        if sec is None or sec.size == 0:
            return
        if sec.data is None:
            raise self.err(f"section {sec.name}: has no contents")
        syms = sorted((s for s in self.syms if s.shndx == sec.idx
                       and s.type in (STT_OBJECT, STT_NOTYPE) and s.name),
                      key=lambda s: s.value)
        if not syms:
            raise self.err(f"section {sec.name}: no map symbols")
        if sec.size % len(syms):
            raise self.err(f"section {sec.name}: size {sec.size} is not a multiple of the "
                           f"{len(syms)} map definitions in it")
        dsz = sec.size // len(syms)
        if dsz < BPF_MAP_DEF_SIZE or dsz % 4:
            raise self.err(f"section {sec.name}: map definitions of {dsz} bytes are neither "
                           f"struct bpf_map_def ({BPF_MAP_DEF_SIZE}) nor struct bpf_elf_map "
                           f"({BPF_ELF_MAP_SIZE})")
        elf_map = dsz >= BPF_ELF_MAP_SIZE
        ids: dict[str, tuple[int, int, int]] = {}   # name -> (id, inner_id, inner_idx)
        for s in syms:
            if s.value % dsz or s.value + dsz > sec.size:
                raise self.err(f"map '{s.name}': offset {s.value} in section {sec.name} is "
                               f"not at a {dsz}-byte map definition")
            w = struct.unpack_from("<9I" if elf_map else "<5I", sec.data, s.value)
            m = O.MapDef(s.name, w[0], w[1], w[2], w[3], w[4], section=sec.name)
            if elf_map:
                m.pinning = w[6]
                ids[s.name] = (w[5], w[7], w[8])
            self._check_type(m)
            self._add_map(m, sec.idx, s.value)
        # iproute2 map-in-map: the outer map's inner_id names the id of its inner map, which
        # is both the template and, at its inner_idx, the initial slot
        for m in self.maps:
            if m.name not in ids or m.type not in O.MAP_IN_MAP_TYPES:
                continue
            inner_id = ids[m.name][1]
            if not inner_id:
                continue
            inners = [x for x in self.maps if x.name in ids and ids[x.name][0] == inner_id
                      and x is not m]
            if not inners:
                raise self.err(f"map '{m.name}': inner_id {inner_id} names no map in "
                               f"section {sec.name}")
            m.inner = inner_template(inners[0], m.name)
            for x in inners:
                m.init_slots[ids[x.name][2]] = x.name

    def _btf_maps(self) -> None:
        sec = self.sec_named(MAPS_SEC)
        if sec is None:
            return
        if self.btf is None:
            raise self.err(f"section {MAPS_SEC}: BTF-defined maps need a .BTF section "
                           "(compile with -g)")
        ds = self.btf.datasec(MAPS_SEC)
        if ds is None:
            raise self.err(f"section {MAPS_SEC}: no DATASEC '{MAPS_SEC}' in .BTF")
        by_name = {s.name: s for s in self.syms if s.shndx == sec.idx and s.name
                   and s.type in (STT_OBJECT, STT_NOTYPE)}
        self.btf_map_vars: list[tuple[O.MapDef, int, int, int | None]] = []
        for vi in ds.secinfo:
            try:
                self._btf_map(sec, vi, by_name)
            except LoadError as e:
                if str(e).startswith(f"{self.path}: "):
                    raise
                name = self.btf.types[vi.type].name if 0 < vi.type < len(self.btf) else "?"
                raise self.err(f"map '{name}': {e}") from None

    def _btf_map(self, sec: _Sec, vi: B.VarSecinfo, by_name: dict[str, _Sym]) -> None:
        var = self.btf.type(vi.type)
        if var.kind != B.BTF_KIND_VAR:
            raise self.err(f"section {MAPS_SEC}: DATASEC entry type {vi.type} is "
                           f"{var.kind_name}, not VAR")
        name = var.name
        sym = by_name.get(name)
        if sym is None:
            raise self.err(f"map '{name}': no symbol in section {MAPS_SEC}")
        st = self.btf.skip_mods(var.type)
        if st.kind != B.BTF_KIND_STRUCT:
            raise self.err(f"map '{name}': definition is {st.kind_name}, not a struct")
        m, values_off = self._btf_map_def(name, st, inner=False)
        m.section = MAPS_SEC
        self._check_type(m)
        size = sym.size or st.size
        if sym.value + size > sec.size:
            raise self.err(f"map '{name}': definition beyond the end of {MAPS_SEC}")
        self._add_map(m, sec.idx, sym.value)
        self.btf_map_vars.append((m, sym.value, size, values_off))

    def _btf_map_def(self, name: str, st: B.BtfType, inner: bool) -> tuple[O.MapDef, int | None]:
        """A map from its BTF struct; also the byte offset of its `values` member, if any."""
        btf = self.btf
        f: dict[str, int] = {}
        key_tid = value_tid = 0
        key_sz = value_sz = None
        values: B.Member | None = None
        for mem in st.members:
            n = mem.name
            if mem.bitfield_size:
                raise self.err(f"map '{name}': member '{n}' is a bitfield")
            if n in ("type", "max_entries", "map_flags", "key_size", "value_size", "pinning",
                     "numa_node", "map_extra"):
                v = btf.ptr_array_len(mem.type)
                if v is None:
                    t = btf.skip_mods(mem.type)
                    if t.kind in (B.BTF_KIND_ENUM, B.BTF_KIND_ENUM64) and len(t.values) == 1:
                        v = t.values[0][1]    # __ulong(name, value) spells it as an enum
                    else:
                        raise self.err(f"map '{name}': member '{n}' is not __uint({n}, ...) "
                                       f"but {btf.type_name(mem.type)}")
                f[n] = v
            elif n in ("key", "value"):
                t = btf.skip_mods(mem.type)
                if t.kind != B.BTF_KIND_PTR:
                    raise self.err(f"map '{name}': member '{n}' is not __type({n}, ...) "
                                   f"but {btf.type_name(mem.type)}")
                try:
                    sz = btf.size(t.type)
                except LoadError as e:
                    raise self.err(f"map '{name}': {n} type: {e}") from None
                if n == "key":
                    key_tid, key_sz = t.type, sz
                else:
                    value_tid, value_sz = t.type, sz
            elif n == "values":
                values = mem
            else:
                raise self.err(f"map '{name}': unknown member '{n}' in the map definition")
        mtype = f.get("type", 0)
        for n, from_type in (("key_size", key_sz), ("value_size", value_sz)):
            if from_type is not None and n in f and f[n] != from_type:
                raise self.err(f"map '{name}': {n} {f[n]} disagrees with the size of its "
                               f"type ({from_type})")
        m = O.MapDef(name, mtype,
                     key_sz if key_sz is not None else f.get("key_size", 0),
                     value_sz if value_sz is not None else f.get("value_size", 0),
                     f.get("max_entries", 0), f.get("map_flags", 0),
                     btf_key_type_id=key_tid, btf_value_type_id=value_tid,
                     pinning=f.get("pinning", 0))
        values_off = None
        if values is not None:
            if inner:
                raise self.err(f"map '{name}': an inner map cannot have 'values'")
            t = btf.skip_mods(values.type)
            if t.kind != B.BTF_KIND_ARRAY or t.nelems != 0:
                raise self.err(f"map '{name}': 'values' must be a flexible array (__array)")
            e = btf.skip_mods(t.elem_type)
            if e.kind != B.BTF_KIND_PTR:
                raise self.err(f"map '{name}': 'values' must be an array of pointers")
            target = btf.skip_mods(e.type)
            if mtype in O.MAP_IN_MAP_TYPES:
                if target.kind != B.BTF_KIND_STRUCT:
                    raise self.err(f"map '{name}': 'values' must point to an inner map "
                                   f"definition, not {target.kind_name}")
                m.inner, _ = self._btf_map_def(name + ".inner", target, inner=True)
                m.inner.section = MAPS_SEC
                self._check_type(m.inner)
            elif mtype == O.BPF_MAP_TYPE_PROG_ARRAY:
                if target.kind != B.BTF_KIND_FUNC_PROTO:
                    raise self.err(f"map '{name}': PROG_ARRAY 'values' must be function "
                                   "pointers")
            else:
                raise self.err(f"map '{name}': 'values' is only for PROG_ARRAY, "
                               "ARRAY_OF_MAPS and HASH_OF_MAPS")
            if value_sz is None and "value_size" not in f:
                m.value_size = 4
            elif m.value_size != 4:
                raise self.err(f"map '{name}': value size {m.value_size} of a map of "
                               "programs or maps must be 4")
            values_off = values.offset
        elif mtype in O.MAP_IN_MAP_TYPES and value_sz is None and "value_size" not in f:
            m.value_size = 4    # as libbpf: the value of a map of maps is an fd (u32)
        if mtype in O.MAP_IN_MAP_TYPES and m.value_size != 4:
            raise self.err(f"map '{name}': value size {m.value_size} of a map of maps must "
                           "be 4")
        return m, values_off

    def _data_maps(self) -> None:
        for s in self.secs:
            if not (s.flags & SHF_ALLOC) or s.is_code or s.type not in (SHT_PROGBITS,
                                                                         SHT_NOBITS):
                continue
            if not any(s.name == p or s.name.startswith(p + ".") for p in DATA_PREFIXES):
                continue
            if s.size == 0:
                continue
            if s.size > MAX_DATA_SECTION:
                raise self.err(f"section {s.name}: {s.size} bytes of global data is more "
                               f"than the {MAX_DATA_SECTION >> 20} MiB supported")
            init = bytes(s.size) if s.type == SHT_NOBITS else s.data
            flags = O.BPF_F_RDONLY_PROG if s.name.startswith(".rodata") else 0
            m = O.MapDef(s.name, O.BPF_MAP_TYPE_ARRAY, 4, s.size, 1, flags, data=init,
                         section=s.name)
            ds = self.btf.datasec(s.name) if self.btf is not None else None
            if ds is not None:
                m.btf_value_type_id = ds.id
                # the variables' places, as libbpf fixes up the DATASEC (clang leaves its
                # size and offsets 0): by their symbols in this section
                syms = {y.name: y for y in self.syms if y.shndx == s.idx and y.name}
                for vi in ds.secinfo:
                    if 0 < vi.type < len(self.btf):
                        v = self.btf.types[vi.type]
                        y = syms.get(v.name)
                        if v.kind == B.BTF_KIND_VAR and y is not None:
                            try:
                                size = self.btf.size(v.type)
                            except LoadError:
                                continue
                            if y.value + size <= s.size:
                                m.data_vars.append((v.name, y.value, size, v.type))
                # as libbpf: mmapable when a global (non-static) variable lives there
                for vi in ds.secinfo:
                    if 0 < vi.type < len(self.btf):
                        v = self.btf.types[vi.type]
                        if v.kind == B.BTF_KIND_VAR and v.linkage != B.BTF_VAR_STATIC:
                            m.map_flags |= O.BPF_F_MMAPABLE
                            break
            self.data_map[s.idx] = len(self.maps)
            self._add_map(m, s.idx, -1)

    def _map_slots(self) -> None:
        """Initial PROG_ARRAY and map-in-map slots from the relocations of `.maps`."""
        sec = self.sec_named(MAPS_SEC)
        if sec is None:
            return
        for off, rtype, symi in self.rels.get(sec.idx, []):
            where = f"section {MAPS_SEC}: offset {off}"
            if rtype == R_BPF_NONE:
                continue
            if rtype not in (R_BPF_64_ABS64, R_BPF_64_64):
                raise self.err(f"{where}: unsupported relocation type "
                               f"{RELOC_NAMES.get(rtype, rtype)}")
            if not 0 <= symi < len(self.syms):
                raise self.err(f"{where}: relocation against unknown symbol #{symi}")
            sym = self.syms[symi]
            owner = None
            for m, start, size, voff in self.btf_map_vars:
                if start <= off < start + size:
                    owner = (m, start, voff)
                    break
            if owner is None or owner[2] is None or off - owner[1] < owner[2]:
                raise self.err(f"{where}: relocation against '{sym.name}' outside the "
                               "'values' of any map")
            m, start, voff = owner
            rel = off - start - voff
            if rel % 8:
                raise self.err(f"map '{m.name}': misaligned 'values' slot at offset {off}")
            idx = rel // 8
            if m.type == O.BPF_MAP_TYPE_PROG_ARRAY:
                if sym.name not in self.programs:
                    raise self.err(f"map '{m.name}': slot {idx} names '{sym.name}', which "
                                   "is not a program")
                m.init_slots[idx] = sym.name
            else:
                i = self.map_at.get((sym.shndx, sym.value))
                if sym.shndx != sec.idx or i is None:
                    raise self.err(f"map '{m.name}': slot {idx} names '{sym.name}', which "
                                   "is not a map")
                m.init_slots[idx] = self.maps[i].name

    def _apply_overrides(self, map_sizes: dict[str, int],
                         inner_maps: dict[str, O.MapDef]) -> None:
        names = {m.name: m for m in self.maps}
        for name, n in map_sizes.items():
            m = names.get(name)
            if m is None:
                raise self.err(f"--map-size: no map named '{name}' (maps: "
                               f"{', '.join(names) or 'none'})")
            if m.data is not None:
                raise self.err(f"--map-size: '{name}' is global data; its size is fixed")
            if not isinstance(n, int) or not 0 < n <= 0xFFFFFFFF:
                raise self.err(f"--map-size: {name}={n}: entries must be 1..{0xFFFFFFFF}")
            m.max_entries = n
        for name, tmpl in inner_maps.items():
            m = names.get(name)
            if m is None:
                raise self.err(f"inner map for '{name}': no map of that name")
            if m.type not in O.MAP_IN_MAP_TYPES:
                raise self.err(f"inner map for '{name}': map '{name}' is "
                               f"{m.type_name}, not a map of maps")
            m.inner = inner_template(tmpl, name)
        # (a map of maps without a template may get one from maps.json: compiler/mapsjson.py
        # prepare; compiler/select.py refuses to run one that has none)
        for m in self.maps:
            for idx in m.init_slots:
                if not 0 <= idx < m.max_entries:
                    raise self.err(f"map '{m.name}': initial slot {idx} beyond max_entries "
                                   f"{m.max_entries}")

    # --- code -----------------------------------------------------------------------------------
    def _collect_functions(self) -> None:
        self.funcs: dict[int, list[_Func]] = {}
        self.entries: list[_Func] = []
        for s in self.secs:
            if not s.is_code:
                continue
            if s.size % 8:
                raise self.err(f"section {s.name}: code size {s.size} is not a multiple of 8")
            n = s.size // 8
            fs = sorted((y for y in self.syms if y.shndx == s.idx and y.type == STT_FUNC),
                        key=lambda y: y.value)
            out: list[_Func] = []
            for k, y in enumerate(fs):
                if y.value % 8 or y.size % 8:
                    raise self.err(f"section {s.name}: function '{y.name}' at offset "
                                   f"{y.value} (size {y.size}) is not instruction-aligned")
                start = y.value // 8
                if y.size:
                    cnt = y.size // 8
                else:   # hand-written assembly: up to the next function
                    nxt = fs[k + 1].value // 8 if k + 1 < len(fs) else n
                    cnt = nxt - start
                if start + cnt > n or cnt <= 0:
                    raise self.err(f"section {s.name}: function '{y.name}' (offset {y.value},"
                                   f" size {y.size}) lies outside the section")
                if out and start < out[-1].start + out[-1].n:
                    raise self.err(f"section {s.name}: functions '{out[-1].name}' and "
                                   f"'{y.name}' overlap")
                out.append(_Func(s.idx, start, cnt, y.name, y.bind))
            self.funcs[s.idx] = out
            if s.name != ".text":
                self.entries.extend(f for f in out if f.bind in (STB_GLOBAL, STB_WEAK))

    def _func_at(self, sec: int, slot: int) -> _Func | None:
        for f in self.funcs.get(sec, ()):
            if f.start <= slot < f.start + f.n:
                return f
        return None

    def _check_code_relocations(self) -> None:
        """Every relocation of a code section sits on an lddw or a call, against a symbol."""
        self.code_rel: dict[int, dict[int, tuple[int, int]]] = {}
        for si, rels in self.rels.items():
            s = self.secs[si]
            if not s.is_code:
                continue
            table = self.code_rel.setdefault(si, {})
            code = s.data or b""
            for off, rtype, symi in rels:
                slot = off // 8
                symname = self.sym_desc(symi)
                where = f"section {s.name}: instruction {slot}"
                if off % 8 or off + 8 > len(code):
                    raise self.err(f"section {s.name}: relocation against '{symname}' at "
                                   f"offset {off} is not on an instruction")
                if rtype == R_BPF_NONE:
                    continue
                if not 0 < symi < len(self.syms):
                    raise self.err(f"{where}: relocation against unknown symbol #{symi}")
                op, regs = code[off], code[off + 1]
                if rtype == R_BPF_64_64:
                    if op != OP_LDDW or off + 16 > len(code):
                        raise self.err(f"{where}: R_BPF_64_64 relocation against "
                                       f"'{symname}' is not on an lddw")
                elif rtype == R_BPF_64_32:
                    if op != OP_CALL or regs >> 4 != BPF_PSEUDO_CALL:
                        raise self.err(f"{where}: R_BPF_64_32 relocation against "
                                       f"'{symname}' is not on a bpf-to-bpf call")
                else:
                    raise self.err(f"{where}: unsupported relocation type "
                                   f"{RELOC_NAMES.get(rtype, rtype)} against '{symname}'")
                if slot in table:
                    raise self.err(f"{where}: two relocations on one instruction")
                table[slot] = (rtype, symi)

    def _link(self, entry: _Func) -> O.Program:
        """The entry function with every subprogram it reaches appended, calls resolved."""
        order = [entry]
        placed = {entry.key: 0}
        total = entry.n
        out = bytearray()
        helpers: set[int] = set()
        maps_used: list[str] = []
        symbols: dict[int, str] = {0: entry.name}
        kfuncs: dict[int, str] = {}

        def place(f: _Func) -> int:
            nonlocal total
            if f.key not in placed:
                placed[f.key] = total
                symbols[total] = f.name
                total += f.n
                order.append(f)
            return placed[f.key]

        i = 0
        while i < len(order):
            fn = order[i]
            i += 1
            sec = self.secs[fn.sec]
            code = bytearray(sec.data[fn.start * 8:(fn.start + fn.n) * 8])
            rels = self.code_rel.get(fn.sec, {})
            base = placed[fn.key]
            pc = 0
            while pc < fn.n:
                op = code[pc * 8]
                src = code[pc * 8 + 1] >> 4
                imm = struct.unpack_from("<i", code, pc * 8 + 4)[0]
                slot = fn.start + pc
                rel = rels.get(slot)
                where = f"section {sec.name}: instruction {slot}"
                if op == OP_CALL:
                    if src in (BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL) and self._kfunc(
                            src, rel, imm):
                        # a call to an extern function (__ksym): a kfunc, as libbpf takes it
                        kfuncs[base + pc] = self._kfunc(src, rel, imm)
                    elif src == BPF_PSEUDO_CALL:
                        if rel is not None:
                            sym = self.syms[rel[1]]
                            if sym.shndx >= len(self.secs) or not self.secs[sym.shndx].is_code:
                                raise self.err(f"{where}: call to '{self.sym_desc(rel[1])}',"
                                               " which is not code (an unresolved extern?)")
                            tsec, tslot = sym.shndx, sym.value // 8 + imm + 1
                        else:
                            tsec, tslot = fn.sec, slot + imm + 1
                        tf = self._func_at(tsec, tslot)
                        if tf is None:
                            raise self.err(f"{where}: call to instruction {tslot} of section "
                                           f"{self.secs[tsec].name}, which is in no function")
                        target = place(tf) + (tslot - tf.start)
                        struct.pack_into("<i", code, pc * 8 + 4, target - (base + pc + 1))
                    elif src == 0:
                        if imm not in HELPER_NAMES:
                            raise self.err(f"{where}: unknown helper id {imm} "
                                           f"(program '{entry.name}')")
                        helpers.add(imm)
                    else:
                        raise self.err(f"{where}: call with invalid src_reg {src}")
                elif op == OP_LDDW:
                    if pc + 1 >= fn.n:
                        raise self.err(f"{where}: lddw is missing its second slot")
                    if rel is not None:
                        self._reloc_lddw(code, pc, base, rel[1], where, maps_used, place)
                    pc += 2
                    continue
                pc += 1
            out += code
        return O.Program(entry.name, self.secs[entry.sec].name, bytes(out), entry.n,
                         sorted(helpers), maps_used, symbols=symbols, kfuncs=kfuncs)

    def _kfunc(self, src: int, rel, imm: int) -> str | None:
        """The name of the kfunc a call names (its undefined symbol; a src_reg
        BPF_PSEUDO_KFUNC_CALL without one: its BTF id), or None for a bpf-to-bpf call."""
        if rel is not None:
            sym = self.syms[rel[1]]
            if sym.shndx == SHN_UNDEF:
                return sym.name or f"#{rel[1]}"
        # (imm of a resolved kfunc call is a kernel BTF id, not one of this object)
        return f"with kernel BTF id {imm}" if src == BPF_PSEUDO_KFUNC_CALL else None

    def _reloc_lddw(self, code: bytearray, pc: int, base: int, symi: int, where: str,
                    maps_used: list[str], place) -> None:
        sym = self.syms[symi]
        name = self.sym_desc(symi)
        lo = struct.unpack_from("<i", code, pc * 8 + 4)[0]
        regs = code[pc * 8 + 1] & 0x0F

        def set_insn(src: int, imm_lo: int, imm_hi: int) -> None:
            code[pc * 8 + 1] = regs | (src << 4)
            struct.pack_into("<i", code, pc * 8 + 4, imm_lo)
            struct.pack_into("<i", code, pc * 8 + 12, imm_hi)

        if sym.shndx == SHN_UNDEF or sym.shndx >= SHN_LORESERVE:
            raise self.err(f"{where}: reference to unresolved symbol '{name}' (externs, "
                           "kconfig and ksyms are not supported)")
        if sym.shndx >= len(self.secs):
            raise self.err(f"{where}: symbol '{name}' has section index {sym.shndx}, out of "
                           "range")
        tsec = self.secs[sym.shndx]
        idx = self.map_at.get((sym.shndx, sym.value))
        if idx is not None and tsec.name in (MAPS_SEC, LEGACY_MAPS_SEC):
            set_insn(BPF_PSEUDO_MAP_IDX, idx, 0)
        elif sym.shndx in self.data_map:
            idx = self.data_map[sym.shndx]
            off = sym.value + lo
            if not 0 <= off <= tsec.size:
                raise self.err(f"{where}: reference to '{name}' + {lo} beyond section "
                               f"{tsec.name} ({tsec.size} bytes)")
            set_insn(BPF_PSEUDO_MAP_IDX_VALUE, idx, off)
        elif tsec.is_code and sym.type in (STT_FUNC, STT_SECTION):
            if (sym.value + lo) % 8:
                raise self.err(f"{where}: callback address '{name}' + {lo} is not "
                               "instruction-aligned")
            tslot = (sym.value + lo) // 8
            tf = self._func_at(sym.shndx, tslot)
            if tf is None:
                raise self.err(f"{where}: callback address '{name}' + {lo} is in no function")
            target = place(tf) + (tslot - tf.start)
            set_insn(BPF_PSEUDO_FUNC, target - (base + pc + 1), 0)
            return
        elif tsec.name in (MAPS_SEC, LEGACY_MAPS_SEC):
            raise self.err(f"{where}: reference to '{name}' at offset {sym.value} of "
                           f"{tsec.name}, where no map starts")
        else:
            raise self.err(f"{where}: reference to '{name}' in section {tsec.name}, which "
                           "is neither a map nor global data")
        mname = self.maps[idx].name
        if mname not in maps_used:
            maps_used.append(mname)


def inner_template(m: O.MapDef, outer: str) -> O.MapDef:
    """A copy of a map definition as the inner map template of `outer`."""
    t = copy.deepcopy(m)
    t.name = outer + ".inner"
    t.init_slots = {}
    t.data = None
    return t
