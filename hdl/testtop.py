"""The CPU with memories and a trivial helper unit: the top the RTL runner simulates.

Windows: stack (DualBankRAM, 4 KiB, cleared before each run), packet (the conformance
suite's "mem"), ctx and map memory (small RAMs so every window can be exercised). Helper unit:
id 5 returns r1 and ends the program when r1 is 0 (the conformance suite's "unwind"); every
other id traps TRAP_HELPER. The host port reaches one RAM at a time (``host_sel``), for
loading mem before a run and reading it back after.
"""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga import memmap, traps
from bpfpga.hdl.bus import DualBankRAM, HelperSignature, WindowRouter
from bpfpga.hdl.cpu import CPU

HOST_PKT, HOST_STACK, HOST_CTX, HOST_MAP = range(4)


class HelperStub(wiring.Component):
    def __init__(self):
        super().__init__({"helper": In(HelperSignature)})

    def elaborate(self, platform):
        m = Module()
        h = self.helper
        m.d.comb += h.ack.eq(h.req)
        with m.If(h.id == 5):
            m.d.comb += [h.r0.eq(h.arg1), h.exit.eq(h.arg1 == 0)]
        with m.Else():
            m.d.comb += h.trap.eq(traps.TRAP_HELPER)
        return m


class CPUTestTop(wiring.Component):
    def __init__(self, pm_depth: int = 4096, pkt_bytes: int = 16384, map_bytes: int = 4096,
                 ctx_bytes: int = 256, target_port: bool = True, **cpu_kwargs):
        self.pm_depth = pm_depth
        self.target_port = target_port
        self.cpu_kwargs = cpu_kwargs        # CPU options: frame_bram, mul_serial
        self.sizes = dict(pkt=pkt_bytes, map=map_bytes, ctx=ctx_bytes)
        pw = (pm_depth - 1).bit_length()
        super().__init__({
            "start": In(1), "r1_init": In(64), "r2_init": In(64), "budget": In(32),
            "busy": Out(1), "done": Out(1), "r0": Out(64), "trap": Out(4),
            "trap_pc": Out(32), "insns": Out(32), "cycles": Out(32),
            "pm_we": In(1), "pm_addr": In(pw), "pm_data": In(64), "prog_len": In(pw + 1),
            "pkt_lo": In(32), "pkt_hi": In(32), "ctx_len": In(16), "map_len": In(29),
            "host_sel": In(2), "host_addr": In(16), "host_we": In(8), "host_wdata": In(64),
            "host_rdata": Out(64),
            "stack_clear": In(1), "stack_clearing": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.cpu = cpu = CPU(self.pm_depth, target_port=self.target_port,
                                         **self.cpu_kwargs)
        m.submodules.stack = stack = DualBankRAM(memmap.STACK_SIZE)
        m.submodules.pkt = pkt = DualBankRAM(self.sizes["pkt"])
        m.submodules.ctx = ctx = DualBankRAM(max(16, self.sizes["ctx"]))
        m.submodules.mapm = mapm = DualBankRAM(self.sizes["map"])
        m.submodules.router = router = WindowRouter({
            memmap.STACK_BASE >> 28: "stack", memmap.PKT_BASE >> 28: "pkt",
            memmap.CTX_BASE >> 28: "ctx", memmap.MAP_BASE >> 28: "map"})
        m.submodules.helpers = helpers = HelperStub()
        wiring.connect(m, cpu.dbus, router.bus)
        wiring.connect(m, router.stack, stack.bus)
        wiring.connect(m, router.pkt, pkt.bus)
        wiring.connect(m, router.ctx, ctx.bus)
        wiring.connect(m, getattr(router, "map"), mapm.bus)
        wiring.connect(m, cpu.helper, helpers.helper)
        for name in ("start", "r1_init", "r2_init", "budget", "pm_we", "pm_addr", "pm_data",
                     "prog_len", "pkt_lo", "pkt_hi", "ctx_len", "map_len"):
            m.d.comb += getattr(cpu, name).eq(getattr(self, name))
        for name in ("busy", "done", "r0", "trap", "trap_pc", "insns", "cycles"):
            m.d.comb += getattr(self, name).eq(getattr(cpu, name))
        rams = [pkt, stack, ctx, mapm]
        sel_r = Signal(2)
        m.d.sync += sel_r.eq(self.host_sel)
        for i, r in enumerate(rams):
            m.d.comb += [r.host.addr.eq(self.host_addr), r.host.wdata.eq(self.host_wdata),
                         r.host.we.eq(Mux(self.host_sel == i, self.host_we, 0))]
        m.d.comb += self.host_rdata.eq(Array([r.host.rdata for r in rams])[sel_r])
        m.d.comb += [stack.clear.eq(self.stack_clear), self.stack_clearing.eq(stack.clearing)]
        return m
