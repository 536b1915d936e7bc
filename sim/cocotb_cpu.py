"""cocotb bench for the CPU test top (hdl/testtop.py): runs a batch of jobs in one simulation.

Started by :mod:`bpfpga.sim.rtl` through ``cocotb_tools.runner``; reads the job file named by
$BPFPGA_RTL_JOBS and writes results to $BPFPGA_RTL_RESULTS (JSON). Per job: load the program
through the program-memory write port, clear the stack, poke mem into the packet RAM, start,
wait for the end in stretches of simulated time (Python does not wake up on every clock
edge), read back r0/trap/counters and mem. Inputs change on falling edges and outputs are
read on falling edges, so there is never a race with the rising edge that samples them.
"""
from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from bpfpga import memmap

PERIOD_NS = 10
PKT, STACK, CTX, MAP = range(4)


async def _host_write(dut, sel: int, data: bytes):
    dut.host_sel.value = sel
    for w in range(0, len(data), 8):
        chunk = data[w:w + 8]
        dut.host_addr.value = w // 8
        dut.host_wdata.value = int.from_bytes(chunk.ljust(8, b"\0"), "little")
        dut.host_we.value = (1 << len(chunk)) - 1
        await FallingEdge(dut.clk)
    dut.host_we.value = 0


async def _host_read(dut, sel: int, n: int) -> bytes:
    dut.host_sel.value = sel
    out = bytearray()
    for w in range((n + 7) // 8):
        dut.host_addr.value = w
        await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        out += int(dut.host_rdata.value).to_bytes(8, "little")
    return bytes(out[:n])


async def _wait_idle(dut, max_cycles: int) -> bool:
    """Wait until busy falls; True when it did within max_cycles."""
    step = 16
    waited = 0
    while waited < max_cycles:
        await Timer(step * PERIOD_NS, unit="ns")
        waited += step
        if not int(dut.busy.value):
            return True
        step = min(step * 2, 1 << 16)
    return False


@cocotb.test()
async def run_jobs(dut):
    spec = json.load(open(os.environ["BPFPGA_RTL_JOBS"]))
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for name in ("start", "pm_we", "host_we", "stack_clear", "r1_init", "r2_init",
                 "ctx_len", "map_len"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    results = []
    for job in spec["jobs"]:
        prog = bytes.fromhex(job["program"])
        mem = bytes.fromhex(job["mem"])
        budget = job.get("budget", spec.get("budget", memmap.INSN_BUDGET))
        nslots = len(prog) // 8
        if nslots > spec["pm_depth"]:
            results.append({"error": f"program of {nslots} slots exceeds the program "
                                     f"memory ({spec['pm_depth']})"})
            continue
        if len(mem) > spec["pkt_bytes"]:
            results.append({"error": f"mem of {len(mem)} bytes exceeds the packet RAM"})
            continue
        for i in range(nslots):
            dut.pm_addr.value = i
            dut.pm_data.value = int.from_bytes(prog[8 * i:8 * i + 8], "little")
            dut.pm_we.value = 1
            await FallingEdge(dut.clk)
        dut.pm_we.value = 0
        dut.prog_len.value = nslots
        dut.stack_clear.value = 1
        await FallingEdge(dut.clk)
        dut.stack_clear.value = 0
        await _host_write(dut, PKT, mem)
        ctx = bytes.fromhex(job.get("ctx", ""))
        if ctx:
            await _host_write(dut, CTX, ctx)
        dut.ctx_len.value = len(ctx)
        while int(dut.stack_clearing.value):
            await Timer(64 * PERIOD_NS, unit="ns")
            await FallingEdge(dut.clk)
        dut.pkt_lo.value = memmap.MEM_BASE
        dut.pkt_hi.value = memmap.MEM_BASE + len(mem)
        dut.r1_init.value = job.get("r1", memmap.MEM_BASE if mem else 0)
        dut.r2_init.value = job.get("r2", len(mem))
        dut.budget.value = budget
        dut.start.value = 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        limit = job.get("max_cycles", max(10_000, 80 * budget))
        if not await _wait_idle(dut, limit):
            results.append({"error": f"no end after {limit} cycles (the CPU hung)"})
            # a hung core would poison every later job: stop here
            break
        await FallingEdge(dut.clk)
        res = {
            "r0": int(dut.r0.value), "trap": int(dut.trap.value),
            "trap_pc": int(dut.trap_pc.value), "insns": int(dut.insns.value),
            "cycles": int(dut.cycles.value),
        }
        res["mem"] = (await _host_read(dut, PKT, len(mem))).hex()
        results.append(res)
    with open(os.environ["BPFPGA_RTL_RESULTS"], "w") as f:
        json.dump(results, f)
