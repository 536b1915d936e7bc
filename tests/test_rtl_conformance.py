"""The whole conformance suite on the rtl target: 313 programs in one Verilator run.

Every test is compared against its expected r0 and must end without a trap; the reference
machine's executed-instruction count and final mem must match too (the CPU counts what it
retires, so a skipped or repeated instruction shows here even when r0 happens to agree).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.rtl

ENV = "BPFPGA_CONFORMANCE"


def _suite() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared/conformance/bpf_conformance"


def _rows():
    f = _suite() / "assembled.jsonl"
    if not f.exists():
        pytest.skip(f"conformance data not found at {f} (set ${ENV})")
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def _expected(r) -> int:
    v = r["expected_r0"]
    return int(v, 16) if v.lower().startswith("0x") else int(v) & (2**64 - 1)


@pytest.fixture(scope="session")
def rtl_conformance():
    from bpfpga.sim.rtl import run_programs
    rows = _rows()
    jobs = [(bytes.fromhex(r["program_hex"]), bytes.fromhex(r["mem_hex"])) for r in rows]
    return rows, jobs, run_programs(jobs)


def test_all_313_pass_in_rtl(rtl_conformance):
    rows, jobs, results = rtl_conformance
    assert len(rows) == 313
    failed = []
    for r, res in zip(rows, results):
        if res.trap != 0 or res.r0 != _expected(r):
            failed.append(f"{r['name']}: expected {_expected(r):#x}, got {res.r0:#x} "
                          f"(trap {res.trap} at pc {res.trap_pc} {res.trap_detail})")
    passed = len(rows) - len(failed)
    assert not failed, f"{passed} passed, {len(failed)} failed:\n" + "\n".join(failed)


def test_rtl_matches_reference_counts_and_mem(rtl_conformance):
    from bpfpga.sim.ref import run_program
    rows, jobs, results = rtl_conformance
    diffs = []
    for r, (prog, mem), res in zip(rows, jobs, results):
        ref = run_program(prog, mem)
        if (ref.insns, ref.mem) != (res.insns, res.mem):
            diffs.append(f"{r['name']}: ref insns {ref.insns} rtl {res.insns}, "
                         f"mem {'same' if ref.mem == res.mem else 'differs'}")
    assert not diffs, "\n".join(diffs)


def test_cycles_are_reported(rtl_conformance):
    rows, jobs, results = rtl_conformance
    for res in results:
        # at least one cycle per retired instruction, plus the pipeline fill
        assert res.cycles >= res.insns + 1


# ---------------------------------------------------------------- the smallest board's CPU
@pytest.fixture(scope="module")
def colorlight_cpu():
    """The CPU as the Colorlight 5A-75B builds it (boards/colorlight_5a_75b.py: no
    branch-target port, call frames in block RAM, the serial multiplier): a model of its
    own (the options are part of the model's key)."""
    from bpfpga.boards.colorlight_5a_75b import ENGINE
    from bpfpga.sim import rtl
    cfg = dict(ENGINE)
    mp = pytest.MonkeyPatch()
    mp.setattr(rtl, "TARGET_PORT", cfg["target_port"])
    mp.setattr(rtl, "CPU_OPTIONS", {k: cfg[k] for k in ("frame_bram", "mul_serial")})
    yield cfg
    mp.undo()


def test_colorlight_cpu_passes_all_313(colorlight_cpu):
    from bpfpga.sim.ref import run_program
    from bpfpga.sim.rtl import run_programs
    assert colorlight_cpu["mul_serial"] and colorlight_cpu["frame_bram"]
    rows = _rows()
    jobs = [(bytes.fromhex(r["program_hex"]), bytes.fromhex(r["mem_hex"])) for r in rows]
    results = run_programs(jobs)
    bad = []
    for r, (prog, mem), res in zip(rows, jobs, results):
        ref = run_program(prog, mem)
        if res.trap != 0 or res.r0 != _expected(r) or (ref.insns, ref.mem) != (res.insns,
                                                                                res.mem):
            bad.append(f"{r['name']}: r0 {res.r0:#x} (want {_expected(r):#x}) trap {res.trap}"
                       f" insns {res.insns} (ref {ref.insns})")
    assert len(rows) == 313 and not bad, "\n".join(bad)



def _nested_calls(depth: int, rnd) -> bytes:
    """main and depth - 1 nested bpf-to-bpf calls; every function sets r6..r9 to values of
    its own, keeps one on its stack, calls the next, then folds its r6..r9 (which the call
    must have restored), the stack word and a multiplication into r0."""
    from bpfpga import isa
    from bpfpga.isa import Insn
    funcs = []
    for k in range(depth):
        body = [Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, 0, imm=0)] if k == 0 else []
        for r in (6, 7, 8, 9):
            body.append(Insn(isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW, r, imm=rnd.getrandbits(64)))
        body.append(Insn(isa.BPF_STX | isa.BPF_MEM | isa.BPF_DW, 10, 6 + k % 4, -8))
        if k < depth - 1:
            body.append("call")
        for r, op in ((6, isa.BPF_ADD), (7, isa.BPF_XOR), (8, isa.BPF_ADD), (9, isa.BPF_XOR)):
            body.append(Insn(isa.BPF_ALU64 | op | isa.BPF_X, 0, r))
        body += [Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 1, 10, -8),
                 Insn(isa.BPF_ALU64 | isa.BPF_ADD | isa.BPF_X, 0, 1),
                 Insn(isa.BPF_ALU64 | isa.BPF_MUL | isa.BPF_K, 0, imm=rnd.getrandbits(31)),
                 Insn(isa.BPF_JMP | isa.BPF_EXIT)]
        funcs.append(body)
    starts, pc = [], 0
    for body in funcs:
        starts.append(pc)
        pc += sum(1 if i == "call" else i.slots for i in body)
    out, pc = [], 0
    for k, body in enumerate(funcs):
        for i in body:
            if i == "call":
                i = Insn(isa.BPF_JMP | isa.BPF_CALL, 0, isa.BPF_PSEUDO_CALL,
                         imm=starts[k + 1] - (pc + 1))
            out.append(i)
            pc += i.slots
    return b"".join(i.encode() for i in out)


def test_colorlight_cpu_nested_calls_restore_frames(colorlight_cpu):
    """Call frames in block RAM (frame_bram: r6..r9 written and read back one word a cycle)
    at every depth up to the limit and one beyond it (trap 6): r0, trap, executed count and
    memory as the reference machine."""
    import random
    from bpfpga.sim.ref import run_program
    from bpfpga.sim.rtl import run_programs
    rnd = random.Random(7)
    jobs = [(_nested_calls(d, rnd), bytes(16)) for d in list(range(1, 10)) * 3]
    results = run_programs(jobs)
    for (prog, mem), res in zip(jobs, results):
        ref = run_program(prog, mem)
        assert (res.r0, res.trap, res.insns, res.mem) == (ref.r0, ref.trap, ref.insns, ref.mem)
    assert {r.trap for r in results} == {0, 6}
