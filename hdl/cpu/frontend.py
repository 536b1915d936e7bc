"""The front end: program memory, its read ports, and the instruction register IR."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


class FrontEnd(wiring.Component):
    """Port A of the program memory reads the sequential stream (and, while idle, takes the
    host's writes ``pm_*``: one address for both, so the block RAM port is read/write); its
    output goes straight into ``ir`` (the DP16KD's clock-to-output is more than half a
    cycle). With ``target_port``, port B reads ``b_addr`` (D's branch target, or the return
    pc of an exit) every cycle, so that a taken ``redirect`` finds its target read already and
    costs 2 cycles; without it port A is redirected and it costs 3.

    Per cycle, while running: ``step`` (X takes D's instruction, or D's is dropped) moves the
    stream on, unless ``redirect`` (to ``target``) or ``hold`` (port A re-reads its slot, so
    that its enable does not depend on the branch comparison); ``kill`` (D holds lddw's
    second slot) overrides ``hold``. ``redirect_br`` (a taken jump) overrides all."""

    def __init__(self, pm_depth: int, target_port: bool = True):
        self.pm_depth, self.target_port = pm_depth, target_port
        pw = self.pw = (pm_depth - 1).bit_length()
        super().__init__({
            "pm_we": In(1), "pm_addr": In(pw), "pm_data": In(64),
            "init": In(1), "running": In(1),
            "step": In(1), "redirect": In(1), "kill": In(1), "hold": In(1),
            "redirect_br": In(1), "target": In(pw + 1), "b_addr": In(pw),
            "ir": Out(64), "pc_ir": Out(pw + 1), "ir_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pw = self.pw
        pm = Memory(shape=unsigned(64), depth=self.pm_depth, init=[])
        m.submodules.pm = pm
        pa = pm.read_port(domain="sync")
        pm_wp = pm.write_port()
        fa_addr = Signal(pw)
        m.d.comb += [pa.addr.eq(fa_addr), pm_wp.addr.eq(fa_addr), pm_wp.data.eq(self.pm_data),
                     pm_wp.en.eq(self.pm_we & ~self.running)]
        if self.target_port:
            pb = pm.read_port(domain="sync")
            m.d.comb += [pb.en.eq(1), pb.addr.eq(self.b_addr)]
        pc_b = Signal(pw + 1)   # the slot port A's output holds
        ir, pc_ir, ir_valid, target = self.ir, self.pc_ir, self.ir_valid, self.target

        def advance():
            m.d.comb += [fa_addr.eq(pc_b + 1), pa.en.eq(1)]
            m.d.sync += [ir.eq(pa.data), pc_ir.eq(pc_b), ir_valid.eq(1), pc_b.eq(pc_b + 1)]

        def redirect():
            if self.target_port:
                m.d.comb += [fa_addr.eq(target + 1), pa.en.eq(1)]
                m.d.sync += [ir.eq(pb.data), pc_ir.eq(target), ir_valid.eq(1),
                             pc_b.eq(target + 1)]
            else:
                m.d.comb += [fa_addr.eq(target), pa.en.eq(1)]
                m.d.sync += [ir_valid.eq(0), pc_b.eq(target)]

        with m.If(self.init):
            m.d.comb += [fa_addr.eq(0), pa.en.eq(1)]
            m.d.sync += [pc_b.eq(0), ir_valid.eq(0)]
        with m.Elif(~self.running):
            m.d.comb += [fa_addr.eq(self.pm_addr), pa.en.eq(0)]
        with m.Elif(self.step):
            with m.If(self.redirect):
                redirect()
            with m.Elif(self.kill):
                advance()
            with m.Elif(self.hold):
                m.d.comb += [fa_addr.eq(pc_b), pa.en.eq(1)]
            with m.Else():
                advance()
        with m.Else():
            m.d.comb += pa.en.eq(0)
        # a taken jump: its X cycle always finishes, so the comparison drives only this last
        # override (the muxes into IR, pc and port A's address), not any enable chain
        with m.If(self.redirect_br):
            redirect()
        return m
