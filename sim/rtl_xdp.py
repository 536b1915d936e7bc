"""The `rtl` XDP target: the engine of hdl/xdp.py in Verilator, driven through its control
port exactly as a board is (host/device.py over the LiteX UART-bridge protocol, here on a
TCP socket served by the cocotb bench sim/cocotb_xdp.py).

    t = XdpRtl(obj)             # builds the model once per HDL hash, starts a simulation
    r = t.run(packet)           # XdpResult with cycles (the core's, start to verdict)

Packets run one at a time in ``run`` (so per-CPU values land on core 0, as the kernel's land
on CPU 0 under ``bpfpga diff``); ``run_batch`` streams many through the rings.
"""
from __future__ import annotations

import struct

from bpfpga import isa, memmap
from bpfpga.errors import LoadError, TargetError
from bpfpga.obj import MAP_IN_MAP_TYPES, BPF_MAP_TYPE_PROG_ARRAY, BpfObject, refuse_frozen_write
from bpfpga.target import Target, XdpContext, XdpResult

M32 = 0xFFFF_FFFF


def _slot(op, dst=0, src=0, off=0, imm=0) -> bytes:
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


def link_image(obj: BpfObject, entry, img) -> tuple[bytes, dict[str, int], list]:
    """Every program of the object in one image: the trampoline slot, the entry program, the
    others, the tail-call table. Returns (code, program number by name, [(start, end, name)])."""
    from bpfpga.compiler.link import resolve_lddw
    progs = [entry] + [p for p in obj.programs if p is not entry]
    starts = []
    body = bytearray()
    pos = 1
    for p in progs:
        code = bytearray(p.insns)
        i = 0
        n = len(code) // 8
        while i < n:
            op = code[8 * i]
            if op == 0x18 and i + 1 < n:
                src = code[8 * i + 1] >> 4
                if src in (isa.BPF_PSEUDO_MAP_IDX, isa.BPF_PSEUDO_MAP_IDX_VALUE):
                    lo = struct.unpack_from("<I", code, 8 * i + 4)[0]
                    hi = struct.unpack_from("<I", code, 8 * i + 12)[0]
                    ins = isa.Insn(op, code[8 * i + 1] & 0xF, src, 0, lo | hi << 32)
                    try:
                        v = resolve_lddw(img, ins, i)
                    except LoadError as e:
                        raise LoadError(f"{obj.path}: program '{p.name}': {e}") from None
                    code[8 * i + 1] &= 0x0F
                    struct.pack_into("<I", code, 8 * i + 4, v & M32)
                    struct.pack_into("<I", code, 8 * i + 12, v >> 32)
                i += 2
                continue
            i += 1
        starts.append((pos, pos + n, p.name))
        body += code
        pos += n
    table = pos
    tab = bytearray()
    for k, (s, _, _) in enumerate(starts):
        pc = table + k
        tab += _slot(0x15, dst=2, off=s - (pc + 1), imm=k + 1)       # jeq r2, k+1, entry_k
    tab += _slot(0xB7, dst=0, imm=0) + _slot(0x95)
    code = _slot(0x55, dst=2, off=table - 1, imm=0) + bytes(body) + bytes(tab)  # jne r2, 0
    return code, {name: k for k, (_, _, name) in enumerate(starts)}, starts


def program_pc(spans, pc: int) -> tuple[str | None, int]:
    """A pc of the engine's image (link_image's spans: first slot, end, program name) as
    (program, pc in that program); (None, pc) for a pc in the trampoline."""
    for s, e, name in spans:
        if s <= pc < e:
            return name, pc - s
    return None, pc


class XdpRtl(Target):
    name = "rtl"

    def __init__(self, obj: BpfObject, prog: str | None = None, url: str | None = None,
                 budget: int = memmap.INSN_BUDGET, **_):
        from bpfpga.compiler.link import hw_descriptor, hw_layout
        from bpfpga.hdl import control as C
        from bpfpga.host.device import Device, DeviceMap, check_capabilities
        from bpfpga.compiler.select import xdp_view
        from bpfpga.compiler.check import check_readonly
        self.obj = obj = xdp_view(obj)
        try:
            self.entry = obj.program(prog)
        except (KeyError, IndexError):
            raise LoadError(f"{obj.path}: {obj.program_choices(prog)}") from None
        check_readonly(obj, self.entry)
        self.sim = None
        if url is None:
            from bpfpga.sim.rtl_xdp_build import Simulation
            self.sim = Simulation()
            url = self.sim.url
        try:
            self.dev = dev = Device(url)
            self.ncpus = dev.cores
            check_capabilities(dev, obj)
            self.image, self.map_len = hw_layout(obj, dev.cores, dev.map_bytes)
            code, self.prog_no, self.spans = link_image(obj, self.entry, self.image)
            dev.pause()
            dev.control(capture=True, clear=True)
            dev.set_descriptors([hw_descriptor(r) for r in self.image.regions], self.map_len)
            dev.clear_map_memory(self.image.size)
            dev.set_reg(C.R_BUDGET, budget)
            self.maps = {r.md.name: DeviceMap(dev, r, dev.cores) for r in self.image.regions}
            for r in self.image.regions:
                md = r.md
                if md.data is not None:
                    self.maps[md.name].update(b"\0\0\0\0", bytes(md.data).ljust(
                        md.value_size, b"\0")[:md.value_size])
                for idx, target in md.init_slots.items():
                    key = int(idx).to_bytes(4, "little")
                    if md.type == BPF_MAP_TYPE_PROG_ARRAY:
                        self.set_prog_slot(md.name, int(idx), target)
                    elif md.type in MAP_IN_MAP_TYPES:
                        self.set_inner_map(md.name, key, target)
            dev.load_program(code)
            self.traces = any(6 in p.helpers for p in obj.programs)   # trace_printk
            if self.traces and dev.trace_depth:
                dev.trace_records()             # lines of an earlier program are not ours
            dev.resume()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ maps
    def _map(self, name):
        m = self.maps.get(name)
        if m is None:
            raise TargetError(f"no map named '{name}' (maps: {', '.join(self.maps)})")
        return m

    def _paused(self, fn):
        if getattr(self, "_batch", 0):
            return fn()
        self.dev.pause()
        try:
            return fn()
        finally:
            self.dev.resume()

    def batch(self):
        """Many map operations under one pause of the engine (host/targets.py apply_maps)."""
        import contextlib

        @contextlib.contextmanager
        def held():
            self.dev.pause()
            self._batch = getattr(self, "_batch", 0) + 1
            try:
                yield
            finally:
                self._batch -= 1
                self.dev.resume()
        return held()

    def set_prog_slot(self, name: str, idx: int, prog: str) -> None:
        if prog not in self.prog_no:
            raise TargetError(f"map '{name}': no program '{prog}'")
        from bpfpga.compiler.check import check_readonly
        check_readonly(self.obj, progs=[self.obj.program(prog)])
        self._paused(lambda: self._map(name).update(idx.to_bytes(4, "little"),
                                                    self.prog_no[prog] + 1))

    def set_inner_map(self, name: str, key: bytes, inner: str) -> None:
        h = self.image.region(inner).handle
        self._paused(lambda: self._map(name).update(key, h))

    def map_lookup(self, name, key):
        return self._paused(lambda: self._map(name).lookup(key))

    def map_update(self, name, key, value, flags=0):
        refuse_frozen_write(self._map(name).md)
        if isinstance(value, tuple) and value and value[0] == "prog":
            return self.set_prog_slot(name, int.from_bytes(key[:4], "little"), value[1])
        if isinstance(value, tuple) and value and value[0] == "map":
            return self.set_inner_map(name, key, value[1])
        return self._paused(lambda: self._map(name).update(key, value, flags))

    def map_delete(self, name, key):
        return self._paused(lambda: self._map(name).delete(key))

    def map_dump(self, name):
        return self._paused(lambda: self._map(name).dump())

    def map_names(self):
        return list(self.maps)

    def counters(self) -> list[int]:
        return self.dev.counters()

    # ------------------------------------------------------------------ packets
    def refuses(self, packet: bytes) -> str | None:
        if len(packet) < 14:
            return "runt frames (< 14 bytes): the engine drops them (counted)"
        if len(packet) > self.dev.pkt_bytes - 256 - 320:
            return (f"frames over {self.dev.pkt_bytes - 256 - 320} bytes exceed the packet "
                    f"buffer: the engine drops them (counted)")
        return None

    def _check(self, packet: bytes) -> None:
        why = self.refuses(packet)
        if why:
            raise TargetError(f"frame of {len(packet)} bytes: {why}")

    def _result(self, rec) -> XdpResult:
        trap = rec["trap"]
        insns = rec["insns"]
        if trap:
            pc = program_pc(self.spans, rec["trap_pc"])[1]
            return XdpResult(isa.XDP_ABORTED, rec["packet"], rec["r0"], trap, pc,
                             cycles=rec["cycles"], insns=insns)
        ret = rec["r0"] & M32
        v = ret if ret <= isa.XDP_REDIRECT else isa.XDP_ABORTED
        return XdpResult(v, rec["packet"], ret,
                         redirect=rec["redirect"] if v == isa.XDP_REDIRECT else None,
                         cycles=rec["cycles"], insns=insns)

    def _traces(self, recs: list, results: list) -> None:
        """trace_printk lines, read from the trace FIFO, to the results of their frames."""
        if not (self.traces and self.dev.trace_depth):
            return
        by_seq = {}
        for t in self.dev.trace_records():
            by_seq.setdefault(t["seq"], []).append(self.dev.trace_text(t))
        for rec, res in zip(recs, results):
            res.trace = by_seq.get(rec["seq"], [])

    def run(self, packet: bytes, ctx: XdpContext | None = None) -> XdpResult:
        self._check(packet)
        port = (ctx.ingress_ifindex - 1) if ctx else 0
        self.dev.inject([(bytes(packet), port & 0xF)])
        rec = self.dev.results(1)[0]
        res = self._result(rec)
        self._traces([rec], [res])
        return res

    def run_batch(self, packets: list[bytes]) -> list:
        """Many packets, streamed through the inject and output rings (results in order;
        a runt or oversize frame gives a TargetError in its place)."""
        out: list = [None] * len(packets)
        todo = []
        for i, p in enumerate(packets):
            try:
                self._check(p)
                todo.append(i)
            except TargetError as e:
                out[i] = e
        # the engine drops a frame that finds every packet buffer busy (by design: RX never
        # stalls), so the host keeps at most one frame per core in flight
        room = self.dev.out_words // 2
        k = 0
        while k < len(todo):
            batch = []
            words = 0
            while k < len(todo) and len(batch) < self.dev.cores:
                w = 5 + (len(packets[todo[k]]) + 7) // 8
                if batch and (words + w > room or words + w > self.dev.inj_words - 8):
                    break
                batch.append(todo[k])
                words += w
                k += 1
            self.dev.inject([(bytes(packets[i]), 0) for i in batch])
            recs = self.dev.results(len(batch))
            recs.sort(key=lambda r: r["seq"])
            res = [self._result(rec) for rec in recs]
            self._traces(recs, res)
            for i, r in zip(batch, res):
                out[i] = r
        return out

    def close(self) -> None:
        dev = getattr(self, "dev", None)
        if dev is not None:
            try:
                dev.close()
            except Exception:
                pass
            self.dev = None
        if self.sim is not None:
            self.sim.close()
            self.sim = None
