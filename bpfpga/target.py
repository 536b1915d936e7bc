"""The one interface every back end implements (ref, rtl, kernel, board).

A target is opened on a BpfObject and the name of its entry program; it creates the maps,
loads every program the object needs (tail-call targets too), and then runs packets.
"""
from __future__ import annotations

from bpfpga.errors import TargetError

import contextlib
from dataclasses import dataclass, field


@dataclass
class XdpResult:
    verdict: int               # XDP_* (the program's r0, or XDP_ABORTED on a trap)
    packet: bytes              # the packet as it leaves (after adjust_head/tail)
    retval: int = 0            # the full r0
    trap: int = 0              # trap reason (0 = none)
    trap_pc: int = -1
    redirect: int | None = None   # ifindex (or devmap target) for XDP_REDIRECT
    cycles: int | None = None     # hardware targets
    insns: int | None = None      # instructions executed, where the target knows
    trace: list = field(default_factory=list)   # trace_printk lines


@dataclass
class XdpContext:
    ingress_ifindex: int = 1
    rx_queue_index: int = 0


class Target:
    name = "?"
    # True when run(packet, trace=list) appends the (program, pc) of every instruction run
    traces_insns = False

    def run(self, packet: bytes, ctx: XdpContext | None = None) -> XdpResult:
        raise NotImplementedError

    def run_batch(self, packets: list[bytes]) -> list:
        """Results of many packets in order, a TargetError in the place of a packet the target
        did not run; a target that streams packets (an engine through its rings) overrides
        this."""
        out: list = []
        for p in packets:
            try:
                out.append(self.run(p))
            except TargetError as e:
                out.append(e)
        return out

    def refuses(self, packet: bytes) -> str | None:
        """Why this target cannot run ``packet`` at all (its run() would raise TargetError
        before running anything), as a reason without the packet's length, so reasons can be
        counted; None when it can run it."""
        return None

    # maps, by name; keys and values are raw bytes. Per-CPU maps take and give a list of
    # values, one per CPU.
    def map_lookup(self, name: str, key: bytes):
        raise NotImplementedError

    def map_update(self, name: str, key: bytes, value, flags: int = 0) -> None:
        raise NotImplementedError

    def map_delete(self, name: str, key: bytes) -> None:
        raise NotImplementedError

    def map_dump(self, name: str) -> list[tuple[bytes, object]]:
        raise NotImplementedError

    def set_prog_slot(self, name: str, idx: int, prog: str) -> None:
        """Slot `idx` of a PROG_ARRAY holds program `prog` of the object."""
        self.map_update(name, idx.to_bytes(4, "little"), ("prog", prog))

    def set_inner_map(self, name: str, key: bytes, inner: str) -> None:
        """The entry `key` of a map of maps holds the object's map `inner`."""
        self.map_update(name, key, ("map", inner))

    def batch(self):
        """A context in which many map operations go together (an engine pauses once)."""
        return contextlib.nullcontext()

    def counters(self) -> list[int] | None:
        """The hardware's counters (docs/registers.md), where the target has them."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
