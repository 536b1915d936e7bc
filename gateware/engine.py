"""The XDP engine as a LiteX module: Amaranth elaborated to Verilog, instantiated from Migen.

This is what LiteX does for the Minerva CPU: the Amaranth design is converted to Verilog at
build time, added to the platform's sources, and instantiated by name. The wrapper reads the
component's signature and needs only the contract every engine keeps:

* one Wishbone B4 classic slave (a member with ``cyc``, ``stb``, ``we``, ``adr``, ``dat_w``,
  ``dat_r``, ``ack``; ``sel``, ``err`` optional), 32-bit data, word addresses;
* stream pairs (``amaranth.lib.stream``): an input stream per Ethernet port (RX, into the
  engine) and an output stream per port (TX), numbered by the last digit of their name (or
  their index in an array member: ``rx0``/``tx0``, ``rx[0]``, ``port0_rx``...). The payload is
  a struct with ``data`` (8 * k bits) and ``last`` (``first`` optional); a wider stream needs
  a byte-valid field (``keep``: one bit per byte, or ``last_be``: one-hot last byte);
* any other output stream (PASS towards the host, say) is exposed as ``extra_sources``;
  any other input port is tied to zero (and listed in ``tied``).

So plugging in the real engine is :func:`engine_component` returning it (it does, as soon as
``bpfpga.hdl.xdp`` has its top-level component); nothing else in the SoC changes.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from migen import ClockSignal, If, Instance, Module, Mux, Replicate, ResetSignal, Signal
from litex.soc.interconnect import stream, wishbone

from bpfpga.boards.base import ENGINE_KINDS
from bpfpga.errors import BpfpgaError

WB_NAMES = {"cyc", "stb", "we", "adr", "dat_w", "dat_r", "ack", "sel", "err", "cti", "bte",
            "stall", "rty"}


class EngineError(BpfpgaError):
    pass


def engine_component(cores: int, ports: int, kind: str | None = None, **kwargs):
    """The engine for a board: the real one (issue 5) when its top exists, else the stand-in.

    ``kind`` (default: $BPFPGA_ENGINE, else "xdp") picks another: "standin" (the CPU-only
    stand-in below) or "loopback" (gateware/loopback.py: frames go back out of their port;
    for bring-up and for measuring the SoC alone).
    Returns (component, kind) where kind is "xdp", "standin" or "loopback". The real engine's top is
    looked up as the first of ``bpfpga.hdl.xdp.{XDPEngine, Engine, XDP}`` that exists; it is
    built with ``cores`` and ``ports`` when its constructor takes them (or a config object
    from ``bpfpga.hdl.config`` with those fields).
    """
    kind = kind or os.environ.get("BPFPGA_ENGINE") or "xdp"
    if kind not in ENGINE_KINDS:
        raise EngineError(f"unknown engine {kind!r}: one of {', '.join(ENGINE_KINDS)}")
    if kind == "loopback":
        from bpfpga.gateware.loopback import LoopbackEngine
        return LoopbackEngine(ports=max(1, ports)), "loopback"
    try:
        mod = importlib.import_module("bpfpga.hdl.xdp")
    except ImportError:
        mod = None
    top = None
    if mod is not None:
        for name in ("XDPEngine", "Engine", "XDP"):
            top = getattr(mod, name, None)
            if top is not None:
                break
    if top is None or kind == "standin":
        # the stand-in has no inject ring: a board without Ethernet gets a host packet port
        from bpfpga.gateware.standin import StandInEngine
        sparams = inspect.signature(StandInEngine).parameters
        kwargs = {k: v for k, v in kwargs.items() if k in sparams}
        return StandInEngine(ports=max(1, ports), cores=cores, **kwargs), "standin"
    params = inspect.signature(top).parameters
    if "config" in params:
        from bpfpga.hdl import config as cfgmod
        cls = next(getattr(cfgmod, n) for n in ("EngineConfig", "Config", "XDPConfig")
                   if hasattr(cfgmod, n))
        cparams = inspect.signature(cls).parameters
        ckw = {k: v for k, v in (("cores", cores), ("ports", ports), ("n_cores", cores),
                                 ("n_ports", ports)) if k in cparams}
        # the board's engine configuration (Board.engine, e.g. pm_depth, target_port)
        unknown = set(kwargs) - set(cparams)
        if unknown:
            raise EngineError(f"engine configuration: unknown field(s) {', '.join(sorted(unknown))}")
        ckw.update(kwargs)
        return top(config=cls(**ckw)), "xdp"
    kw = {k: v for k, v in (("cores", cores), ("ports", ports), ("n_cores", cores),
                            ("n_ports", ports)) if k in params}
    return top(**kw), "xdp"


@dataclass
class StreamPort:
    path: tuple
    prefix: str                 # Verilog name prefix, e.g. "rx0"
    direction: str              # "in" (into the engine) or "out"
    index: int | None           # Ethernet port number, None for an unnumbered stream
    fields: dict                # payload field -> (offset, width)
    payload_width: int
    has_ready: bool = True

    @property
    def data_width(self) -> int:
        return self.fields["data"][1]


@dataclass
class Contract:
    wishbone: dict = field(default_factory=dict)     # name -> (width, direction)
    wb_prefix: str = ""
    streams: list = field(default_factory=list)
    others: list = field(default_factory=list)      # (name, width, direction)

    def rx(self, i):
        return next((s for s in self.streams if s.direction == "in" and s.index == i), None)

    def tx(self, i):
        return next((s for s in self.streams if s.direction == "out" and s.index == i), None)

    @property
    def ports(self) -> int:
        return len({s.index for s in self.streams if s.index is not None})


def _vname(path) -> str:
    return "__".join(str(p) for p in path)


def read_contract(component) -> Contract:
    """What the engine's signature offers, in the wrapper's terms."""
    from amaranth import Value
    from amaranth.lib import data, wiring

    groups: dict[tuple, dict] = {}
    flat = []
    for path, member, port in component.signature.flatten(component):
        flat.append((path, member, port))
        groups.setdefault(tuple(path[:-1]), {})[path[-1]] = (member, port)
    c = Contract()
    used = set()
    for prefix, leaves in groups.items():
        names = set(leaves)
        if {"cyc", "stb", "ack"} <= names and names <= WB_NAMES:
            if c.wishbone:
                raise EngineError("the engine has two Wishbone ports: "
                                  f"{c.wb_prefix} and {_vname(prefix)}")
            c.wb_prefix = _vname(prefix)
            for n, (member, port) in leaves.items():
                c.wishbone[n] = (len(Value.cast(port)),
                                 "in" if member.flow == wiring.In else "out")
            used.add(prefix)
        elif "payload" in names and "valid" in names and names <= {"payload", "valid", "ready"}:
            member, port = leaves["payload"]
            shape = member.shape
            fields = {}
            if isinstance(shape, data.StructLayout):
                for fname, f in shape:
                    fields[fname] = (f.offset, _shape_width(f.shape))
            else:
                fields["data"] = (0, _shape_width(shape))
            direction = "in" if member.flow == wiring.In else "out"
            index = None
            for p in reversed(prefix):
                if isinstance(p, int):
                    index = p
                    break
                mm = re.search(r"(\d+)$", str(p))
                if mm:
                    index = int(mm.group(1))
                    break
            c.streams.append(StreamPort(prefix, _vname(prefix), direction, index, fields,
                                        len(Value.cast(port)), "ready" in names))
            used.add(prefix)
    for path, member, port in flat:
        if tuple(path[:-1]) not in used:
            c.others.append((_vname(path), len(Value.cast(port)),
                             "in" if member.flow == wiring.In else "out"))
    if not c.wishbone:
        raise EngineError("the engine has no Wishbone slave (a member with cyc, stb, ack)")
    for s in c.streams:
        unknown = set(s.fields) - {"data", "first", "last", "keep", "last_be", "error", "err"}
        if "data" not in s.fields or "last" not in s.fields:
            raise EngineError(f"engine stream {s.prefix}: payload needs 'data' and 'last' "
                              f"(has {', '.join(s.fields)})")
        if unknown:
            raise EngineError(f"engine stream {s.prefix}: payload field(s) "
                              f"{', '.join(sorted(unknown))} not understood by the SoC")
        if s.data_width % 8:
            raise EngineError(f"engine stream {s.prefix}: data is {s.data_width} bits, "
                              "not whole bytes")
        if s.data_width > 8 and not ({"keep", "last_be"} & set(s.fields)):
            raise EngineError(f"engine stream {s.prefix}: {s.data_width}-bit data needs a "
                              "byte-valid field (keep or last_be)")
    return c


def _shape_width(shape) -> int:
    from amaranth import Shape
    from amaranth.lib import data
    if isinstance(shape, data.Layout):
        return shape.size
    return Shape.cast(shape).width


def generate_verilog(component, name: str, out_dir: Path) -> tuple[Path, str]:
    """Elaborate the engine to ``out_dir/name.v``; returns (path, sha256 of the text)."""
    from amaranth.back import verilog
    text = verilog.convert(component, name=name, emit_src=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.v"
    path.write_text(text)
    return path, hashlib.sha256(text.encode()).hexdigest()[:16]


class LiteXEngine(Module):
    """The Verilog engine instance with a LiteX Wishbone slave ``bus`` and, per port, LiteX
    stream endpoints in the engine's own width: ``sinks[i]`` (frames into the engine) and
    ``sources[i]`` (frames out of it), with fields ``data``, ``last_be`` (one-hot, last beat)
    and ``error``; ``first``/``last`` are the endpoints' own."""

    def __init__(self, contract: Contract, module_name: str):
        self.contract = contract
        ports: dict = {"i_clk": ClockSignal("sys"), "i_rst": ResetSignal("sys")}
        wb = contract.wishbone
        adr_w = wb["adr"][0]
        self.bus = bus = wishbone.Interface(data_width=32, address_width=32, addressing="word")
        self.adr_width = adr_w
        pre = contract.wb_prefix + "__" if contract.wb_prefix else ""
        for n, (w, d) in wb.items():
            pname = ("i_" if d == "in" else "o_") + pre + n
            if n == "adr":
                ports[pname] = bus.adr[:w]
            elif n == "err":
                ports[pname] = bus.err
            elif n in ("cyc", "stb", "we", "ack"):
                ports[pname] = getattr(bus, n)
            elif n in ("dat_w", "dat_r"):
                ports[pname] = getattr(bus, n)
            elif n == "sel":
                ports[pname] = bus.sel[:w]
            elif d == "in":
                ports[pname] = 0
            else:
                ports[pname] = Signal(w)
        self.sinks, self.sources, self.extra_sources = {}, {}, []
        self.tied = []
        for s in contract.streams:
            dw = s.data_width
            layout = [("data", dw), ("last_be", dw // 8), ("error", dw // 8)]
            ep = stream.Endpoint(layout)
            payload = Signal(s.payload_width)
            f = s.fields

            def fld(name):
                off, w = f[name]
                return payload[off:off + w]

            if s.direction == "in":
                ports[f"i_{s.prefix}__payload"] = payload
                ports[f"i_{s.prefix}__valid"] = ep.valid
                if s.has_ready:
                    ports[f"o_{s.prefix}__ready"] = ep.ready
                else:
                    self.comb += ep.ready.eq(1)
                self.comb += [fld("data").eq(ep.data), fld("last").eq(ep.last)]
                if "first" in f:
                    self.comb += fld("first").eq(ep.first)
                if "keep" in f:
                    # one-hot last byte -> bytes valid; every byte of a beat before the last
                    nb = dw // 8
                    keep = _thermometer(self, ep.last_be, nb)
                    self.comb += If(ep.last, fld("keep").eq(keep)).Else(fld("keep").eq(
                        (1 << nb) - 1))
                if "last_be" in f:
                    self.comb += fld("last_be").eq(ep.last_be)
                for e in ("error", "err"):
                    if e in f:
                        self.comb += fld(e).eq(ep.error != 0)
                if s.index is not None:
                    self.sinks[s.index] = ep
                else:
                    self.tied.append(s.prefix)
                    self.comb += ep.valid.eq(0)
            else:
                ports[f"o_{s.prefix}__payload"] = payload
                ports[f"o_{s.prefix}__valid"] = ep.valid
                if s.has_ready:
                    ports[f"i_{s.prefix}__ready"] = ep.ready
                self.comb += [ep.data.eq(fld("data")), ep.last.eq(fld("last"))]
                if "first" in f:
                    self.comb += ep.first.eq(fld("first"))
                nb = dw // 8
                if "last_be" in f:
                    self.comb += ep.last_be.eq(fld("last_be"))
                elif "keep" in f:
                    self.comb += ep.last_be.eq(Mux(fld("last"),
                                                   _last_one(self, fld("keep"), nb), 0))
                else:
                    # an 8-bit stream: its one byte is the last one on the last beat
                    self.comb += ep.last_be.eq(fld("last"))
                for e in ("error", "err"):
                    if e in f:
                        self.comb += ep.error.eq(Replicate(fld(e), nb))
                if s.index is not None:
                    self.sources[s.index] = ep
                else:
                    self.extra_sources.append((s.prefix, ep))
        for name, w, d in contract.others:
            if name in ("clk", "rst"):
                continue
            if d == "in":
                ports[f"i_{name}"] = 0
                self.tied.append(name)
            else:
                ports[f"o_{name}"] = Signal(w)
        self.specials += Instance(module_name, **ports)


def _thermometer(mod, onehot, n):
    """One-hot position k -> the k+1 low bits set (no flag: all bytes)."""
    out = Signal(n)
    mod.comb += out.eq((1 << n) - 1)
    for k in reversed(range(n)):
        mod.comb += If(onehot[k], out.eq((1 << (k + 1)) - 1))
    return out


def _last_one(mod, keep, n):
    """Bytes-valid mask -> one-hot of its highest set bit."""
    out = Signal(n)
    mod.comb += out.eq(1)
    for k in range(n):
        mod.comb += If(keep[k], out.eq(1 << k))
    return out
