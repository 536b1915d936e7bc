"""The helper unit's trace_printk (hdl/helpers_hw.py) alone in Amaranth's simulator: random
formats (conversions, flags, widths, l/ll, %s, %p, %px, and the mistakes the kernel refuses)
must give the return value bpfpga/printk.py gives (the text's length or -EINVAL), and a record
with the call's arguments; with trace_depth 0 the helper is not built: a call traps."""
import dataclasses
import random

from amaranth.sim import Simulator

from bpfpga import memmap, traps
from bpfpga.hdl.config import SIM
from bpfpga.hdl.helpers_hw import H_TRACE, HelperUnit
from bpfpga.printk import bprintf
from bpfpga.records import TRACE_REC

M64 = (1 << 64) - 1
FMT = memmap.STACK_BASE + 0x100
STR = memmap.STACK_BASE + 0x40
STRING = b"bpfpga\0"


def _random_format(rnd):
    parts = []
    nconv = 0
    for _ in range(rnd.randrange(1, 6)):
        k = rnd.random()
        if k < 0.35:
            parts.append("".join(rnd.choice("ab :=[]\t") for _ in range(rnd.randrange(1, 5))))
        elif k < 0.4:
            parts.append("%%")
        else:
            flags = "".join(rnd.choice("0+- ") for _ in range(rnd.choice((0, 0, 1, 2))))
            width = str(rnd.randrange(1, 25)) if rnd.random() < 0.3 else ""
            conv = rnd.choice(["d", "i", "u", "x", "X", "ld", "lld", "llu", "lx", "llx", "c",
                               "s", "p", "px", "p.", "lc", "q", "5.2d", "#x", "llld", "pK"])
            parts.append(f"%{flags}{width}{conv}")
            nconv += 1
    if rnd.random() < 0.05:
        parts.append("\x01")
    return "".join(parts).encode()


def _args(rnd):
    out = []
    for _ in range(3):
        k = rnd.random()
        if k < 0.2:
            out.append(STR)
        elif k < 0.3:
            out.append(0)
        elif k < 0.5:
            out.append(rnd.getrandbits(64))
        elif k < 0.7:
            out.append((-rnd.randrange(1, 1 << 40)) & M64)
        else:
            out.append(rnd.randrange(0, 100000))
    return out


def _run(cfg, cases):
    dut = HelperUnit(cfg, 0)
    mem = {}
    got = []

    async def tb(ctx):
        ctx.set(dut.map_len, 4096)
        ctx.set(dut.new_packet, 1)
        ctx.set(dut.pkt_len, 64)
        await ctx.tick()
        ctx.set(dut.new_packet, 0)
        for fmt, size, args in cases:
            mem.clear()
            for i, b in enumerate(fmt):
                mem[FMT + i] = b
            for i, b in enumerate(STRING):
                mem[STR + i] = b
            ctx.set(dut.helper.req, 1)
            ctx.set(dut.helper.id, H_TRACE)
            ctx.set(dut.helper.arg1, FMT)
            ctx.set(dut.helper.arg2, size)
            ctx.set(dut.helper.arg3, args[0])
            ctx.set(dut.helper.arg4, args[1])
            ctx.set(dut.helper.arg5, args[2])
            rec = None
            for _ in range(4000):
                # a block-RAM-like target: one byte, ready one cycle after valid
                if ctx.get(dut.bus.valid) and not ctx.get(dut.bus.we):
                    a = ctx.get(dut.bus.addr)
                    await ctx.tick()
                    ctx.set(dut.bus.rdata, mem.get(a, 0))
                    ctx.set(dut.bus.ready, 1)
                    await ctx.delay(0)
                    if ctx.get(dut.helper.ack):
                        break
                    await ctx.tick()
                    ctx.set(dut.bus.ready, 0)
                    continue
                if ctx.get(dut.tr_req):
                    rec = ctx.get(dut.tr_rec.as_value())
                    ctx.set(dut.tr_ack, 1)
                if ctx.get(dut.helper.ack):
                    break
                await ctx.tick()
                ctx.set(dut.tr_ack, 0)
            else:
                raise AssertionError(f"no ack for {fmt!r}")
            r0 = ctx.get(dut.helper.r0)
            trap = ctx.get(dut.helper.trap)
            got.append((r0, trap, rec))
            ctx.set(dut.helper.req, 0)
            ctx.set(dut.tr_ack, 0)
            await ctx.tick()
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


def _want(fmt, size, args):
    def read_str(a):
        if STR <= a < STR + len(STRING):
            return STRING[a - STR:].split(b"\0")[0]
        return b""
    text = bprintf(fmt[:size], args, read_str)
    return (-22) & M64 if text is None else len(text)


def test_trace_printk_helper_random_formats():
    rnd = random.Random(5)
    cases = []
    for _ in range(40):
        f = _random_format(rnd) + b"\0"
        size = len(f) if rnd.random() < 0.9 else max(1, len(f) - 1)   # some without NUL
        cases.append((f, size, _args(rnd)))
    got = _run(SIM, cases)
    bad = 0
    for (fmt, size, args), (r0, trap, rec) in zip(cases, got):
        want = _want(fmt, size, args)
        assert trap == 0
        assert r0 == want, (fmt, size, [hex(a) for a in args], r0, want)
        if want == (-22) & M64:
            bad += 1
            assert rec is None
        else:
            f = TRACE_REC.unpack_int(rec)
            assert f["fmt"] == FMT and f["fmt_size"] == size
            assert f["len"] == want
            assert [f["arg0"], f["arg1"], f["arg2"]] == [a & M64 for a in args]
    assert 5 <= bad <= 35          # both kinds of case were exercised


def test_trace_printk_without_trace_unit():
    # no trace unit: the helper is not built (the loader refuses trace_printk objects; a
    # call traps as an unknown helper) and nothing reaches the trace FIFO
    cfg = dataclasses.replace(SIM, trace_depth=0)
    assert H_TRACE not in cfg.helper_set()
    (r0, trap, rec), = _run(cfg, [(b"x %d\0", 5, [1, 2, 3])])
    assert (trap, rec) == (traps.TRAP_HELPER, None)
