"""The helper unit's sub-units (hdl/helpers/) in Amaranth's simulator: csum_diff's result
stage against the reference machine's csum_diff (sim/xdp.py, the kernel's code), and the
unit still built with and without the sub-units' helpers."""
import random
import struct
from dataclasses import replace

import pytest
from bpfpga.hdl.config import DEFAULT
from bpfpga.hdl.helpers.csum_diff import CsumFinish
from bpfpga.sim.xdp import csum_diff


def sums(frm: bytes, to: bytes, seed: int):
    """the two sums as the unit's CS_TO / CS_FR states accumulate them"""
    w = lambda b: sum(x for (x,) in struct.iter_unpack("<I", b))    # noqa: E731
    a = (seed + w(to)) if to else 0
    b = ((0 if to else ~seed & 0xFFFFFFFF) + w(frm)) if frm else 0
    return a, b


def test_csum_finish_matches_the_kernels_csum_diff():
    rnd = random.Random(15)
    cases = [(b"", b"", 0x1234), (b"\xff" * 4, b"", 0), (b"", b"\xff" * 512, 0xFFFFFFFF)]
    for _ in range(40):
        nf, nt = rnd.choice([0, 1, 2, 16, 64]), rnd.choice([0, 1, 3, 64])
        cases.append((rnd.randbytes(4 * nf), rnd.randbytes(4 * nt), rnd.getrandbits(32)))
    dut = CsumFinish()
    got = []

    async def tb(ctx):
        for frm, to, seed in cases:
            a, b = sums(frm, to, seed)
            ctx.set(dut.to_sum, a)
            ctx.set(dut.from_sum, b)
            ctx.set(dut.has_to, bool(to))
            ctx.set(dut.has_from, bool(frm))
            ctx.set(dut.seed, seed)
            got.append(ctx.get(dut.result))

    from amaranth.sim import Simulator
    sim = Simulator(dut)            # (combinational: no clock)
    sim.add_testbench(tb)
    sim.run()
    assert got == [csum_diff(*c) for c in cases]


@pytest.mark.parametrize("helpers", [None, ("csum_diff",), ("xdp_adjust_head",),
                                     ("xdp_adjust_meta", "xdp_adjust_tail")])
def test_the_unit_builds_only_the_sub_units_states_configured(helpers):
    from amaranth.back import rtlil

    from bpfpga.hdl.config import HELPERS
    from bpfpga.hdl.helpers_hw import HelperUnit
    by_name = {v: k for k, v in HELPERS.items()}
    ids = None if helpers is None else tuple(sorted(by_name[h] for h in helpers))
    cfg = replace(DEFAULT, helpers=ids)
    hu = HelperUnit(cfg, 0)
    rtlil.convert(hu)
    st = set(hu.states)
    want = {"csum_diff": {"CS0", "CS_FIN"}, "xdp_adjust_head": {"AH0", "AH_SET"},
            "xdp_adjust_meta": {"AM0"}, "xdp_adjust_tail": {"AT0"}}
    for h, states in want.items():
        if helpers is None or h in helpers:
            assert states <= st, (h, st)
        else:
            assert not states & st, (h, st)
