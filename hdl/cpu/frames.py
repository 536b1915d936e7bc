"""The call frames of bpf-to-bpf calls: return pc and the caller's r6..r9, and the depth."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga import memmap


class CallFrames(wiring.Component):
    """``depth`` frames are in use; ``ret_pc`` and ``saved`` (r6..r9) are the top one's
    (D takes the return pc, X the saved registers). ``push`` stores (``push_pc``, ``regs``)
    and deepens, ``pop`` shallows, ``init`` empties.

    LUT RAM, read asynchronously at depth - 1; with ``frame_bram`` the saved registers (256
    bits x 8 frames) are in block RAM read synchronously at depth - 1 instead: X uses them
    only in an exit, which comes two cycles or more after the call or exit that last moved
    depth (through D), so the read has caught up by then."""

    def __init__(self, pw: int, frame_bram: bool = False):
        self.pw, self.frame_bram = pw, frame_bram
        super().__init__({
            "init": In(1), "push": In(1), "pop": In(1),
            "push_pc": In(pw + 1), "regs": In(4 * 64),
            "depth": Out(range(memmap.MAX_CALL_FRAMES)),
            "ret_pc": Out(pw + 1), "saved": Out(4 * 64),
        })

    def elaborate(self, platform):
        m = Module()
        pw, depth = self.pw, self.depth
        fr = Memory(shape=unsigned(pw + 1 + (0 if self.frame_bram else 4 * 64)),
                    depth=memmap.MAX_CALL_FRAMES, init=[])
        m.submodules.frames = fr
        fr_rp = fr.read_port(domain="comb")
        fr_wp = fr.write_port()
        m.d.comb += [fr_rp.addr.eq(depth - 1), self.ret_pc.eq(fr_rp.data[0:pw + 1])]
        with m.If(self.push):
            m.d.comb += [fr_wp.addr.eq(depth), fr_wp.en.eq(1),
                         fr_wp.data.eq(Cat(self.push_pc, self.regs))]
        if self.frame_bram:
            frs = Memory(shape=unsigned(4 * 64), depth=memmap.MAX_CALL_FRAMES, init=[],
                         attrs={"ram_style": "block"})
            m.submodules.frame_regs = frs
            frs_rp = frs.read_port(domain="sync")
            frs_wp = frs.write_port()
            m.d.comb += [frs_rp.addr.eq(depth - 1), frs_wp.addr.eq(fr_wp.addr),
                         frs_wp.en.eq(fr_wp.en), self.saved.eq(frs_rp.data)]
            with m.If(self.push):
                m.d.comb += frs_wp.data.eq(self.regs)
        else:
            m.d.comb += self.saved.eq(fr_rp.data[pw + 1:])
        with m.If(self.push):
            m.d.sync += depth.eq(depth + 1)
        with m.If(self.pop):
            m.d.sync += depth.eq(depth - 1)
        with m.If(self.init):
            m.d.sync += depth.eq(0)
        return m
