"""Map memory in hardware: the hash function (its bit-exact twin for the host is
bpfpga/maphash.py), the map-memory arbiter that several cores and the host share, and the CRC-32 the program loader
checks a staged image with.

Hash maps are open-addressing tables (linear probing) with one state byte per slot (empty,
valid, deleted) and a u32 entry count; their layout is :func:`bpfpga.compiler.link.hw_layout`.
"""
from __future__ import annotations

import zlib

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga.hdl.bus import DataBusSignature

M32 = 0xFFFF_FFFF


# ---------------------------------------------------------------------------- hash (HDL)
def hdl_hash_step(h, w):
    t = Signal(64)
    out = Signal(64)
    return t, out, [t.eq(h ^ w), out.eq(t.rotate_left(29) ^ (t + (t >> 11))[:64])]


def hdl_hash_final(m, h):
    x0 = Signal(32)
    x1 = Signal(32)
    x2 = Signal(32)
    x3 = Signal(32)
    m.d.comb += [x0.eq(h[:32] ^ h[32:]), x1.eq(x0 ^ (x0 >> 15)),
                 x2.eq((x1 + (x1 << 5))[:32]), x3.eq(x2 ^ (x2 >> 13))]
    return x3


# ---------------------------------------------------------------------------- CRC-32
def _crc_raw(c: int, data: bytes) -> int:
    return ~zlib.crc32(data, ~c & M32) & M32


def crc32_matrix(nbytes: int = 8):
    """zlib's CRC-32 register update over ``nbytes`` bytes (little-endian) as an XOR network:
    for output bit j, the register bits and data bits it depends on."""
    cols_c = [_crc_raw(1 << i, bytes(nbytes)) for i in range(32)]
    cols_d = [_crc_raw(0, (1 << i).to_bytes(nbytes, "little")) for i in range(8 * nbytes)]
    return ([[i for i in range(32) if cols_c[i] >> j & 1] for j in range(32)],
            [[i for i in range(8 * nbytes) if cols_d[i] >> j & 1] for j in range(32)])


def hdl_crc_update(m, crc, data):
    """The CRC-32 register after the bytes of ``data`` (a whole number of bytes, the lowest
    first)."""
    if len(data) % 8:
        raise ValueError(f"hdl_crc_update: data of {len(data)} bits is not whole bytes")
    mc, md = crc32_matrix(len(data) // 8)
    out = Signal(32)
    bits = []
    for j in range(32):
        terms = [crc[i] for i in mc[j]] + [data[i] for i in md[j]]
        acc = terms[0]
        for t in terms[1:]:
            acc = acc ^ t
        bits.append(acc)
    m.d.comb += out.eq(Cat(*bits))
    return out


def image_crc(code: bytes) -> int:
    """What R_CRC reads after R_CHECK over the slots of `code`: zlib.crc32 of the bytes."""
    return zlib.crc32(code) & M32


# ---------------------------------------------------------------------------- arbiter
class MapArbiter(wiring.Component):
    """N data-bus initiators onto one target. A grant lasts for one access, and for as long as
    the initiator holds ``lock`` (an atomic's read and write, or a whole hash-map update by a
    helper unit), so no other initiator sees a half-done update. Fixed priority: port 0
    first (cores before the host). The target must take two cycles or more (ready never in
    the cycle of valid): ready is passed on by the registered grant."""

    def __init__(self, n: int):
        self.n = n
        sig = {f"i{k}": In(DataBusSignature) for k in range(n)}
        sig["o"] = Out(DataBusSignature)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        ins = [getattr(self, f"i{k}") for k in range(self.n)]
        o = self.o
        active = Signal()
        cur = Signal(range(max(2, self.n)))
        sel = Signal(range(max(2, self.n)))
        go = Signal()
        # without a grant the first valid initiator is selected, and the last one when none
        # is (its valid is low then): sel depends on the valids of all but the last, so with
        # two initiators each request bit is a 5-input function (a LUT4 pair), not a 6-input
        # one (four LUT4 and an L6MUX) as with "none valid" as a case of its own
        m.d.comb += go.eq(Cat(*[i.valid for i in ins]).any())
        with m.If(active):
            m.d.comb += sel.eq(cur)
        with m.Else():
            m.d.comb += sel.eq(self.n - 1)
            for k in reversed(range(self.n - 1)):
                with m.If(ins[k].valid):
                    m.d.comb += sel.eq(k)
        for f in ("valid", "addr", "size", "we", "wdata", "lock"):
            acc = getattr(ins[-1], f)
            for k in reversed(range(self.n - 1)):
                acc = Mux(sel == k, getattr(ins[k], f), acc)
            m.d.comb += getattr(o, f).eq(acc & (active | go) if f == "valid" else acc)
        for k, i in enumerate(ins):
            # the target (a DualBankRAM) answers two cycles or more after valid, so ready
            # only ever comes while a grant is active: selecting it by the registered grant
            # keeps the initiators' address and valid logic (a helper unit's hash and
            # multiply) out of their own ready
            m.d.comb += i.ready.eq(o.ready & active & (cur == k))
        # read data and err matter only with ready: every initiator sees them ungated
        for i in ins:
            m.d.comb += [i.rdata.eq(o.rdata), i.err.eq(o.err)]
        lock_sel = Signal()
        m.d.comb += lock_sel.eq(Array(i.lock for i in ins)[sel])
        with m.If(~active & go):
            m.d.sync += [active.eq(1), cur.eq(sel)]
        with m.Elif(active):
            with m.If(o.ready & ~lock_sel):
                m.d.sync += active.eq(0)
            with m.Elif(~Array(i.valid for i in ins)[cur] & ~lock_sel):
                m.d.sync += active.eq(0)
        return m
