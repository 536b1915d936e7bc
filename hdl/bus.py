"""Ports between the eBPF CPU and what sits around it: data bus, helper port, memories.

Data bus (the CPU is the initiator), Wishbone-classic in spirit:

* the CPU raises ``valid`` with ``addr`` (byte address, 32 bits), ``size`` (log2 of the byte
  count: 0 = 1 byte .. 3 = 8 bytes), ``we`` and ``wdata`` (right-justified), and holds them
  until the target raises ``ready`` for one cycle. A read's ``rdata`` (right-justified, upper
  bytes zero) is valid in that cycle. ``err`` together with ``ready`` ends the access with a
  memory trap (a map engine that finds the address unmapped, say).
* any alignment is allowed: eBPF packet code loads 4 bytes at offset 30 all the time. The
  target handles the crossing of its own word boundary (:class:`DualBankRAM` does).
* ``lock`` stays high over the read and the write of an atomic read-modify-write, so an arbiter
  in front of memory shared by several cores keeps the bus for this core.
* the CPU only starts an access that lies wholly inside a window (it checks the bounds itself),
  so a target never sees an out-of-window address.

Helper port: ``req`` with ``id`` and ``arg1..arg5`` (r1..r5), held until ``ack``; in that
cycle ``r0`` is the helper's return value, ``exit`` ends the program with that r0 (the
conformance suite's helper 5 with r1 == 0), and a non-zero ``trap`` ends it with that reason
code (bpfpga/traps.py; TRAP_HELPER for an id no unit implements).
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

DataBusSignature = wiring.Signature({
    "valid": Out(1),
    "addr": Out(32),
    "size": Out(2),
    "we": Out(1),
    "wdata": Out(64),
    "lock": Out(1),
    "ready": In(1),
    "rdata": In(64),
    "err": In(1),
})

HelperSignature = wiring.Signature({
    "req": Out(1),
    "id": Out(32),
    "arg1": Out(64),
    "arg2": Out(64),
    "arg3": Out(64),
    "arg4": Out(64),
    "arg5": Out(64),
    "ack": In(1),
    "r0": In(64),
    "exit": In(1),
    "trap": In(4),
})

# the host side of a memory, for loading packets and reading results (whole 64-bit words)
HostMemSignature = wiring.Signature({
    "addr": Out(16),        # word index
    "we": Out(8),           # byte enables
    "wdata": Out(64),
    "rdata": In(64),        # one cycle after addr (synchronous read)
})


class DualBankRAM(wiring.Component):
    """Byte-addressed RAM behind a data-bus target port, any alignment, two cycles per access.

    Words of 64 bits alternate between two banks (even words in bank 0, odd in bank 1), so the
    two words an unaligned access touches are read (or written) in the same cycle. Both banks
    are block RAM with synchronous reads: cycle 1 presents the address, cycle 2 returns the
    data and ``ready``; a write is performed from registered address and data in cycle 2, so
    the CPU's bounds check never sits in front of a block RAM write enable.

    ``clear`` zeroes the whole RAM (``depth // 2`` cycles, ``clearing`` high meanwhile): the
    stack of one run must not leak into the next. The host port has priority only when the
    bus is idle; use it while the CPU is stopped.
    """

    def __init__(self, size_bytes: int):
        assert size_bytes % 16 == 0
        self.words = size_bytes // 8
        self.abits = max(1, (self.words - 1).bit_length())
        super().__init__({
            "bus": In(DataBusSignature),
            "host": In(HostMemSignature),
            "clear": In(1),
            "clearing": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        half = self.words // 2
        banks = []
        for i in range(2):
            mem = Memory(shape=unsigned(64), depth=half, init=[])
            m.submodules[f"bank{i}"] = mem
            banks.append((mem.read_port(domain="sync"), mem.write_port(granularity=8)))

        bus = self.bus
        busy = Signal()
        r_addr = Signal(32)
        r_size = Signal(2)
        r_we = Signal()
        r_wdata = Signal(64)
        r_fsh = Signal(3)           # the funnel's byte shift: sh for a read, -sh for a write
        r_host = Signal()
        clr = Signal(range(half + 1))

        # --- cycle 1: latch the request, present read addresses -----------------------
        w = Signal(self.abits + 1)
        m.d.comb += w.eq(Mux(busy, r_addr, bus.addr)[3:3 + self.abits + 1])
        (rp0, wp0), (rp1, wp1) = banks
        m.d.comb += [
            rp0.addr.eq((w + 1) >> 1),
            rp1.addr.eq(w >> 1),
        ]
        # the request registers load whenever the port is idle, so `valid` (late from the
        # initiator's bounds check) drives only `busy`, not some hundred enables
        with m.If(~busy):
            m.d.sync += [r_addr.eq(bus.addr), r_size.eq(bus.size), r_we.eq(bus.we),
                         r_wdata.eq(bus.wdata),
                         r_fsh.eq(Mux(bus.we, -bus.addr[0:3], bus.addr[0:3]))]
        m.d.sync += busy.eq(~busy & bus.valid)

        # --- cycle 2: data back, write performed --------------------------------------------
        rw = r_addr[3:3 + self.abits + 1]
        sh = r_addr[0:3]
        odd = rw[0]
        nbytes_mask = Signal(8)
        with m.Switch(r_size):
            for s in range(4):
                with m.Case(s):
                    m.d.comb += nbytes_mask.eq((1 << (1 << s)) - 1)
        # a write passes its data unmasked
        rmask = Cat(*[(nbytes_mask[i] | r_we).replicate(8) for i in range(8)])
        # One byte funnel shifter serves both directions. A read: byte i of the result is
        # byte i + sh of Cat(first word, next word); the first word is in bank `odd`, the
        # next in bank ~odd. A write: the data rotated left by sh puts every byte where the
        # byte enables of both words want it, and that is byte i + (-sh mod 8) of
        # Cat(wdata, wdata). In three steps (4, 2, 1 bytes), the source choice folded into
        # the first and the size mask into the last (one shifter instead of a read funnel
        # and a write rotator: some 100 LUT4 less a DualBankRAM)
        fsh = r_fsh

        def src_byte(b):
            lo, hi = (rp1.data, rp0.data) if b < 8 else (rp0.data, rp1.data)
            return Mux(r_we, r_wdata.word_select(b % 8, 8),
                       Mux(odd, lo.word_select(b % 8, 8), hi.word_select(b % 8, 8)))
        ya = [Mux(fsh[2], src_byte(j + 4), src_byte(j)) for j in range(11)]
        yb = [Mux(fsh[1], ya[j + 2], ya[j]) for j in range(9)]
        funnel = Signal(64)
        m.d.comb += funnel.eq(Cat(*[Mux(fsh[0], yb[i + 1], yb[i]) for i in range(8)]) & rmask)
        m.d.comb += [bus.ready.eq(busy), bus.rdata.eq(funnel)]
        rot = funnel
        ben = Signal(16)
        m.d.comb += ben.eq(nbytes_mask << sh)
        # the word holding the first byte is rw; it is in bank odd, the next one in bank ~odd
        wen = Signal()
        m.d.comb += wen.eq(busy & r_we)
        host = self.host
        clearing = Signal()
        m.d.comb += clearing.eq(self.clear | (clr != 0))
        # the write data is one two-way choice, not gated by the branch that writes (the
        # enables are): the bus's rotated data while it writes, else the host's
        wdata = Mux(clearing, 0, Mux(wen, rot, host.wdata))
        m.d.comb += [wp0.data.eq(wdata), wp1.data.eq(wdata)]
        with m.If(clearing):
            # zero both banks, one index per cycle
            m.d.comb += [self.clearing.eq(1),
                         wp0.addr.eq(clr), wp1.addr.eq(clr),
                         wp0.en.eq(0xFF), wp1.en.eq(0xFF)]
            m.d.sync += clr.eq(Mux(clr == half - 1, 0, clr + 1))
        with m.Elif(wen):
            m.d.comb += [
                wp0.addr.eq(Mux(odd, (rw >> 1) + 1, rw >> 1)),
                wp1.addr.eq(rw >> 1),
                wp0.en.eq(Mux(odd, ben[8:], ben[:8])),
                wp1.en.eq(Mux(odd, ben[:8], ben[8:])),
            ]
        with m.Elif(~busy & ~bus.valid):
            hodd = host.addr[0]
            m.d.comb += [
                wp0.addr.eq(host.addr >> 1), wp1.addr.eq(host.addr >> 1),
                wp0.en.eq(Mux(hodd, 0, host.we)), wp1.en.eq(Mux(hodd, host.we, 0)),
            ]
        # host reads: when the bus is idle, steer the read addresses to the host's word
        with m.If(~busy & ~bus.valid):
            m.d.comb += [rp0.addr.eq(host.addr >> 1), rp1.addr.eq(host.addr >> 1)]
        m.d.sync += r_host.eq(host.addr[0])
        m.d.comb += host.rdata.eq(Mux(r_host, rp1.data, rp0.data))
        return m


def _or(values):
    acc = values[0]
    for v in values[1:]:
        acc = acc | v
    return acc


class WindowRouter(wiring.Component):
    """Routes one data bus to per-window targets by the top four address bits.

    ``targets`` maps the nibble (addr >> 28) to a name; each name becomes an initiator port.
    An access to a nibble without a target ends with ``err`` one cycle after ``valid`` (the
    CPU's bounds check normally stops it before).
    """

    def __init__(self, targets: dict[int, str]):
        self.targets = dict(targets)
        sig = {"bus": In(DataBusSignature)}
        for name in self.targets.values():
            sig[name] = Out(DataBusSignature)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        nib = bus.addr[28:32]
        # every target answers two cycles or more after valid and the initiator holds the
        # address meanwhile, so the answer is selected by last cycle's nibble: no path from
        # the initiator's address logic into its own ready and read data
        # (one registered select per target, and an AND-OR: a target's answer matters only
        # with its ready, so no priority mux is needed)
        rdata, ready, err, sels = [], [], [], []
        for n, name in self.targets.items():
            t = getattr(self, name)
            m.d.comb += [t.addr.eq(bus.addr), t.size.eq(bus.size), t.we.eq(bus.we),
                         t.wdata.eq(bus.wdata), t.lock.eq(bus.lock),
                         t.valid.eq(bus.valid & (nib == n))]
            sel = Signal(name=f"sel_{name}")
            m.d.sync += sel.eq(nib == n)
            sels.append(sel)
            rdata.append(t.rdata & sel.replicate(64))
            ready.append(t.ready & sel)
            err.append(t.err & sel)
        hit = Signal()
        m.d.comb += [hit.eq(Cat(*sels).any()), bus.rdata.eq(_or(rdata)),
                     bus.ready.eq(_or(ready)), bus.err.eq(_or(err))]
        # no target: err, one cycle later (registered, so that no path runs from the
        # initiator's valid back into its own ready)
        nohit = Signal()
        m.d.sync += nohit.eq(bus.valid & ~nohit &
                             ~Cat(*[nib == n for n in self.targets]).any())
        with m.If(~hit):
            m.d.comb += [bus.ready.eq(nohit), bus.err.eq(1)]
        return m
