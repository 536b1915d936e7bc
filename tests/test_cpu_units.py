"""Each unit of the CPU (hdl/cpu/) alone in Amaranth's simulator, against the reference
machine (sim/ref.py) running the same instruction, or against the unit's Python rule."""
import random

import pytest
from amaranth.sim import Simulator

from bpfpga import isa, memmap
from bpfpga.hdl.cpu.alu import ALU
from bpfpga.hdl.cpu.compare import Compare
from bpfpga.hdl.cpu.divider import Divider
from bpfpga.hdl.cpu.frames import CallFrames
from bpfpga.hdl.cpu.frontend import FrontEnd
from bpfpga.hdl.cpu.memory_unit import MemoryUnit
from bpfpga.hdl.cpu.multiplier import Multiplier
from bpfpga.hdl.cpu.regfile import RegisterFile
from bpfpga.hdl.cpu.serial_multiplier import SerialMultiplier
from bpfpga.hdl.cpu.shifter import Shifter
from bpfpga.hdl.decode import controls
from bpfpga.sim.ref import Machine

M64 = (1 << 64) - 1
EDGES = [0, 1, 2, 3, 31, 32, 63, 64, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32,
         (1 << 63) - 1, 1 << 63, M64, M64 - 1]


def vectors(n, seed):
    rng = random.Random(seed)
    out = [(a, b) for a in EDGES[::3] for b in EDGES[::2]]
    while len(out) < n:
        out.append(tuple(rng.choice((rng.getrandbits(64), rng.getrandbits(32),
                                     rng.choice(EDGES), -rng.getrandbits(8) & M64))
                         for _ in range(2)))
    return out


def ref_alu(spec, a, b):
    """dst (r1) after one instruction of `spec` with r1 = a, src r2 = b (or imm b)."""
    ins = isa.make(spec, 1, 2 if spec.src == isa.REG else 0,
                   imm=isa.s32(b) if spec.imm == isa.FREE else 0)
    prog = ins.encode() + isa.Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_X, 0, 1).encode() \
        + isa.Insn(isa.BPF_JMP | isa.BPF_EXIT).encode()
    return Machine(prog).run(a, b).r0


def ref_jump(spec, a, b):
    ins = isa.make(spec, 1, 2 if spec.src == isa.REG else 0, off=2,
                   imm=isa.s32(b) if spec.imm == isa.FREE else 0)
    mov = isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K
    ex = isa.Insn(isa.BPF_JMP | isa.BPF_EXIT).encode()
    prog = ins.encode() + isa.Insn(mov, 0, imm=0).encode() + ex \
        + isa.Insn(mov, 0, imm=1).encode() + ex
    return Machine(prog).run(a, b).r0


def run_comb(dut, body):
    sim = Simulator(dut)

    async def tb(ctx):
        body(ctx)
    sim.add_testbench(tb)
    sim.run()


def run_clocked(dut, body):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(body)
    sim.run()


def operand(spec, b):
    # what D hands X as operand b: the sign-extended immediate where the ISA says so
    return isa.s32(b) & M64 if spec.operands.imm else b


ALU_SPECS = [s for s in isa.SPECS if s.kind in (isa.ALU, isa.NEG, isa.MOVSX, isa.END)
             and s.op not in (isa.BPF_MUL, isa.BPF_DIV, isa.BPF_MOD)]


def test_alu_matches_reference():
    dut = ALU()

    def body(ctx):
        for spec in ALU_SPECS:
            c = controls(spec)
            for a, b in vectors(40, spec.opcode * 7 + spec.size):
                bb = operand(spec, b)
                ctx.set(dut.op, c["op"])
                ctx.set(dut.is64, c["is64"])
                ctx.set(dut.size, c["size"])
                ctx.set(dut.swap, c["swap"])
                ctx.set(dut.a, a)
                ctx.set(dut.b, bb)
                mask = M64 if spec.is64 else 0xFFFF_FFFF
                if spec.kind == isa.MOVSX:
                    got = ctx.get(dut.movsx) & mask
                elif spec.kind == isa.END:
                    got = ctx.get(dut.endr)
                else:
                    got = ctx.get(dut.result) & mask
                assert got == ref_alu(spec, a, b), (spec.name, hex(a), hex(b))
    run_comb(dut, body)


def test_shifter_every_amount():
    dut = Shifter()

    def body(ctx):
        for a in (0x8123_4567_89AB_CDEF, 0x0FED_CBA9_8765_4321, 0x8000_0001):
            for w64 in (0, 1):
                width = 64 if w64 else 32
                av = a & ((1 << width) - 1)
                for amt in range(64):
                    n = amt % width
                    sv = av - (1 << width) if av >> (width - 1) else av
                    for left, arith, want in ((1, 0, av << n), (0, 0, av >> n),
                                              (0, 1, sv >> n)):
                        for k, v in ((dut.a, a), (dut.amount, amt), (dut.is64, w64),
                                     (dut.left, left), (dut.arith, arith)):
                            ctx.set(k, v)
                        got = ctx.get(dut.result) & ((1 << width) - 1)
                        assert got == want & ((1 << width) - 1), (hex(a), w64, amt, left)
    run_comb(dut, body)


def test_compare_matches_reference():
    dut = Compare()
    specs = [s for s in isa.SPECS if s.kind == isa.JCOND]

    def body(ctx):
        for spec in specs:
            for a, b in vectors(40, spec.opcode):
                ctx.set(dut.op, spec.op >> 4)
                ctx.set(dut.is64, int(spec.is64))
                ctx.set(dut.a, a)
                ctx.set(dut.b, operand(spec, b))
                assert ctx.get(dut.taken) == ref_jump(spec, a, b), (spec.name, hex(a), hex(b))
    run_comb(dut, body)


def _multicycle(dut, spec, a, b, max_steps=70):
    """Drive a multi-cycle unit as X does: a, b held, step counting from 0 until done."""
    async def tb(ctx):
        c = controls(spec)
        ctx.set(dut.a, a)
        ctx.set(dut.b, operand(spec, b))
        ctx.set(dut.is64, c["is64"])
        if isinstance(dut, Divider):
            ctx.set(dut.neg_a, -a & M64)
            ctx.set(dut.signed, c["signed"])
            ctx.set(dut.is_div, int(spec.op == isa.BPF_DIV))
        for step in range(max_steps):
            ctx.set(dut.step, step)
            if ctx.get(dut.done):
                res = ctx.get(dut.res) & (M64 if spec.is64 else 0xFFFF_FFFF)
                out.append((res, step))
                return
            await ctx.tick()
    out = []
    return tb, out


@pytest.mark.parametrize("unit,steps", [(Multiplier, {32: 3, 64: 3}),
                                        (SerialMultiplier, {32: 4, 64: 11})])
def test_multipliers_match_reference(unit, steps):
    specs = [s for s in isa.SPECS if s.kind == isa.ALU and s.op == isa.BPF_MUL]
    for spec in specs:
        for a, b in vectors(30, spec.opcode):
            dut = unit()
            tb, out = _multicycle(dut, spec, a, b)
            run_clocked(dut, tb)
            assert out and out[0][0] == ref_alu(spec, a, b), (spec.name, hex(a), hex(b))
            assert out[0][1] == steps[spec.width]


def test_divider_matches_reference():
    specs = [s for s in isa.SPECS if s.kind == isa.ALU and s.op in (isa.BPF_DIV, isa.BPF_MOD)]
    for spec in specs:
        vs = vectors(14, spec.opcode + spec.off) + [(1 << 63, M64), (0x8000_0000, M64),
                                                    (12345, 0), (M64, 0)]
        for a, b in vs:
            dut = Divider()
            tb, out = _multicycle(dut, spec, a, b)
            run_clocked(dut, tb)
            zero = operand(spec, b) & (M64 if spec.is64 else 0xFFFF_FFFF) == 0
            want_steps = 1 if zero and spec.op == isa.BPF_DIV else spec.width + 1
            assert out and out[0] == (ref_alu(spec, a, b), want_steps), \
                (spec.name, hex(a), hex(b))


def _window_ok(addr, size, pkt, ctx_len, map_len, store):
    end = addr + size
    if memmap.STACK_BASE <= addr and end <= memmap.STACK_BASE + memmap.STACK_SIZE:
        return True
    if not store and memmap.CTX_BASE <= addr and end <= memmap.CTX_BASE + ctx_len:
        return True
    if memmap.MAP_BASE <= addr and end <= memmap.MAP_BASE + map_len:
        return True
    return pkt[0] <= addr and end <= pkt[1]


def test_memory_unit_window_check():
    dut = MemoryUnit()
    rng = random.Random(3)
    pkt = (memmap.PKT_BASE + 256, memmap.PKT_BASE + 256 + 1500)
    bases = [memmap.STACK_BASE, memmap.CTX_BASE, memmap.MAP_BASE, pkt[0], pkt[1] - 8,
             memmap.STACK_BASE + memmap.STACK_SIZE - 8, (1 << 32) - 4, 1 << 32,
             (memmap.STACK_BASE | 0xFFFF_FFFF_0000_0000)]

    def body(ctx):
        ctx.set(dut.pkt_lo, pkt[0])
        ctx.set(dut.pkt_hi, pkt[1])
        ctx.set(dut.ctx_len, 24)
        ctx.set(dut.map_len, 4096)
        for _ in range(600):
            base = (rng.choice(bases) + rng.randrange(-16, 40)) & M64
            off = rng.choice((0, 1, -1, 7, -8, 100, -300, 0x7FFF, -0x8000))
            size = rng.randrange(4)
            store = rng.randrange(2)
            ctx.set(dut.d_base, base)
            ctx.set(dut.d_off, off & 0xFFFF)
            ctx.set(dut.d_size, size)
            ctx.set(dut.x_addr, ctx.get(dut.d_addr))     # what X registers from D
            ctx.set(dut.size, size)
            ctx.set(dut.is_store, store)
            addr = (base + off) & M64
            want = _window_ok(addr, 1 << size, pkt, 24, 4096, store)
            assert ctx.get(dut.win_ok) == want, (hex(base), off, size, store)
            # X's own address computation, from the forwarded base
            ctx.set(dut.a, base)
            ctx.set(dut.off, off & 0xFFFF)
            ctx.set(dut.x_addr, ctx.get(dut.agu))
            assert ctx.get(dut.win_ok) == want, ("agu", hex(base), off, size, store)
    run_comb(dut, body)


def test_memory_unit_atomic_data_and_load_extension():
    dut = MemoryUnit()
    rng = random.Random(5)
    specs = [s for s in isa.SPECS if s.kind == isa.ATOMIC]

    def body(ctx):
        ctx.set(dut.is_atomic, 1)
        ctx.set(dut.at_p1_first, 1)
        for spec in specs:
            for _ in range(20):
                old, b, r0 = (rng.getrandbits(64) for _ in range(3))
                if rng.randrange(2):
                    r0 = old
                w = 3 if spec.size == isa.BPF_DW else 2
                mask = M64 if w == 3 else 0xFFFF_FFFF
                old &= mask
                ctx.set(dut.imm, spec.imm)
                ctx.set(dut.size, w)
                ctx.set(dut.ld_q, old)
                ctx.set(dut.b, b)
                ctx.set(dut.r0, r0)
                op = spec.imm & 0xF0
                want = {isa.BPF_ADD: old + b, isa.BPF_OR: old | b, isa.BPF_AND: old & b,
                        isa.BPF_XOR: old ^ b}.get(op, b)
                if spec.imm == isa.BPF_CMPXCHG and old != r0 & mask:
                    want = old
                assert ctx.get(dut.wdata) & mask == want & mask, spec.name
        for size in range(4):
            for sx in (0, 1):
                for ab in (0, 1):
                    if sx and size == 3:
                        continue
                    v = rng.getrandbits(64)
                    n = 1 << size
                    ctx.set(dut.ld_q, v & ((1 << 8 * n) - 1))
                    ctx.set(dut.w_load, {"idx": 0, "size": size, "sx": sx, "abs": ab})
                    raw = v & ((1 << 8 * n) - 1)
                    if sx:
                        want = isa.sext(raw, 8 * n) & M64
                    elif ab and n in (2, 4):
                        want = int.from_bytes(raw.to_bytes(n, "little"), "big")
                    else:
                        want = raw
                    assert ctx.get(dut.w_data) == want, (size, sx, ab)
    run_comb(dut, body)


def test_register_file_against_model():
    dut = RegisterFile()
    rng = random.Random(7)

    async def tb(ctx):
        model = [0] * 11
        live = 0b100_0000_0110      # r1, r2, r10: set at start, their copies pending
        ctx.set(dut.init, 1)
        ctx.set(dut.r1_init, 111)
        ctx.set(dut.r2_init, 222)
        await ctx.tick()
        ctx.set(dut.init, 0)
        ctx.set(dut.running, 1)
        model[1], model[2], model[10] = 111, 222, memmap.frame_top(0)
        for _ in range(400):
            ia, ib = rng.randrange(11), rng.randrange(11)
            ctx.set(dut.a_idx, ia)
            ctx.set(dut.b_idx, ib)
            for idx, port, pend in ((ia, dut.a_data, dut.a_pend), (ib, dut.b_data, dut.b_pend)):
                if not ctx.get(pend):
                    # a register never written since start reads 0
                    assert ctx.get(port) == (model[idx] if live >> idx & 1 else 0), idx
            assert [ctx.get(dut.r[i]) for i in range(11)] == model
            we = rng.randrange(3)
            idx, val = rng.randrange(10), rng.getrandbits(64)
            ctx.set(dut.x_en, we == 1)
            ctx.set(dut.w_en, we == 2)
            ctx.set(dut.x_idx, idx)
            ctx.set(dut.w_idx, idx)
            ctx.set(dut.x_data, val)
            ctx.set(dut.w_data, val)
            await ctx.tick()
            if we:
                model[idx] = val
                live |= 1 << idx
        ctx.set(dut.x_en, 0)
        ctx.set(dut.w_en, 0)
        for _ in range(4):
            await ctx.tick()
        for i in range(10):
            ctx.set(dut.a_idx, i)
            assert not ctx.get(dut.a_pend)
            assert ctx.get(dut.a_data) == (model[i] if live >> i & 1 else 0)
    run_clocked(dut, tb)


def test_call_frames_push_pop():
    dut = CallFrames(12)

    async def tb(ctx):
        ctx.set(dut.init, 1)
        await ctx.tick()
        ctx.set(dut.init, 0)
        stack = []
        for d in range(memmap.MAX_CALL_FRAMES - 1):
            pc, regs = 100 + d, random.getrandbits(256)
            ctx.set(dut.push, 1)
            ctx.set(dut.push_pc, pc)
            ctx.set(dut.regs, regs)
            await ctx.tick()
            stack.append((pc, regs))
        ctx.set(dut.push, 0)
        while stack:
            pc, regs = stack.pop()
            assert ctx.get(dut.depth) == len(stack) + 1
            assert (ctx.get(dut.ret_pc), ctx.get(dut.saved)) == (pc, regs)
            ctx.set(dut.pop, 1)
            await ctx.tick()
            ctx.set(dut.pop, 0)
        assert ctx.get(dut.depth) == 0
    run_clocked(dut, tb)


@pytest.mark.parametrize("target_port", [True, False])
def test_front_end_stream_and_redirect(target_port):
    dut = FrontEnd(64, target_port)
    words = [random.getrandbits(64) for _ in range(64)]

    async def tb(ctx):
        for i, w in enumerate(words):
            ctx.set(dut.pm_we, 1)
            ctx.set(dut.pm_addr, i)
            ctx.set(dut.pm_data, w)
            await ctx.tick()
        ctx.set(dut.pm_we, 0)
        ctx.set(dut.init, 1)
        await ctx.tick()
        ctx.set(dut.init, 0)
        ctx.set(dut.running, 1)
        ctx.set(dut.step, 1)
        seen = []
        for _ in range(5):
            await ctx.tick()
            seen.append((ctx.get(dut.pc_ir), ctx.get(dut.ir)))
        assert seen == [(i, words[i]) for i in range(5)]
        # a taken branch to 40: with port B, IR holds slot 40 the next cycle
        ctx.set(dut.b_addr, 40)
        await ctx.tick()
        ctx.set(dut.target, 40)
        ctx.set(dut.redirect_br, 1)
        await ctx.tick()
        ctx.set(dut.redirect_br, 0)
        if not target_port:
            assert not ctx.get(dut.ir_valid)
            await ctx.tick()
        assert (ctx.get(dut.ir_valid), ctx.get(dut.pc_ir), ctx.get(dut.ir)) == \
            (1, 40, words[40])
        await ctx.tick()
        assert (ctx.get(dut.pc_ir), ctx.get(dut.ir)) == (41, words[41])
        # hold: IR keeps its slot
        ctx.set(dut.hold, 1)
        await ctx.tick()
        await ctx.tick()
        assert (ctx.get(dut.pc_ir), ctx.get(dut.ir)) == (41, words[41])
    run_clocked(dut, tb)
