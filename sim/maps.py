"""Maps of the reference machine, with values in the map window so programs read and write
them in place through the pointers lookups return (as in the kernel and in the hardware).

Semantics follow the kernel (kernel/bpf/arraymap.c, hashtab.c, lpm_trie.c, devmap.c): error
codes are negative errnos, update flags BPF_ANY / BPF_NOEXIST / BPF_EXIST.
"""
from __future__ import annotations

from collections import OrderedDict

from bpfpga import memmap
from bpfpga.errors import LoadError
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_DEVMAP,
                        BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_HASH_OF_MAPS,
                        BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_LRU_HASH,
                        BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
                        BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PROG_ARRAY,
                        SUPPORTED_MAP_TYPES)

EPERM, ENOENT, E2BIG, EEXIST, EINVAL, ENOSPC = 1, 2, 7, 17, 22, 28
BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4


class MapError(Exception):
    def __init__(self, errno: int, msg: str):
        super().__init__(msg)
        self.errno = errno


class BaseMap:
    """A map whose value slots live in `mem` (the map window's bytearray) at region.base."""

    def __init__(self, region, mem: bytearray, ncpus: int):
        self.region = region
        self.md = region.md
        self.mem = mem
        self.ncpus = region.cpus
        self.key_size = self.md.key_size
        self.value_size = self.md.value_size
        self.max_entries = self.md.max_entries

    # offsets into mem
    def _off(self, slot: int, cpu: int = 0) -> int:
        return self.region.value_addr(slot, cpu) - memmap.MAP_BASE

    def _read(self, slot: int, cpu: int = 0) -> bytes:
        o = self._off(slot, cpu)
        return bytes(self.mem[o:o + self.value_size])

    def _write(self, slot: int, value: bytes, cpu: int = 0) -> None:
        o = self._off(slot, cpu)
        self.mem[o:o + self.value_size] = value
        pad = self.region.stride - self.value_size
        if pad > 0:
            self.mem[o + self.value_size:o + self.region.stride] = bytes(pad)

    def _values(self, value) -> list[bytes]:
        """Normalize a host-side value: one bytes (replicated per CPU) or a list per CPU."""
        vals = value if isinstance(value, (list, tuple)) else [value] * self.ncpus
        if len(vals) != self.ncpus:
            raise MapError(EINVAL, f"map '{self.md.name}': {len(vals)} per-CPU values for "
                                   f"{self.ncpus} CPUs")
        out = []
        for v in vals:
            v = bytes(v)
            if len(v) != self.value_size:
                raise MapError(EINVAL, f"map '{self.md.name}': value is {len(v)} bytes, "
                                       f"expected {self.value_size}")
            out.append(v)
        return out

    def _key(self, key: bytes) -> bytes:
        key = bytes(key)
        if len(key) != self.key_size:
            raise MapError(EINVAL, f"map '{self.md.name}': key is {len(key)} bytes, expected "
                                   f"{self.key_size}")
        return key

    # program side: lookup returns an address (0 = NULL)
    def prog_lookup(self, key: bytes, cpu: int) -> int:
        raise NotImplementedError

    def prog_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        try:
            self.update(key, value if not self.md.percpu else None, flags, prog_cpu=cpu,
                        prog_value=value)
            return 0
        except MapError as e:
            return -e.errno

    def prog_delete(self, key: bytes) -> int:
        try:
            self.delete(key)
            return 0
        except MapError as e:
            return -e.errno

    # host side
    def lookup(self, key: bytes):
        raise NotImplementedError

    def update(self, key, value, flags=BPF_ANY, prog_cpu=None, prog_value=None):
        raise NotImplementedError

    def delete(self, key):
        raise MapError(EINVAL, f"map '{self.md.name}': delete is not supported by "
                               f"{self.md.type_name}")

    def keys(self) -> list[bytes]:
        raise NotImplementedError

    def dump(self):
        return [(k, self.lookup(k)) for k in self.keys()]

    def _get(self, slot):
        if self.md.percpu:
            return [self._read(slot, c) for c in range(self.ncpus)]
        return self._read(slot)

    def _put(self, slot, value, prog_cpu=None, prog_value=None):
        if prog_value is not None:
            self._write(slot, self._check_val(bytes(prog_value)),
                        prog_cpu if self.md.percpu else 0)
            return
        for c, v in enumerate(self._values(value)):
            self._write(slot, v, c)

    def _check_val(self, v):
        if len(v) != self.value_size:
            raise MapError(EINVAL, f"map '{self.md.name}': value is {len(v)} bytes, expected "
                                   f"{self.value_size}")
        return bytes(v)


class ArrayMap(BaseMap):
    def _index(self, key: bytes) -> int | None:
        i = int.from_bytes(self._key(key)[:4], "little")
        return i if i < self.max_entries else None

    def prog_lookup(self, key, cpu):
        i = self._index(key)
        if i is None:
            return 0
        return self.region.value_addr(i, cpu if self.md.percpu else 0)

    def lookup(self, key):
        i = self._index(key)
        return None if i is None else self._get(i)

    def update(self, key, value, flags=BPF_ANY, prog_cpu=None, prog_value=None):
        # the kernel's order of checks (arraymap.c): flags, index, NOEXIST
        if (flags & ~BPF_F_LOCK) > BPF_EXIST:
            raise MapError(EINVAL, f"map '{self.md.name}': bad flags {flags}")
        i = self._index(key)
        if i is None:
            raise MapError(E2BIG, f"map '{self.md.name}': index out of range")
        if flags & BPF_NOEXIST:
            raise MapError(EEXIST, f"map '{self.md.name}': array entries always exist")
        self._put(i, value, prog_cpu, prog_value)

    def keys(self):
        return [i.to_bytes(4, "little") for i in range(self.max_entries)]


class HashMap(BaseMap):
    """HASH / PERCPU_HASH / LRU_HASH / LRU_PERCPU_HASH: key -> slot, slots from a free list.

    LRU maps evict the least recently used entry (lookup or update refreshes) when full; the
    kernel's LRU is approximate (per-CPU free lists), so results can differ from the kernel's
    only when a map runs full.
    """

    def __init__(self, region, mem, ncpus):
        super().__init__(region, mem, ncpus)
        self.slots: OrderedDict[bytes, int] = OrderedDict()
        self.free = list(range(self.max_entries - 1, -1, -1))
        self.lru = self.md.type in (BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH)

    def prog_lookup(self, key, cpu):
        s = self.slots.get(self._key(key))
        if s is None:
            return 0
        if self.lru:
            self.slots.move_to_end(bytes(key))
        return self.region.value_addr(s, cpu if self.md.percpu else 0)

    def lookup(self, key):
        s = self.slots.get(self._key(key))
        return None if s is None else self._get(s)

    def update(self, key, value, flags=BPF_ANY, prog_cpu=None, prog_value=None):
        key = self._key(key)
        if flags & ~(3 | BPF_F_LOCK) or (flags & 3) == 3:
            raise MapError(EINVAL, f"map '{self.md.name}': bad flags {flags}")
        s = self.slots.get(key)
        if s is not None:
            if flags & 3 == BPF_NOEXIST:
                raise MapError(EEXIST, f"map '{self.md.name}': key exists")
            if self.lru:
                self.slots.move_to_end(key)
            if prog_value is not None and self.md.percpu:
                # a program's update of a per-CPU hash sets this CPU's value, zeroing none
                self._write(s, bytes(prog_value), prog_cpu)
            else:
                self._put(s, value, prog_cpu, prog_value)
            return
        if flags & 3 == BPF_EXIST:
            raise MapError(ENOENT, f"map '{self.md.name}': no such key")
        if not self.free:
            if not self.lru:
                raise MapError(E2BIG, f"map '{self.md.name}' is full ({self.max_entries})")
            old, s = self.slots.popitem(last=False)
            self.free.append(s)
        s = self.free.pop()
        self.slots[key] = s
        if prog_value is not None and self.md.percpu:
            for c in range(self.ncpus):
                self._write(s, bytes(prog_value) if c == prog_cpu else bytes(self.value_size),
                            c)
        else:
            self._put(s, value, prog_cpu, prog_value)

    def delete(self, key):
        key = self._key(key)
        s = self.slots.pop(key, None)
        if s is None:
            raise MapError(ENOENT, f"map '{self.md.name}': no such key")
        self.free.append(s)

    def keys(self):
        return list(self.slots.keys())


class LpmTrieMap(BaseMap):
    """LPM_TRIE: key = u32 prefixlen + data bytes; lookup finds the longest matching prefix.
    Entries are identified by (prefixlen, data masked to prefixlen); the stored key keeps the
    data as last given, as the kernel's trie node does."""

    def __init__(self, region, mem, ncpus):
        super().__init__(region, mem, ncpus)
        self.entries: dict[tuple[int, bytes], tuple[int, bytes]] = {}
        self.free = list(range(self.max_entries - 1, -1, -1))
        self.data_bits = (self.key_size - 4) * 8

    def _split(self, key: bytes) -> tuple[int, bytes]:
        key = self._key(key)
        plen = int.from_bytes(key[:4], "little")
        if plen > self.data_bits:
            raise MapError(EINVAL, f"map '{self.md.name}': prefix length {plen} > "
                                   f"{self.data_bits}")
        return plen, self._mask(key[4:], plen)

    @staticmethod
    def _mask(data: bytes, plen: int) -> bytes:
        v = int.from_bytes(data, "big")
        bits = len(data) * 8
        m = ((1 << plen) - 1) << (bits - plen) if plen else 0
        return (v & m).to_bytes(len(data), "big")

    def _match(self, key: bytes) -> int | None:
        key = self._key(key)
        plen = min(int.from_bytes(key[:4], "little"), self.data_bits)
        data = key[4:]
        best = None
        for (p, d), (s, _) in self.entries.items():
            if p <= plen and (best is None or p > best[0]) and self._mask(data, p) == d:
                best = (p, s)
        return None if best is None else best[1]

    def prog_lookup(self, key, cpu):
        try:
            s = self._match(key)
        except MapError:
            return 0
        return 0 if s is None else self.region.value_addr(s)

    def lookup(self, key):
        # host lookups on an LPM trie are longest-prefix matches too, as in the kernel
        s = self._match(key)
        return None if s is None else self._read(s)

    def update(self, key, value, flags=BPF_ANY, prog_cpu=None, prog_value=None):
        k = self._split(key)
        if flags & ~3 or (flags & 3) == 3:
            raise MapError(EINVAL, f"map '{self.md.name}': bad flags {flags}")
        cur = self.entries.get(k)
        if cur is not None:
            if flags == BPF_NOEXIST:
                raise MapError(EEXIST, f"map '{self.md.name}': key exists")
            s = cur[0]
        else:
            if flags == BPF_EXIST:
                raise MapError(ENOENT, f"map '{self.md.name}': no such key")
            if not self.free:
                raise MapError(ENOSPC, f"map '{self.md.name}' is full ({self.max_entries})")
            s = self.free.pop()
        self.entries[k] = (s, bytes(key[4:]))
        self._write(s, bytes(prog_value) if prog_value is not None else self._check_val(value))

    def delete(self, key):
        k = self._split(key)
        cur = self.entries.pop(k, None)
        if cur is None:
            raise MapError(ENOENT, f"map '{self.md.name}': no such key")
        self.free.append(cur[0])

    def keys(self):
        return [p.to_bytes(4, "little") + d for (p, _), (s, d) in self.entries.items()]

    def dump(self):
        return [(p.to_bytes(4, "little") + d, self._read(s))
                for (p, _), (s, d) in self.entries.items()]


class SlotMap(BaseMap):
    """PROG_ARRAY, ARRAY_OF_MAPS, DEVMAP (u32 keys) and HASH_OF_MAPS, DEVMAP_HASH (any key):
    slots hold a program index, an inner map number or an ifindex; host-side values are the
    kernel's (a program fd / map fd / ifindex as u32), here a program name, a map name or an
    ifindex."""

    def __init__(self, region, mem, ncpus):
        super().__init__(region, mem, ncpus)
        self.table: dict[bytes, object] = {}
        self.array = self.md.type in (BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS,
                                      BPF_MAP_TYPE_DEVMAP)

    def _k(self, key) -> bytes:
        key = self._key(key)
        if self.array and int.from_bytes(key[:4], "little") >= self.max_entries:
            raise MapError(E2BIG, f"map '{self.md.name}': index out of range")
        return key

    def get(self, key) -> object:
        try:
            return self.table.get(self._k(key))
        except MapError:
            return None

    def lookup(self, key):
        return self.table.get(self._k(key))

    def update(self, key, value, flags=BPF_ANY, prog_cpu=None, prog_value=None):
        k = self._k(key)
        if flags & 3 == BPF_NOEXIST and k in self.table:
            raise MapError(EEXIST, f"map '{self.md.name}': key exists")
        if flags & 3 == BPF_EXIST and k not in self.table:
            raise MapError(ENOENT, f"map '{self.md.name}': no such key")
        if not self.array and k not in self.table and len(self.table) >= self.max_entries:
            raise MapError(E2BIG, f"map '{self.md.name}' is full")
        self.table[k] = value

    def delete(self, key):
        k = self._k(key)
        if self.table.pop(k, None) is None:
            raise MapError(ENOENT, f"map '{self.md.name}': no such key")

    def keys(self):
        return sorted(self.table) if self.array else list(self.table)

    def prog_update(self, key, value, flags, cpu):
        return -EPERM if self.md.type != BPF_MAP_TYPE_DEVMAP else super().prog_update(
            key, value, flags, cpu)


MAP_CLASSES = {
    BPF_MAP_TYPE_ARRAY: ArrayMap, BPF_MAP_TYPE_PERCPU_ARRAY: ArrayMap,
    BPF_MAP_TYPE_HASH: HashMap, BPF_MAP_TYPE_PERCPU_HASH: HashMap,
    BPF_MAP_TYPE_LRU_HASH: HashMap, BPF_MAP_TYPE_LRU_PERCPU_HASH: HashMap,
    BPF_MAP_TYPE_LPM_TRIE: LpmTrieMap,
    BPF_MAP_TYPE_PROG_ARRAY: SlotMap, BPF_MAP_TYPE_ARRAY_OF_MAPS: SlotMap,
    BPF_MAP_TYPE_HASH_OF_MAPS: SlotMap, BPF_MAP_TYPE_DEVMAP: SlotMap,
    BPF_MAP_TYPE_DEVMAP_HASH: SlotMap,
}

assert set(MAP_CLASSES) == SUPPORTED_MAP_TYPES


def make_map(region, mem: bytearray, ncpus: int) -> BaseMap:
    cls = MAP_CLASSES.get(region.md.type)
    if cls is None:
        raise LoadError(f"map '{region.md.name}': map type {region.md.type_name} is not "
                        f"supported")
    return cls(region, mem, ncpus)
