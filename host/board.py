"""The `board` target: an XDP engine behind its control port, a real FPGA (``--device
/dev/ttyUSB1``, ``udp://HOST``) or the simulated board (``socket://HOST:PORT``, `bpfpga
sim-board`); and the `rtl` target, which is this same target on an engine of its own in
Verilator (sim/rtl_xdp_build.py starts it). One loader for both: host/device.py ``install``.

    t = BoardTarget(obj, url="socket://127.0.0.1:PORT")   # or rtl_target(obj)
    r = t.run(packet)           # XdpResult with cycles (the core's, start to verdict)

Packets run one at a time in ``run`` (so per-CPU values land on core 0, as the kernel's land
on CPU 0 under ``bpfpga diff``); ``run_batch`` streams many through the rings. The target
turns the engine's CAPTURE mode on (every result to the output ring, where it reads them) and
sets CTRL back as it found it when closed.
"""
from __future__ import annotations

import contextlib

from bpfpga import isa, memmap
from bpfpga.errors import TargetError
from bpfpga.obj import BpfObject, refuse_frozen_write
from bpfpga.target import Target, XdpContext, XdpResult

M32 = 0xFFFF_FFFF


class BoardTarget(Target):
    name = "board"

    def __init__(self, obj: BpfObject, prog: str | None = None, url: str | None = None,
                 budget: int = memmap.INSN_BUDGET, sim=None, timeout: float = 60.0, **_):
        from bpfpga.hdl import control as C
        from bpfpga.host.device import Device, install
        import os
        if sim is None:
            url = url or os.environ.get("BPFPGA_DEVICE")
        if url is None and sim is None:
            raise TargetError("the board target needs --device URL (or $BPFPGA_DEVICE)")
        self.sim = sim
        self.dev = None
        self._ctrl = None
        try:
            self.dev = dev = Device(url or sim.url, timeout=timeout)
            self.ncpus = dev.cores
            self._ctrl = dev.reg(C.R_CTRL) & (C.CTRL_ENABLE | C.CTRL_CAPTURE)
            # the target owns the engine for its run: an object that does not fit beside the
            # running one replaces it
            self.ld = install(dev, obj, prog, budget=budget, replace=True)
            self.obj, self.entry = self.ld.obj, self.ld.entry
            self.maps, self.prog_no, self.spans = self.ld.maps, self.ld.prog_no, self.ld.spans
            self.image = self.ld.image
            dev.control(enable=True, capture=True)
            self.traces = any(6 in p.helpers for p in self.obj.programs)   # trace_printk
            if self.traces and dev.trace_depth:
                dev.trace_records()             # lines of an earlier program are not ours
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
        with self.dev.paused():
            return fn()

    @contextlib.contextmanager
    def batch(self):
        """Many map operations under one pause of the engine (host/targets.py apply_maps)."""
        with self.dev.paused():
            self._batch = getattr(self, "_batch", 0) + 1
            try:
                yield
            finally:
                self._batch -= 1

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
        from bpfpga.compiler.link import program_pc
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
            if self.sim is None and self._ctrl is not None:
                with contextlib.suppress(Exception):
                    from bpfpga.hdl import control as C
                    dev.control(enable=bool(self._ctrl & C.CTRL_ENABLE),
                                capture=bool(self._ctrl & C.CTRL_CAPTURE))
            with contextlib.suppress(Exception):
                dev.close()
            self.dev = None
        if getattr(self, "sim", None) is not None:
            self.sim.close()
            self.sim = None


class RtlTarget(BoardTarget):
    """The `rtl` target: the board target on an engine in Verilator, one of its own (a new
    simulation, closed with the target) or a running one (``url``)."""
    name = "rtl"

    def __init__(self, obj: BpfObject, prog: str | None = None, url: str | None = None,
                 budget: int = memmap.INSN_BUDGET, **kw):
        sim = None
        if url is None:
            from bpfpga.sim.rtl_xdp_build import Simulation
            sim = Simulation()          # closed by close(), also when __init__ fails
        super().__init__(obj, prog, url=url, budget=budget, sim=sim, **kw)
