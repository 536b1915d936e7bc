"""A cocotb bench of the XDP engine for users' own tests (docs/bench.md).

Write a cocotb test module against the engine's default model, and run it with
:func:`run` (cocotb's own runner, ``cocotb_tools.runner``) from a script or a pytest test::

    import cocotb
    from bpfpga.sim.bench import Bench

    @cocotb.test()
    async def syn_to_vip(dut):
        bench = await Bench.start(dut)                  # clock, reset, control port, ports
        await bench.load("lb.o", maps="maps.json")     # link, load, fill, commit
        await bench.update("vip_map", {"addr": ["10.100.0.1", 0, 0, 0], "port": 80,
                                       "proto": 6, "family": 4}, {"vip_num": 0})
        res = await bench.send(packet)                  # scapy packet or bytes
        assert res.verdict == XDP_TX

Everything that reaches the engine's control port goes through the host's own code
(host/device.py: ``Device``, ``install``, ``DeviceMap``, ``verified_update``), as on a
board: here over :class:`WishboneTransport`, a Transport whose reads and writes are
accesses of the bench's Wishbone master. The host code runs in a cocotb bridge thread
(``cocotb.task.bridge``) and each access blocks it until the simulation has done it
(``cocotb.task.resume``), so a load, a map update or a ring read takes simulated time as it takes
a board's bus time, and no second loader exists.

Frames go in through the inject ring (``send(frame)``) or a port's rx stream
(``send(frame, port=0)``). The bench runs the engine in CAPTURE mode (every result to the
output ring, docs/registers.md), so ``send`` returns the frame's result: verdict, output
frame, cycles, instructions, trap. With ``capture=False`` XDP_TX / XDP_REDIRECT frames leave
on the tx streams instead (take them with :meth:`Bench.receive`) and ``send`` returns the
result only of the frames that still reach the output ring (XDP_PASS).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge

from bpfpga import isa
from bpfpga.errors import TargetError
from bpfpga.obj import PERCPU_TYPES
from bpfpga.sim.cocotb_xdp import PERIOD_NS, Ports, WishboneMaster



class WishboneTransport:
    """host/transport.py's Transport interface (``read(addr, n)``, ``write(addr, words)``,
    word addresses) over the bench's Wishbone master. Only for code running in a
    ``cocotb.task.bridge`` thread: each call blocks that thread while the simulation does the
    accesses."""

    url = "cocotb://wishbone"

    def __init__(self, wbm: WishboneMaster):
        self.wbm = wbm
        self._read = resume(self._aread)
        self._write = resume(self._awrite)
        self.accesses = 0

    async def _aread(self, addr: int, n: int) -> list[int]:
        self.accesses += n
        return [await self.wbm.access(addr + i, False) for i in range(n)]

    async def _awrite(self, addr: int, words: list[int]) -> None:
        self.accesses += len(words)
        for i, w in enumerate(words):
            await self.wbm.access(addr + i, True, w)

    def read(self, addr: int, n: int, retry: bool = True) -> list[int]:
        return self._read(addr, n)

    def write(self, addr: int, words) -> None:
        self._write(addr, [int(w) & 0xFFFFFFFF for w in words])

    def close(self) -> None:
        pass


@dataclasses.dataclass
class Result:
    """One frame's record from the output ring (hdl/control.py's layout, as host/device.py
    ``Device.results`` reads it)."""
    verdict: int            # isa.XDP_ABORTED .. XDP_REDIRECT
    frame: bytes            # the frame as the program left it
    r0: int
    trap: int               # bpfpga/traps.py; 0: none
    trap_pc: int
    cycles: int             # the core's, start to verdict
    insns: int
    in_port: int            # 0..: a port; the inject ring gives the port it was queued with
    core: int
    redirect: int           # ifindex of an XDP_REDIRECT
    seq: int

    @property
    def verdict_name(self) -> str:
        return isa.XDP_VERDICTS.get(self.verdict, str(self.verdict))

    @classmethod
    def of(cls, rec: dict) -> "Result":
        return cls(rec["verdict"], rec["packet"], rec["r0"], rec["trap"], rec["trap_pc"],
                   rec["cycles"], rec["insns"], rec["in_port"], rec["core"], rec["redirect"],
                   rec["seq"])


def _frame(frame) -> bytes:
    if isinstance(frame, (bytes, bytearray, memoryview)) or hasattr(frame, "__bytes__"):
        return bytes(frame)         # hasattr: a scapy packet
    raise TargetError(f"a frame is bytes or a scapy packet, not {type(frame).__name__}")


class Bench:
    """The engine of the default model under a user's cocotb test. Make one with
    ``await Bench.start(dut)``; every method that talks to the control port is a coroutine."""

    def __init__(self, dut, wbm: WishboneMaster, ports: Ports, dev, capture: bool):
        self.dut, self.wbm, self.ports, self.dev = dut, wbm, ports, dev
        self.capture = capture
        self.loaded = None           # host/device.py Loaded, after load()

    @classmethod
    async def start(cls, dut, capture: bool = True, period_ns: int = PERIOD_NS) -> "Bench":
        """Start the clock, reset the engine, open its control port (host/device.py
        Device over the Wishbone master)."""
        from bpfpga.host.device import Device
        Clock(dut.clk, period_ns, unit="ns").start()
        ports = Ports(dut)
        wbm = WishboneMaster(dut)
        dut.rst.value = 1
        for _ in range(2):
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        await FallingEdge(dut.clk)
        t = WishboneTransport(wbm)
        dev = await bridge(lambda: Device(transport=t))()
        b = cls(dut, wbm, ports, dev, capture)
        await b._call(lambda: dev.control(capture=capture))
        return b

    async def _call(self, fn):
        """Run host code (blocking, over the WishboneTransport) in a bridge thread."""
        return await bridge(fn)()

    # ------------------------------------------------------------------ program
    async def load(self, obj, maps=None, prog: str | None = None,
                   map_sizes: dict | None = None):
        """Load an object (a path, or a BpfObject) as `bpfpga prog load` does
        (host/device.py install: CRC-checked stage, map descriptors, maps filled and read
        back, keyed commit), with ``maps`` a maps.json path or the same as a dict (hex or
        typed keys and values, docs/xdp.md). Returns the host's Loaded."""
        import json

        from bpfpga.compiler import mapsjson
        from bpfpga.compiler.elf import load_object
        from bpfpga.host.device import install
        o = load_object(str(obj), map_sizes=map_sizes) if isinstance(obj, (str, os.PathLike)) \
            else obj
        entries = None
        if maps is not None:
            if isinstance(maps, (str, os.PathLike)):
                mf = mapsjson.read(maps)
            else:
                mf = mapsjson.parse(json.loads(json.dumps(maps)), "maps")
            o, entries = mapsjson.for_load(o, mf)
        self.loaded = await self._call(lambda: install(self.dev, o, prog, entries))
        await self._call(lambda: self.dev.control(capture=self.capture))
        return self.loaded

    def _ld(self):
        if self.loaded is None:
            raise TargetError("no program loaded on the bench: await bench.load(OBJ) first")
        return self.loaded

    # ------------------------------------------------------------------ maps
    def types(self, name: str):
        """The map's key and value types (compiler/btfvalue.py MapTypes)."""
        from bpfpga.compiler.btfvalue import MapTypes
        return MapTypes.of(self._ld().obj, self._ld().map(name).md)

    async def _paused(self, fn):
        dev = self.dev

        def go():
            dev.pause()
            try:
                return fn()
            finally:
                dev.resume()
        return await self._call(go)

    async def update(self, name: str, key, value, flags: int = 0) -> None:
        """Set an entry (bytes, hex, or a value of the map's BTF type: a dict of fields, a
        number, an address text); read back before the engine resumes."""
        from bpfpga.host.device import verified_update
        m, mt = self._ld().map(name), self.types(name)
        k = mt.key(key)
        if m.md.type == 3 and isinstance(value, str) and value in self._ld().prog_no:
            v = self._ld().prog_no[value] + 1
        elif m.md.type in PERCPU_TYPES and isinstance(value, list) and \
                len(value) == self.dev.cores:
            v = [mt.value(x) for x in value]            # one value a core
        else:
            v = mt.value(value)
        await self._paused(lambda: verified_update(m, k, v, flags))

    async def lookup(self, name: str, key, typed: bool = False):
        """The value under key (bytes; a list of bytes, one a core, for per-CPU maps), or
        None; with ``typed``, decoded by the map's BTF type (a dict of fields)."""
        m, mt = self._ld().map(name), self.types(name)
        v = await self._paused(lambda: m.lookup(mt.key(key)))
        if v is None or not typed:
            return v
        return [mt.show_value(x) for x in v] if isinstance(v, list) else mt.show_value(v)

    async def delete(self, name: str, key) -> None:
        m, mt = self._ld().map(name), self.types(name)
        await self._paused(lambda: m.delete(mt.key(key)))

    async def dump(self, name: str, typed: bool = False) -> list:
        """Every entry as (key, value); with ``typed``, both decoded by their BTF types."""
        m, mt = self._ld().map(name), self.types(name)
        ents = await self._paused(m.dump)
        if not typed:
            return ents
        return [(mt.show_key(k),
                 [mt.show_value(x) for x in v] if isinstance(v, list) else mt.show_value(v))
                for k, v in ents]

    # ------------------------------------------------------------------ frames
    async def send(self, frame, port: int | None = None, wait: bool = True) -> Result | None:
        """Send one frame (bytes or a scapy packet) through the inject ring (``port`` None)
        or into ``rx<port>``, and with ``wait`` await its result from the output ring
        (TargetError if none comes in 30 s of no core running). With capture off a frame the
        program sends out of a port has no result there: send it with ``wait=False`` and take
        it with :meth:`receive`."""
        data = _frame(frame)
        if port is None:
            await self._call(lambda: self.dev.inject([(data, 0)]))
        else:
            if not 0 <= port < len(self.ports.rx):
                raise TargetError(f"the engine has ports 0..{len(self.ports.rx) - 1}, not "
                                  f"{port}")
            await self.ports.send(port, data)
        if not wait:
            return None
        got = await self.results(1)
        return got[0] if got else None

    async def results(self, n: int, timeout: float = 30.0) -> list[Result]:
        """The next n results of the output ring, in arrival order."""
        recs = await self._call(lambda: self.dev.results(n, timeout))
        return [Result.of(r) for r in recs]

    async def receive(self, port: int, max_cycles: int = 20_000) -> bytes | None:
        """The next frame the engine sends on ``tx<port>`` (capture off), or None if none
        comes within max_cycles."""
        self.ports.hold(True)
        try:
            for _ in range(max_cycles):
                f = await self.ports.take(port)
                if f is not None:
                    return f
                await FallingEdge(self.dut.clk)
        finally:
            self.ports.hold(False)
        return None

    # ------------------------------------------------------------------ counters, trace
    async def counters(self) -> dict:
        """The engine's counters by name, as `bpfpga stats -j` gives them."""
        from bpfpga.host.cmd_device import stats
        return await self._call(lambda: stats(self.dev))

    async def trace(self) -> list[str]:
        """The trace_printk lines waiting in the trace FIFO (and frees them)."""
        dev = self.dev
        return await self._call(lambda: [dev.trace_text(r) for r in dev.trace_records()])


# ---------------------------------------------------------------------- running a test module
def run(test_module: str, module_dir: str | Path, work_dir: str | Path | None = None,
        testcase: str | None = None, extra_env: dict | None = None) -> Path:
    """Run the cocotb test module ``test_module`` (a file ``module_dir/test_module.py``) on
    the engine's default model (built once per HDL change, cached under build/rtl/) with
    cocotb's own runner, in ``work_dir`` (default a new directory under build/rtl/runs/:
    results.xml, sim.log). Returns the results file (JUnit XML); raises TargetError when no
    test ran or any failed, naming the log."""
    import sys
    import tempfile

    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from bpfpga.sim import rtl as _rtl
    from bpfpga.sim.rtl_xdp_build import TOPLEVEL, build
    bdir = build()
    module_dir = str(Path(module_dir).resolve())
    if work_dir is None:
        runs = _rtl.BUILD / "rtl" / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        work_dir = tempfile.mkdtemp(prefix=f"bench-{test_module}-", dir=runs)
    work_dir = Path(work_dir).resolve()
    log = work_dir / "sim.log"
    env = _rtl._verilator_env()
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    sys.path.insert(0, module_dir)       # the runner passes sys.path on as PYTHONPATH
    try:
        get_runner("verilator").test(
            test_module=test_module, hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
            build_dir=bdir, test_dir=work_dir, testcase=testcase,
            extra_env={"COCOTB_LOG_LEVEL": "INFO", **(extra_env or {})},
            results_xml=str(work_dir / "results.xml"), log_file=log)
    except SystemExit:
        pass                  # the runner exits on a failed test: the results file says which
    finally:
        sys.path.remove(module_dir)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    results = work_dir / "results.xml"
    ntests, nfail = get_results(results) if results.exists() else (0, 0)
    if ntests == 0:
        raise TargetError(f"{test_module}: no cocotb test ran; see {log}")
    if nfail:
        raise TargetError(f"{test_module}: {nfail} of {ntests} cocotb test(s) failed; see "
                          f"{log}")
    return results
