"""Cycles per packet of every example on the XDP engine (rtl target), on 1 and N cores, the
packet rate at the engine's clock, and the kernel's nanoseconds per packet for the same object
and packets measured in the same run.

    .venv/bin/python bench/xdp_cycles.py [--packets N]

* cycles/packet (1 core): packets one at a time, the core's cycles from start to verdict
  (XdpResult.cycles), mean over the packets;
* N cores: the packets streamed back to back through the inject ring; the engine's throughput
  is measured as total engine cycles (R_KTIME / ns per cycle) over packets, which includes
  the 8-byte-per-cycle receive and transmit of every frame;
* Mpps = f / cycles per packet, f the first of (the table says which, the JSON keeps it in
  ``fmax_source``): ``--fmax MHZ``; the engine's own Fmax, measured: ``--fmax-json`` (a
  `bpfpga board build -j` report) or build/bench/boards.json (bench/boards.py), the
  achieved sys-domain Fmax of the first board built there; the CPU core alone,
  build/bench/synth_core.json (bench/synth_core.py: an upper bound, the engine adds the
  helper units, map arbiter and dispatch around it); else 100 MHz, assumed (no synthesis);
* kernel: the median of KernelTarget.time_packet over the same packets (each the median of
  one-run test runs on the original packet, less an empty program's: docs/kernel-target.md),
  when the kernel target is available.
Writes build/bench/xdp_cycles.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _engine_fmax(path: Path):
    """(MHz, what) from a board build report, or from bench/boards.py's list of them."""
    d = json.loads(path.read_text())
    reports = d.get("results", [d]) if isinstance(d, dict) else []
    for r in reports:
        # the gateware's stand-in engine ("standin") is not the engine: its Fmax says nothing
        if isinstance(r, dict) and r.get("engine_fmax_mhz") and r.get("engine") != "standin":
            what = (f"the engine's sys-domain Fmax measured by nextpnr for board "
                    f"{r.get('board', '?')} ({r.get('fpga', '?')}, "
                    f"{r.get('cores', '?')} cores), {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
            return float(r["engine_fmax_mhz"]), what
    return None


def clock(given: float | None, report: str | None) -> tuple[float, str]:
    """The clock the packet rates are given at, and where it comes from."""
    if given is not None:
        if given <= 0:
            sys.exit(f"--fmax {given}: must be positive")
        return given, "given with --fmax"
    if report is not None:
        p = Path(report).resolve()
        try:
            got = _engine_fmax(p)
        except (OSError, ValueError) as e:
            sys.exit(f"--fmax-json {report}: {e}")
        if got is None:
            sys.exit(f"--fmax-json {report}: no engine_fmax_mhz in it")
        return got
    boards = ROOT / "build/bench/boards.json"
    if boards.exists():
        try:
            got = _engine_fmax(boards)
            if got is not None:
                return got
        except ValueError:
            pass
    sj = ROOT / "build/bench/synth_core.json"
    if sj.exists():
        try:
            d = json.loads(sj.read_text())
            f = float(d.get("fmax_mhz") or d.get("fmax"))
            return f, ("the CPU core alone (build/bench/synth_core.json, bench/synth_core.py): "
                       "an upper bound, the engine was not synthesized")
        except (ValueError, TypeError, AttributeError):
            pass
    return 100.0, "assumed: no synthesis result in build/bench (run bench/boards.py or " \
                  "bench/synth_core.py, or give --fmax)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=300)
    ap.add_argument("--examples", default="")
    ap.add_argument("--fmax", type=float, default=None, help="clock in MHz for the Mpps columns")
    ap.add_argument("--fmax-json", default=None,
                    help="a `bpfpga board build -j` report (its engine_fmax_mhz)")
    a = ap.parse_args()
    from bpfpga.compiler.elf import load_object
    from bpfpga.compiler.mapsjson import load as load_maps
    from bpfpga.hdl import control as C
    from bpfpga.host.targets import apply_maps
    from bpfpga.sim import pcap
    from bpfpga.host.board import RtlTarget
    from bpfpga.sim.xdp import XdpRef
    fmax, fmax_source = clock(a.fmax, a.fmax_json)
    kernel = None
    try:
        from bpfpga.host.kernel import KernelTarget, kernel_available
        if kernel_available()[0]:
            kernel = KernelTarget
    except ImportError:
        pass
    rows = []
    exs = sorted(p for p in (ROOT / "examples").glob("*/") if (p / f"{p.name}.o").exists())
    if a.examples:
        exs = [p for p in exs if p.name in a.examples.split(",")]
    for ex in exs:
        o = load_object(str(ex / f"{ex.name}.o"))
        pk = [p for p in pcap.read(ex / "traffic.pcap") if 14 <= len(p) <= 3520][:a.packets]
        maps = load_maps(ex / "maps.json") if (ex / "maps.json").exists() else {}
        print(f"{ex.name}: {len(pk)} packets", file=sys.stderr, flush=True)
        ref = XdpRef(o)
        apply_maps(ref, o, maps)
        ins = [ref.run(p).insns for p in pk]
        with RtlTarget(o) as t:
            apply_maps(t, o, maps)
            one = [t.run(p).cycles for p in pk]
        with RtlTarget(o) as t:
            apply_maps(t, o, maps)
            dev = t.dev
            k0 = dev.reg(C.R_KTIME_LO) | dev.reg(C.R_KTIME_HI) << 32
            busy0 = dev.counters()
            res = t.run_batch(pk)
            k1 = dev.reg(C.R_KTIME_LO) | dev.reg(C.R_KTIME_HI) << 32
            busy1 = dev.counters()
            ncores = dev.cores
        # the engine's wall time includes the host's ring traffic (the simulated UART); the
        # cores' busy cycles are what the engine needs: the busiest core bounds the rate
        busy = [busy1[C.C_BUSY + c] - busy0[C.C_BUSY + c] for c in range(ncores)]
        row = {"example": ex.name, "packets": len(pk),
               "insns_per_packet": sum(ins) / len(ins),
               "cycles_per_packet_1core": sum(one) / len(one),
               "cycles_per_packet_ncores": max(busy) / len(pk), "cores": ncores,
               "busy_cycles": busy,
               "fmax_mhz": fmax, "fmax_source": fmax_source}
        row["mpps_1core"] = fmax / row["cycles_per_packet_1core"]
        row["mpps_ncores"] = fmax / row["cycles_per_packet_ncores"]
        if kernel is not None:
            try:
                from bpfpga.host.kernel import median
                with kernel(o) as kt:
                    apply_maps(kt, o, maps)
                    ns = [kt.time_packet(p) for p in pk if kt.refuses(p) is None]
                row["kernel_ns_per_packet"] = median(ns)
            except Exception as e:      # noqa: BLE001 - reported, not fatal
                row["kernel_error"] = str(e)
        rows.append(row)
    out = ROOT / "build/bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "xdp_cycles.json").write_text(json.dumps(rows, indent=1))
    hdr = (f"{'example':10} {'insns':>7} {'cyc/pkt 1c':>10} {'cyc/pkt Nc':>10} "
           f"{'Mpps 1c':>8} {'Mpps Nc':>8} {'kernel ns':>9}")
    print(hdr)
    for r in rows:
        k = r.get("kernel_ns_per_packet")
        print(f"{r['example']:10} {r['insns_per_packet']:7.1f} {r['cycles_per_packet_1core']:10.1f} "
              f"{r['cycles_per_packet_ncores']:10.1f} {r['mpps_1core']:8.2f} "
              f"{r['mpps_ncores']:8.2f} {k if k is None else round(k, 1)!s:>9}")
    print(f"(Mpps at {fmax:.1f} MHz: {fmax_source}; JSON in {out / 'xdp_cycles.json'})")


if __name__ == "__main__":
    main()
