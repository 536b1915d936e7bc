"""cocotb tests for tests/test_bench.py: drop_passes_must_fail must fail (the runner has to
report it), the others pass."""
from pathlib import Path

import cocotb

from bpfpga.isa import XDP_DROP, XDP_PASS
from bpfpga.sim.bench import Bench

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DROP = EXAMPLES / "drop" / "drop.o"
MACSWAP = EXAMPLES / "macswap" / "macswap.o"
FRAME = bytes.fromhex("0200000000020200000000010800") + bytes(46)


@cocotb.test()
async def drop_drops(dut):
    bench = await Bench.start(dut)
    await bench.load(DROP)
    res = await bench.send(FRAME)
    assert res.verdict == XDP_DROP and res.trap == 0 and res.cycles > 0
    res = await bench.send(FRAME, port=1)
    assert res.verdict == XDP_DROP and res.in_port == 1
    s = await bench.counters()
    assert s["verdicts"]["XDP_DROP"] == 2 and s["rx"]["port1"] == 1 and s["rx"]["inject"] == 1


@cocotb.test()
async def drop_passes_must_fail(dut):
    bench = await Bench.start(dut)
    await bench.load(DROP)
    assert (await bench.send(FRAME)).verdict == XDP_PASS


@cocotb.test()
async def trace_lines_are_the_reference_machines(dut):
    """$BENCH_TRACE_OBJ (tests/objects/trace.c, built by the pytest side): the trace FIFO's
    lines for a frame are the ones the ref target prints for it."""
    import os

    from bpfpga.compiler.elf import load_object
    from bpfpga.host.targets import open_target
    obj = os.environ["BENCH_TRACE_OBJ"]
    frame = bytes(range(64))
    with open_target("ref", load_object(obj)) as ref:
        want = list(ref.run(frame).trace)
    bench = await Bench.start(dut)
    await bench.load(obj)
    res = await bench.send(frame)
    assert res.trap == 0
    got = await bench.trace()
    assert want and got == want, (got, want)
    assert await bench.trace() == []              # read once


@cocotb.test()
async def macswap_leaves_on_its_port(dut):
    """capture off: an XDP_TX frame of port 1 leaves on tx1, MACs exchanged."""
    bench = await Bench.start(dut, capture=False)
    await bench.load(MACSWAP)
    assert await bench.send(FRAME, port=1, wait=False) is None
    out = await bench.receive(1)
    assert out == FRAME[6:12] + FRAME[0:6] + FRAME[12:], out
    s = await bench.counters()
    assert s["tx"]["port1"] == 1 and s["verdicts"]["XDP_TX"] == 1
