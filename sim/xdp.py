"""XDP on the reference machine: the `ref` target.

The packet sits in a buffer of one 4 KiB frame (frames the kernel and the engine refuse are
refused here too: sim/frame.py) with 256 bytes of headroom (XDP_PACKET_HEADROOM) and the kernel's 320-byte tailroom, at memmap.PKT_BASE; the
`xdp_md` context at memmap.CTX_BASE; map values in the map window as linked by
compiler/link.py. Helpers follow the kernel's semantics (net/core/filter.c, kernel/bpf/).
"""
from __future__ import annotations

import os
import struct

from bpfpga import isa, memmap, traps
from bpfpga.errors import Fault, LoadError, TargetError
from bpfpga.hostinfo import possible_cpus
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_DEVMAP,
                        BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_HASH_OF_MAPS,
                        BPF_MAP_TYPE_PROG_ARRAY, BPF_F_BROADCAST, REDIRECT_ACTION_MASK,
                        REDIRECT_MAP_FLAGS, BpfObject, refuse_frozen_write)
from bpfpga.target import Target, XdpContext, XdpResult

from . import maps as M
from .frame import ETH_HLEN, MAX_FRAME, check_frame, frame_refusal
from .ref import Machine, Memory, Window

FRAME = 4096
TAILROOM = 320            # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
XDP_FRAME_SIZE = 40       # sizeof(struct xdp_frame): kept free at the buffer start
ETH_HLEN = 14
MAX_TAIL_CALLS = 33
M64 = (1 << 64) - 1

# helper ids (enum bpf_func_id)
H_MAP_LOOKUP, H_MAP_UPDATE, H_MAP_DELETE = 1, 2, 3
H_KTIME, H_TRACE_PRINTK, H_PRANDOM, H_SMP_ID = 5, 6, 7, 8
H_TAIL_CALL, H_REDIRECT, H_CSUM_DIFF = 12, 23, 28
H_ADJUST_HEAD, H_REDIRECT_MAP, H_ADJUST_META, H_ADJUST_TAIL = 44, 51, 54, 65
H_KTIME_BOOT = 125
H_XDP_GET_BUFF_LEN, H_XDP_LOAD_BYTES, H_XDP_STORE_BYTES = 188, 189, 190


class _TailCall(Exception):
    def __init__(self, prog: str):
        self.prog = prog


def csum_partial(data: bytes, seed: int) -> int:
    """The kernel's csum_partial for 4-byte multiples: a 64-bit ones'-complement sum of
    little-endian 32-bit words, folded to 32 bits with end-around carry."""
    s = seed & 0xFFFFFFFF
    for (w,) in struct.iter_unpack("<I", data):
        s += w
    while s >> 32:
        s = (s & 0xFFFFFFFF) + (s >> 32)
    return s


def csum_add(a: int, b: int) -> int:
    s = a + b
    return (s + (s >> 32)) & 0xFFFFFFFF


def csum_from32to16(s: int) -> int:
    s = (s + (((s >> 16) | (s << 16)) & 0xFFFFFFFF)) & 0xFFFFFFFF
    return s >> 16


def csum_diff(frm: bytes, to: bytes, seed: int) -> int:
    """bpf_csum_diff's result for checked buffers (4-byte multiples, at most 512 bytes)."""
    ret = seed & 0xFFFFFFFF
    if frm and to:
        ret = csum_add(csum_partial(to, ret), ~csum_partial(frm, 0) & 0xFFFFFFFF)
    elif to:
        ret = csum_partial(to, ret)
    elif frm:
        ret = ~csum_partial(frm, ~ret & 0xFFFFFFFF) & 0xFFFFFFFF
    return csum_from32to16(ret)


class XdpRef(Target):
    name = "ref"
    traces_insns = True
    max_frame = MAX_FRAME     # the frames the kernel and the engine run (sim/frame.py)
    SUPPORTED = {
        H_MAP_LOOKUP: "map_lookup_elem", H_MAP_UPDATE: "map_update_elem",
        H_MAP_DELETE: "map_delete_elem", H_KTIME: "ktime_get_ns",
        H_TRACE_PRINTK: "trace_printk", H_PRANDOM: "get_prandom_u32",
        H_SMP_ID: "get_smp_processor_id", H_TAIL_CALL: "tail_call", H_REDIRECT: "redirect",
        H_CSUM_DIFF: "csum_diff", H_ADJUST_HEAD: "xdp_adjust_head",
        H_REDIRECT_MAP: "redirect_map", H_ADJUST_META: "xdp_adjust_meta",
        H_ADJUST_TAIL: "xdp_adjust_tail", H_KTIME_BOOT: "ktime_get_boot_ns",
        H_XDP_GET_BUFF_LEN: "xdp_get_buff_len", H_XDP_LOAD_BYTES: "xdp_load_bytes",
        H_XDP_STORE_BYTES: "xdp_store_bytes",
    }

    def __init__(self, obj: BpfObject, prog: str | None = None, ncpus: int | None = None,
                 cpu: int = 0, budget: int = memmap.INSN_BUDGET, map_size: int = memmap.MAP_SIZE,
                 clock_base: int = 1_000_000_000, seed: int = 0x2545F491,
                 clock_gap=None):
        from bpfpga.compiler.link import layout, resolve_lddw
        from bpfpga.compiler.select import xdp_view
        from bpfpga.compiler.check import check_readonly
        self.obj = obj = xdp_view(obj)
        try:
            self.entry = obj.program(prog)
        except (KeyError, IndexError):
            raise LoadError(f"{obj.path}: {obj.program_choices(prog)}") from None
        self.ncpus = ncpus or possible_cpus()
        self.cpu = cpu
        self.budget = budget
        self.image = layout(obj, self.ncpus, map_size)
        self.mapmem = bytearray(self.image.size)
        self.maps = [M.make_map(r, self.mapmem, self.ncpus) for r in self.image.regions]
        self.by_name = {m.md.name: m for m in self.maps}
        self._resolve = lambda ins, pc: resolve_lddw(self.image, ins, pc)
        self.memory = Memory()
        self.memory.add(Window("map", memmap.MAP_BASE, self.mapmem))
        self.ctx_buf = bytearray(24)
        self.memory.add(Window("ctx", memmap.CTX_BASE, self.ctx_buf, writable=False))
        self.pkt = bytearray(FRAME)
        self.pkt_win = self.memory.add(Window("packet", memmap.PKT_BASE, self.pkt))
        self.machines: dict[str, Machine] = {}
        self.helpers = {h: getattr(self, "_h_" + n) for h, n in self.SUPPORTED.items()}
        self.clock_ns = clock_base
        # ns the clock advances before each packet: a constant or a function of no arguments
        # (the diff's oracles vary it: docs/xdp.md)
        self.clock_gap = clock_gap if clock_gap is not None else 1000
        self.rng = (seed & 0xFFFFFFFF) or 1
        self.trace_lines: list[str] = []
        check_readonly(obj, self.entry)
        self._init_maps()
        self._check_helpers(self.entry)
        self.machine(self.entry.name)

    NONDETERMINISTIC = {H_KTIME, H_PRANDOM, H_KTIME_BOOT}

    def nondeterministic(self) -> bool:
        """True when a program of the object calls a helper whose values no other target can
        reproduce (ktime_get_ns, ktime_get_boot_ns, get_prandom_u32)."""
        return any(set(p.helpers) & self.NONDETERMINISTIC for p in self.obj.programs)

    # ---------------------------------------------------------------- setup
    def _check_helpers(self, prog) -> None:
        from bpfpga.helpers import HELPER_NAMES
        for h in prog.helpers:
            if h not in self.SUPPORTED:
                raise LoadError(f"{self.obj.path}: program '{prog.name}' calls helper "
                                f"bpf_{HELPER_NAMES.get(h, str(h))} ({h}), which bpfpga does "
                                f"not support")

    def machine(self, name: str) -> Machine:
        m = self.machines.get(name)
        if m is None:
            prog = self.obj.program(name)
            self._check_helpers(prog)
            m = Machine(prog.insns, self.helpers, strict=True, memory=self.memory,
                        budget=self.budget, resolve_lddw=self._resolve)
            self.machines[name] = m
        return m

    def _init_maps(self) -> None:
        for m in self.maps:
            md = m.md
            if md.data is not None:
                m.update(b"\0\0\0\0", bytes(md.data).ljust(md.value_size, b"\0"))
            for idx, target in md.init_slots.items():
                key = int(idx).to_bytes(4, "little")
                if md.type == BPF_MAP_TYPE_PROG_ARRAY:
                    self.obj.program(target)   # KeyError -> bad object
                    m.update(key, ("prog", target))
                else:
                    m.update(key, ("map", target))

    # ---------------------------------------------------------------- maps (host side)
    def _map(self, name: str) -> M.BaseMap:
        m = self.by_name.get(name)
        if m is None:
            raise TargetError(f"no map named '{name}' (maps: {', '.join(self.by_name)})")
        return m

    def map_lookup(self, name, key):
        m = self._map(name)
        try:
            v = m.lookup(key)
        except M.MapError as e:
            raise TargetError(str(e)) from None
        return self._host_value(m, v)

    def _host_value(self, m, v):
        if isinstance(v, tuple):
            kind, what = v
            if kind == "prog":
                return what
            if kind == "map":
                return what
        return v

    def map_update(self, name, key, value, flags=0):
        m = self._map(name)
        refuse_frozen_write(m.md)
        if isinstance(m, M.SlotMap):
            value = self._slot_value(m, value)
        try:
            m.update(key, value, flags)
        except M.MapError as e:
            raise TargetError(str(e)) from None

    def _slot_value(self, m, value):
        md = m.md
        if isinstance(value, tuple):
            kind, what = value
        elif isinstance(value, str):
            kind = "prog" if md.type == BPF_MAP_TYPE_PROG_ARRAY else "map"
            what = value
        else:
            if md.type in (BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH):
                return ("dev", bytes(value))
            raise TargetError(f"map '{md.name}': slots take a program or map name")
        if kind == "prog":
            from bpfpga.compiler.check import check_readonly
            check_readonly(self.obj, progs=[self.obj.program(what)])
        elif kind == "map" and what not in self.by_name:
            raise TargetError(f"map '{md.name}': no inner map named '{what}'")
        return (kind, what)

    def map_delete(self, name, key):
        try:
            self._map(name).delete(key)
        except M.MapError as e:
            raise TargetError(str(e)) from None

    def map_dump(self, name):
        m = self._map(name)
        return [(k, self._host_value(m, v)) for k, v in m.dump()]

    def map_names(self) -> list[str]:
        return list(self.by_name)

    # ---------------------------------------------------------------- running
    def _set_ctx(self) -> None:
        struct.pack_into("<IIIIII", self.ctx_buf, 0, self.data & 0xFFFFFFFF,
                         self.data_end & 0xFFFFFFFF, self.data_meta & 0xFFFFFFFF,
                         self.ifindex, self.rxq, 0)
        self.pkt_win.lo = self.data_meta
        self.pkt_win.hi = self.data_end

    def refuses(self, packet: bytes) -> str | None:
        """The frames the kernel and the engine refuse (sim/frame.py), by reason."""
        if frame_refusal(len(packet), self.max_frame) is None:
            return None
        if len(packet) < ETH_HLEN:
            return f"frames shorter than {ETH_HLEN} bytes: ref refuses them, as the kernel " \
                   f"and the engine"
        return f"frames longer than {self.max_frame} bytes: ref refuses them, as the " \
               f"kernel and the engine (no frags)"

    def run(self, packet: bytes, ctx: XdpContext | None = None, trace=None) -> XdpResult:
        ctx = ctx or XdpContext()
        if self.refuses(packet) is not None:
            check_frame(packet, self.max_frame)
        size = max(FRAME, memmap.PKT_HEADROOM + len(packet) + TAILROOM)
        if size > memmap.PKT_SIZE:
            raise TargetError(f"packet of {len(packet)} bytes does not fit the packet buffer")
        self.pkt = bytearray(size)
        self.pkt_win.buf = self.pkt
        self.hard_end = memmap.PKT_BASE + size - TAILROOM
        self.data = memmap.PKT_BASE + memmap.PKT_HEADROOM
        self.pkt[memmap.PKT_HEADROOM:memmap.PKT_HEADROOM + len(packet)] = packet
        self.data_end = self.data + len(packet)
        self.data_meta = self.data
        self.ifindex = ctx.ingress_ifindex
        self.rxq = ctx.rx_queue_index
        self._set_ctx()
        self.redirect = None
        self.tail_calls = 0
        self.trace_lines = []
        # nothing crosses packets: a read of stack this packet did not write gives zeros (as
        # on the engine, which zeroes what a run wrote while the packet leaves); headroom and
        # tailroom are zeros too (a new buffer above)
        for mm in self.machines.values():
            mm.stack_buf[:] = bytes(len(mm.stack_buf))
        gap = self.clock_gap
        self.clock_ns = (self.clock_ns + (gap() if callable(gap) else gap)) & ((1 << 64) - 1)
        name = self.entry.name
        budget = self.budget
        total = 0
        executed = []
        while True:
            m = self.machine(name)
            m.trace_hook = (lambda pc, n=name: executed.append((n, pc))) if trace is not None else None
            try:
                res = m.run(memmap.CTX_BASE, 0, budget=budget - total)
            except _TailCall as tc:
                # the tail call replaces the running program; the count includes the call
                total += getattr(m, "_n_at_tail", 0)
                name = tc.prog
                continue
            total += res.insns
            break
        if trace is not None:
            trace.extend(executed)
        out = bytes(self.pkt[self.data_meta - memmap.PKT_BASE:self.data_end - memmap.PKT_BASE])
        if res.trap:
            return XdpResult(isa.XDP_ABORTED, out, res.r0, res.trap, res.trap_pc,
                             insns=total, trace=list(self.trace_lines))
        ret = res.r0 & 0xFFFFFFFF
        return XdpResult(ret if ret <= isa.XDP_REDIRECT else isa.XDP_ABORTED, out, ret,
                         redirect=self.redirect if ret == isa.XDP_REDIRECT else None,
                         insns=total, trace=list(self.trace_lines))

    # ---------------------------------------------------------------- helpers
    def _handle_map(self, m: Machine, addr: int) -> M.BaseMap:
        n = memmap.handle_index(addr)
        if n is None or n >= len(self.maps):
            raise Fault(traps.TRAP_HELPER_FAULT, m.pc, f"0x{addr:x} is not a map")
        return self.maps[n]

    def _h_map_lookup_elem(self, m: Machine) -> int:
        mp = self._handle_map(m, m.r[1])
        key = m.mem.read_bytes(m.r[2], mp.key_size, m.pc)
        if isinstance(mp, M.SlotMap):
            v = mp.get(key)
            if v is None:
                return 0
            kind, what = v
            if kind == "map":
                return self.by_name[what].region.handle
            if kind == "dev":
                slot = int.from_bytes(key[:4], "little")
                return mp.region.value_addr(slot)
            return 0
        return mp.prog_lookup(key, self.cpu)

    def _h_map_update_elem(self, m: Machine) -> int:
        mp = self._handle_map(m, m.r[1])
        key = m.mem.read_bytes(m.r[2], mp.key_size, m.pc)
        if isinstance(mp, M.SlotMap):
            return -M.EINVAL
        val = m.mem.read_bytes(m.r[3], mp.value_size, m.pc)
        return mp.prog_update(key, val, m.r[4], self.cpu)

    def _h_map_delete_elem(self, m: Machine) -> int:
        mp = self._handle_map(m, m.r[1])
        key = m.mem.read_bytes(m.r[2], mp.key_size, m.pc)
        if isinstance(mp, M.SlotMap):
            return -M.EINVAL
        return mp.prog_delete(key)

    def _h_ktime_get_ns(self, m: Machine) -> int:
        self.clock_ns += 1
        return self.clock_ns

    _h_ktime_get_boot_ns = _h_ktime_get_ns

    def _h_get_prandom_u32(self, m: Machine) -> int:
        x = self.rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.rng = x
        return x

    def _h_get_smp_processor_id(self, m: Machine) -> int:
        return self.cpu

    def _h_trace_printk(self, m: Machine) -> int:
        from bpfpga.printk import STR_MAX, bprintf
        size = m.r[2] & 0xFFFFFFFF
        if size == 0 or size > 4096:
            return -M.EINVAL
        raw = m.mem.read_bytes(m.r[1], size, m.pc)

        def read_str(a):
            s = bytearray()
            try:
                while len(s) < STR_MAX:
                    b = m.mem.read_bytes(a + len(s), 1, m.pc)
                    if b == b"\0":
                        break
                    s += b
            except Fault:
                return b""          # the kernel prints an unreadable string as empty
            return bytes(s)

        text = bprintf(raw, [m.r[3], m.r[4], m.r[5]], read_str)
        if text is None:
            return -M.EINVAL
        self.trace_lines.append(text)
        return len(text)

    def _h_tail_call(self, m: Machine) -> int:
        mp = self._handle_map(m, m.r[2])
        if mp.md.type != BPF_MAP_TYPE_PROG_ARRAY:
            raise Fault(traps.TRAP_HELPER_FAULT, m.pc, "tail call through a non-PROG_ARRAY")
        idx = m.r[3] & 0xFFFFFFFF
        if idx >= mp.max_entries or self.tail_calls >= MAX_TAIL_CALLS:
            return m.r[0]
        v = mp.get(idx.to_bytes(4, "little"))
        if v is None:
            return m.r[0]
        self.tail_calls += 1
        raise _TailCall(v[1])

    def _h_redirect(self, m: Machine) -> int:
        if m.r[2]:
            return isa.XDP_ABORTED
        self.redirect = m.r[1] & 0xFFFFFFFF
        return isa.XDP_REDIRECT

    def _h_redirect_map(self, m: Machine) -> int:
        # the kernel's __bpf_xdp_redirect_map: flags beyond the low two bits (the verdict on
        # a missing key) and the map type's own are XDP_ABORTED; with BPF_F_BROADCAST the
        # verdict is REDIRECT whether the key exists or not (the frame goes to every device
        # of the map, not to one: self.redirect is 0)
        mp = self._handle_map(m, m.r[1])
        flags = m.r[3]
        if flags & ~(REDIRECT_ACTION_MASK | REDIRECT_MAP_FLAGS.get(mp.md.type, 0)):
            return isa.XDP_ABORTED
        key = (m.r[2] & 0xFFFFFFFF).to_bytes(4, "little")
        if mp.md.type in (BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH):
            v = mp.get(key[:mp.key_size].ljust(mp.key_size, b"\0"))
            if flags & BPF_F_BROADCAST:
                self.redirect = 0
                return isa.XDP_REDIRECT
            if v is None:
                return flags & REDIRECT_ACTION_MASK
            self.redirect = int.from_bytes(v[1][:4], "little")
            return isa.XDP_REDIRECT
        return flags & REDIRECT_ACTION_MASK

    def _h_csum_diff(self, m: Machine) -> int:
        # Linux >= 6.12 (commit "bpf: Fix bpf_csum_diff's return value") folds the result
        # to 16 bits the same way on every architecture; this mirrors that code.
        fsz, tsz = m.r[2] & 0xFFFFFFFF, m.r[4] & 0xFFFFFFFF
        if (fsz | tsz) & 3 or fsz + tsz > 512:
            return -M.EINVAL
        frm = m.mem.read_bytes(m.r[1], fsz, m.pc) if fsz else b""
        to = m.mem.read_bytes(m.r[3], tsz, m.pc) if tsz else b""
        return csum_diff(frm, to, m.r[5])

    def _h_xdp_adjust_head(self, m: Machine) -> int:
        delta = isa.s32(m.r[2])
        metalen = self.data - self.data_meta
        data = self.data + delta
        frame_end = memmap.PKT_BASE + metalen + XDP_FRAME_SIZE
        if data < frame_end or data > self.data_end - ETH_HLEN:
            return -M.EINVAL
        if metalen:
            o = self.data_meta - memmap.PKT_BASE
            meta = bytes(self.pkt[o:o + metalen])
            self.pkt[o + delta:o + delta + metalen] = meta
        self.data_meta += delta
        self.data = data
        self._set_ctx()
        return 0

    def _h_xdp_adjust_meta(self, m: Machine) -> int:
        delta = isa.s32(m.r[2])
        meta = self.data_meta + delta
        metalen = self.data - meta
        if meta < memmap.PKT_BASE + XDP_FRAME_SIZE or meta > self.data:
            return -M.EINVAL
        if metalen & 3 or metalen > 32:
            return -13    # EACCES
        self.data_meta = meta
        self._set_ctx()
        return 0

    def _h_xdp_adjust_tail(self, m: Machine) -> int:
        offset = isa.s32(m.r[2])
        end = self.data_end + offset
        if end > self.hard_end or end < self.data + ETH_HLEN:
            return -M.EINVAL
        if offset > 0:
            o = self.data_end - memmap.PKT_BASE
            self.pkt[o:o + offset] = bytes(offset)
        self.data_end = end
        self._set_ctx()
        return 0

    def _h_xdp_get_buff_len(self, m: Machine) -> int:
        return self.data_end - self.data

    def _h_xdp_load_bytes(self, m: Machine) -> int:
        off, n = m.r[2] & 0xFFFFFFFF, m.r[4] & 0xFFFFFFFF
        if off + n > self.data_end - self.data or n == 0:
            return -M.EINVAL
        src = self.data - memmap.PKT_BASE + off
        m.mem.write_bytes(m.r[3], bytes(self.pkt[src:src + n]), m.pc)
        return 0

    def _h_xdp_store_bytes(self, m: Machine) -> int:
        off, n = m.r[2] & 0xFFFFFFFF, m.r[4] & 0xFFFFFFFF
        if off + n > self.data_end - self.data or n == 0:
            return -M.EINVAL
        data = m.mem.read_bytes(m.r[3], n, m.pc)
        dst = self.data - memmap.PKT_BASE + off
        self.pkt[dst:dst + n] = data
        return 0
