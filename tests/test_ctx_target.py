"""The XDP context (xdp_md) as a data-bus target, hdl/xdp.py CtxTarget: any size and alignment
by default; with ``strict`` (EngineConfig.strict_ctx, the smallest boards) only the accesses
the kernel's verifier allows an XDP program (an aligned 4-byte load, __is_valid_xdp_access),
anything else ending in ``err`` (the CPU's memory trap). Amaranth's simulator, no Verilator."""
import random

import pytest
from bpfpga.hdl.xdp import CtxTarget
from conftest import simulate

FIELDS = [0x1000_0100, 0x1000_0162, 0x1000_00F0, 3, 0, 0]
RAW = b"".join(f.to_bytes(4, "little") for f in FIELDS)


def run(strict, accesses):
    dut = CtxTarget(strict=strict)
    got = []

    async def tb(ctx):
        ctx.set(dut.fields, sum(f << (32 * i) for i, f in enumerate(FIELDS)))
        for off, size in accesses:
            ctx.set(dut.bus.valid, 1)
            ctx.set(dut.bus.addr, 0x3000_0000 + off)
            ctx.set(dut.bus.size, size)
            cycles = 0
            while True:
                await ctx.tick()
                cycles += 1
                if ctx.get(dut.bus.ready):
                    break
                assert cycles < 5, "no ready"
            got.append((ctx.get(dut.bus.rdata), ctx.get(dut.bus.err), cycles))
            ctx.set(dut.bus.valid, 0)
            await ctx.tick()

    simulate(dut, tb)
    return got


def expect(off, size):
    n = 1 << size
    return int.from_bytes((RAW + bytes(8))[off:off + n], "little")


@pytest.mark.parametrize("strict", [False, True])
def test_aligned_word_loads(strict):
    acc = [(4 * i, 2) for i in range(6)]
    for (off, size), (data, err, cycles) in zip(acc, run(strict, acc)):
        assert (data, err) == (FIELDS[off // 4], 0)
        assert cycles == 1          # ready the cycle after valid, as block RAM


def test_any_access_when_not_strict():
    rnd = random.Random(7)
    acc = [(off, size) for size in range(4) for off in range(0, 24 - (1 << size) + 1)]
    rnd.shuffle(acc)
    for (off, size), (data, err, _) in zip(acc, run(False, acc)):
        assert (data, err) == (expect(off, size), 0), (off, size)


def test_strict_refuses_what_the_verifier_refuses():
    # narrow loads, 8-byte loads and misaligned words: the kernel rejects them at load time
    bad = [(0, 0), (1, 0), (2, 1), (0, 1), (0, 3), (8, 3), (2, 2), (5, 2)]
    for (off, size), (_, err, cycles) in zip(bad, run(True, bad)):
        assert err == 1 and cycles == 1, (off, size)
