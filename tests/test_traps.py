"""Traps end the packet on the engine (issue: a faulting packet was sent out with r0's
verdict): XDP_ABORTED with its reason and pc, the trap and verdict counters counting it, for
every verdict r0 holds when the fault comes; a looping packet waited for until the budget
ends it; whole XDP programs with faults at random points, ref against the engine
(sim/xdp_fuzz.py); and the same through the simulated board and the CLI (`bpfpga stats`)."""
import json
import os
import time

import pytest

from bpfpga import isa
from bpfpga.compiler.asm import assemble_insns
from bpfpga.hdl import control as C
from bpfpga.obj import BpfObject, Program
from bpfpga.sim import pcap
from bpfpga.traps import TRAP_BUDGET, TRAP_MEM

VERDICTS = [0, 1, 2, 3, 4, 5, -1]
PKT = bytes.fromhex("020000000002" "020000000001" "0800") + bytes(range(50))
FUZZ_CASES = int(os.environ.get("BPFPGA_XDP_FUZZ", "16"))


def _obj(src: str) -> BpfObject:
    return BpfObject("t.o", [Program("p", "xdp", isa.encode(assemble_insns(src)))], [],
                     license="GPL")


def _run(url, obj, budget=None, packets=(PKT,)):
    from bpfpga.host.board import RtlTarget
    kw = {} if budget is None else {"budget": budget}
    with RtlTarget(obj, url=url, **kw) as t:
        t.dev.control(clear=True)
        res = [t.run(p) for p in packets]
        return res, t.counters()


@pytest.mark.parametrize("r0", VERDICTS)
def test_fault_ends_aborted_whatever_r0_holds(engine, r0):
    from bpfpga.sim.xdp import XdpRef
    o = _obj(f"mov %r0, {r0}\nmov %r1, 0\nldxdw %r1, [%r1+0]\nexit")
    want = XdpRef(o).run(PKT)
    assert (want.verdict, want.trap, want.trap_pc) == (isa.XDP_ABORTED, TRAP_MEM, 2)
    (got,), c = _run(engine, o)
    assert (got.verdict, got.trap, got.trap_pc, got.insns) == \
        (isa.XDP_ABORTED, TRAP_MEM, 2, want.insns)
    assert c[C.C_TRAP + TRAP_MEM] == 1 and sum(c[C.C_TRAP:C.C_TRAP + 16]) == 1
    assert c[C.C_VERDICT + isa.XDP_ABORTED] == 1 and sum(c[C.C_VERDICT:C.C_VERDICT + 5]) == 1
    assert sum(c[C.C_TX:C.C_TX + 8]) == 0


@pytest.mark.parametrize("r0", [2, 3])
def test_budget_ends_aborted(engine, r0):
    """A loop with r0 = XDP_PASS / XDP_TX: the budget trap, after exactly the budget's
    instructions (as on the reference machine)."""
    from bpfpga.sim.xdp import XdpRef
    o = _obj(f"mov %r0, {r0}\nja -1\nexit")
    want = XdpRef(o, budget=3000).run(PKT)
    (got,), c = _run(engine, o, budget=3000)
    assert (got.verdict, got.trap, got.trap_pc, got.insns) == \
        (isa.XDP_ABORTED, TRAP_BUDGET, 1, 3000) == \
        (want.verdict, want.trap, want.trap_pc, want.insns)
    assert c[C.C_TRAP + TRAP_BUDGET] == 1 and c[C.C_VERDICT + isa.XDP_ABORTED] == 1


def test_host_waits_while_a_core_runs(engine):
    """A packet that runs longer than the host's wait for a result: the host keeps waiting
    while the core runs (its busy cycles advance), and the budget ends the packet."""
    from bpfpga.host.board import RtlTarget
    o = _obj("mov %r0, 3\nja -1\nexit")
    with RtlTarget(o, url=engine, budget=60_000) as t:
        t0 = time.time()
        t.dev.inject([(PKT, 0)])
        rec = t.dev.results(1, timeout=0.5)[0]
        assert time.time() - t0 > 0.5        # ran longer than the timeout
        assert rec["trap"] == TRAP_BUDGET and rec["verdict"] == isa.XDP_ABORTED


def test_engine_fuzz_ref_vs_rtl(engine):
    """Random whole XDP programs with a fault at a random point and r0 holding every verdict:
    the engine gives the reference machine's verdicts, traps, pcs, instruction counts,
    packets, maps and counters (bench/fuzz_xdp.py runs the long campaign)."""
    from bpfpga.host.board import RtlTarget
    from bpfpga.sim.xdp_fuzz import case, run_case
    diffs, faults = [], set()
    for seed in range(FUZZ_CASES):
        c = case(seed)
        faults.add(c.fault)
        diffs += run_case(c, lambda o, **kw: RtlTarget(o, url=engine, **kw))
    assert len(faults) >= 4          # the draw reaches most kinds of fault
    assert diffs == [], "\n".join(diffs[:10])


def test_simboard_faulting_program_is_aborted(tmp_path):
    """tests/objects/fault.c through `bpfpga sim-board` and the CLI: every frame, whatever
    verdict r0 held, comes back ABORTED with trap 3 at the ref's pc, none leaves a port, and
    `bpfpga stats` counts the traps."""
    from bpfobjs import build_all
    from bpfpga.compiler.elf import load_object
    from bpfpga.sim.xdp import XdpRef
    from test_simboard import Board
    obj = build_all()["fault"]
    frames = [PKT[:14] + bytes([v & 0xFF]) + PKT[15:] for v in (0, 1, 2, 3, 4, 5, 200)]
    want = [XdpRef(load_object(str(obj))).run(f) for f in frames]
    assert {(w.verdict, w.trap) for w in want} == {(isa.XDP_ABORTED, TRAP_MEM)}
    pcap.write(tmp_path / "in.pcap", frames)
    cap = tmp_path / "cap"
    board = Board(tmp_path, "--port0-pcap", str(tmp_path / "in.pcap"), "--capture", str(cap),
                  "--replay-on", "load")
    try:
        board.cli("prog", "load", str(obj))
        t0 = time.time()
        res = []
        while len(res) < len(frames):
            assert time.time() - t0 < 120, f"{len(res)} of {len(frames)} results"
            time.sleep(0.3)
            if (cap / "results.json").exists():
                res = [json.loads(x) for x in (cap / "results.json").read_text().splitlines()]
        stats = json.loads(board.cli("stats", "-j").stdout)
    finally:
        board.close()
    assert [(r["verdict"], r["trap"], r["trap_pc"], r["out"]) for r in res] == \
        [(isa.XDP_ABORTED, TRAP_MEM, w.trap_pc, None) for w in want]
    assert stats["traps"]["memory_access"] == len(frames)
    assert stats["verdicts"]["XDP_ABORTED"] == len(frames)
    assert pcap.read(cap / "port0.pcap") == []
