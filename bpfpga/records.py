"""The records the engine and the host exchange, each defined once as a field table.

The engine builds its ``amaranth.lib.data`` layouts from these tables (hdl/layouts.py) and the
host packs and unpacks words with them (host/device.py, compiler/link.py), so a field moved
here moves on both sides. Pure Python: the host reads a map or a ring record without Amaranth.

A record is a little-endian bit vector cut into ``words`` words of ``word_bits``: bit ``b``
of the record is bit ``b % word_bits`` of word ``b // word_bits``, as the engine's memories
and the control port (docs/registers.md) hold it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


class Record:
    def __init__(self, name: str, word_bits: int, words: int, fields: list[tuple[str, int, int]]):
        self.name, self.word_bits, self.words = name, word_bits, words
        self.bits = word_bits * words
        self.fields = tuple(Field(*f) for f in fields)
        self.by_name = {f.name: f for f in self.fields}
        taken = 0
        for f in self.fields:
            bits = f.mask << f.offset
            # an overlap or a field past the end is a typo in a table both sides trust
            assert not taken & bits and f.offset + f.width <= self.bits, (name, f.name)
            taken |= bits

    def mask(self, name: str) -> int:
        """The bits of field ``name`` in place (a status bit, for a test of a register)."""
        f = self.by_name[name]
        return f.mask << f.offset

    def pack_int(self, **values: int) -> int:
        v = 0
        for k, x in values.items():
            f = self.by_name[k]
            v |= (x & f.mask) << f.offset
        return v

    def pack(self, **values: int) -> list[int]:
        """The record's words; fields not named are zero, values are cut to their width."""
        v = self.pack_int(**values)
        m = (1 << self.word_bits) - 1
        return [(v >> (self.word_bits * i)) & m for i in range(self.words)]

    def unpack_int(self, v: int) -> dict[str, int]:
        return {f.name: (v >> f.offset) & f.mask for f in self.fields}

    def unpack(self, words) -> dict[str, int]:
        """Fields of the record from its first ``words`` words (more are ignored)."""
        v = 0
        for i, w in enumerate(list(words)[:self.words]):
            v |= (w & ((1 << self.word_bits) - 1)) << (self.word_bits * i)
        return self.unpack_int(v)

    def __repr__(self):
        return f"Record({self.name!r}, {self.words} x {self.word_bits} bits)"


# output ring record header: 4 64-bit words, then the packet 8 bytes a word (C.HDR_WORDS)
RING_HDR = Record("ring header", 64, 4, [
    ("len", 0, 16), ("verdict", 16, 3), ("trap", 20, 4), ("in_port", 24, 4), ("core", 28, 4),
    ("redirect", 32, 32),
    ("r0", 64, 64),
    ("trap_pc", 128, 32), ("insns", 160, 32),
    ("cycles", 192, 32), ("tailcalls", 224, 8), ("seq", 232, 24),
])

# inject ring record header: one 64-bit word, then the frame. in_port 0..P-1 is a port, P the
# host; the ingress ifindex a program sees is in_port + 1
INJ_HDR = Record("inject header", 64, 1, [("len", 0, 16), ("in_port", 16, 4)])

# trace FIFO record (trace_printk): 6 64-bit words in a slot of C.TRACE_SLOT_WORDS; len is
# the text's length (what the helper returned), seq the frame's, ktime at the call
TRACE_REC = Record("trace record", 64, 6, [
    ("fmt", 0, 32), ("fmt_size", 32, 13), ("core", 48, 8),
    ("len", 64, 32), ("seq", 96, 24),
    ("ktime", 128, 64),
    ("arg0", 192, 64), ("arg1", 256, 64), ("arg2", 320, 64),
])

# map descriptor: 8 32-bit words at MAPDESC + 8 n. Offsets are from the map window's base;
# meta: u32 count, 4 pad, then one state byte per slot; mask: hash slots - 1
MAP_DESC = Record("map descriptor", 32, 8, [
    ("type", 0, 8), ("key_size", 8, 8), ("value_size", 16, 16),
    ("max_entries", 32, 32),
    ("base", 64, 32),
    ("stride", 96, 16), ("key_stride", 112, 16),
    ("cpu_stride", 128, 32),        # bytes between the per-core value blocks (PERCPU only)
    ("key_base", 160, 32),
    ("meta", 192, 32),
    ("mask", 224, 32),
])

# R_STATUS; lanes: bit n, lane n holds a packet (RECV .. egress)
STATUS = Record("status", 32, 1, [
    ("idle", 0, 1), ("commit_busy", 1, 1), ("check_busy", 2, 1), ("mapclr_busy", 3, 1),
    ("lanes", 8, 24),
])

# R_INFO; log2_pm_depth: the program memory holds 1 << it slots
INFO = Record("info", 32, 1, [
    ("cores", 0, 8), ("ports", 8, 8), ("log2_pm_depth", 16, 8), ("max_maps", 24, 8),
])
