"""The register file: r0..r10 in flip-flops, and two LUT RAM copies for D's operand reads."""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga import memmap

# registers whose copy the flip-flops outrun: r1, r2, r10 at start; r6..r10 at an exit (the
# caller's saved registers come back), r10 at a call
PEND_START = 0b100_0000_0110
PEND_POP = 0b111_1100_0000
PEND_PUSH = 0b100_0000_0000


class RegisterFile(wiring.Component):
    """The flip-flops ``r`` are the architectural registers (X reads r0..r10 directly: helper
    arguments, call frames, cmpxchg). D reads its two operands ``a_idx``/``b_idx`` from two
    LUT RAM copies (asynchronous read) written with every register write, bypassing the load
    W writes in this cycle; a register never written since start reads 0. A copy the
    flip-flops have outrun (a call or exit moves r6..r10 all at once) is pending
    (``a_pend``/``b_pend``: D must wait) until it is copied in a cycle the write port is free.

    Writes: W's load (``w_en``), else X's result (``x_en``; one write port, the core
    arbitrates); ``push`` (a call: r10 -= frame) and ``pop`` (an exit: r6..r9 from
    ``restore``, r10 += frame) happen beside them. ``init`` (start) sets r1, r2, r10."""
    init: In(1)
    r1_init: In(64)
    r2_init: In(64)
    running: In(1)
    a_idx: In(4)
    b_idx: In(4)
    a_data: Out(64)
    b_data: Out(64)
    a_pend: Out(1)
    b_pend: Out(1)
    w_en: In(1)
    w_idx: In(4)
    w_data: In(64)
    x_en: In(1)
    x_idx: In(4)
    x_data: In(64)
    push: In(1)
    pop: In(1)
    restore: In(4 * 64)
    r: Out(data.ArrayLayout(64, 11))

    def elaborate(self, platform):
        m = Module()
        regs = [Signal(64, name=f"r{i}") for i in range(11)]
        m.d.comb += [self.r[i].eq(regs[i]) for i in range(11)]
        rfa = Memory(shape=unsigned(64), depth=16, init=[])
        rfb = Memory(shape=unsigned(64), depth=16, init=[])
        m.submodules.rfa, m.submodules.rfb = rfa, rfb
        rfa_r, rfb_r = rfa.read_port(domain="comb"), rfb.read_port(domain="comb")
        rfa_w, rfb_w = rfa.write_port(), rfb.write_port()
        rf_live = Signal(16)    # written since start (else it reads 0)
        rf_pend = Signal(16)    # the flip-flop holds a newer value than the copies

        def read(port, idx):
            m.d.comb += port.addr.eq(idx)
            v = Mux(rf_live.bit_select(idx, 1), port.data, 0)
            return Mux(self.w_en & (self.w_idx == idx), self.w_data, v)
        m.d.comb += [self.a_data.eq(read(rfa_r, self.a_idx)),
                     self.b_data.eq(read(rfb_r, self.b_idx)),
                     self.a_pend.eq(rf_pend.bit_select(self.a_idx, 1)),
                     self.b_pend.eq(rf_pend.bit_select(self.b_idx, 1))]

        pend_set = Signal(16)
        with m.If(self.push):
            m.d.sync += regs[10].eq(regs[10] - memmap.STACK_FRAME)
            m.d.comb += pend_set.eq(PEND_PUSH)
        with m.If(self.pop):
            m.d.sync += regs[10].eq(regs[10] + memmap.STACK_FRAME)
            m.d.sync += [regs[6 + i].eq(self.restore[64 * i:64 * i + 64]) for i in range(4)]
            m.d.comb += pend_set.eq(PEND_POP)

        # one write port: the load in W has it, else X's result (the core makes X wait)
        rf_data = Signal(64)
        m.d.comb += rf_data.eq(Mux(self.w_en, self.w_data, self.x_data))
        for i in range(10):
            with m.If((self.w_en & (self.w_idx == i)) | (self.x_en & (self.x_idx == i))):
                m.d.sync += regs[i].eq(rf_data)
        # the LUT RAM copies: the same write, or else the copy of the lowest pending register
        com_en = Signal()
        com_idx = Signal(4)
        m.d.comb += [com_en.eq(self.w_en | self.x_en),
                     com_idx.eq(Mux(self.w_en, self.w_idx, self.x_idx))]
        seq_idx = Signal(4)
        seq_val = Signal(64)
        for i in reversed([i for i in range(11) if (PEND_START | PEND_POP) >> i & 1]):
            with m.If(rf_pend[i]):
                m.d.comb += [seq_idx.eq(i), seq_val.eq(regs[i])]
        rf_we = Signal()
        rf_wa = Signal(4)
        rf_wd = Signal(64)
        with m.If(com_en):
            m.d.comb += [rf_we.eq(com_idx != 10), rf_wa.eq(com_idx), rf_wd.eq(rf_data)]
        with m.Elif(rf_pend.any() & self.running):
            m.d.comb += [rf_we.eq(1), rf_wa.eq(seq_idx), rf_wd.eq(seq_val)]
        for wp in (rfa_w, rfb_w):
            m.d.comb += [wp.addr.eq(rf_wa), wp.data.eq(rf_wd), wp.en.eq(rf_we)]
        rf_wbit = Signal(16)
        m.d.comb += rf_wbit.eq(Mux(rf_we, 1 << rf_wa, 0))
        m.d.sync += [rf_live.eq(rf_live | rf_wbit), rf_pend.eq((rf_pend & ~rf_wbit) | pend_set)]

        with m.If(self.init):
            m.d.sync += [rf_live.eq(0), rf_pend.eq(PEND_START)]
            for i in range(11):
                m.d.sync += regs[i].eq({1: self.r1_init, 2: self.r2_init,
                                        10: memmap.frame_top(0)}.get(i, 0))
        return m
