"""cocotb tests for tests/test_bench.py: one that must pass, one that must fail (the runner
has to report it)."""
from pathlib import Path

import cocotb

from bpfpga.isa import XDP_DROP, XDP_PASS
from bpfpga.sim.bench import Bench

DROP = Path(__file__).resolve().parents[1] / "examples" / "drop" / "drop.o"
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
