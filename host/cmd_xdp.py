"""run and diff: XDP objects on packets, on one target or compared across targets."""
from __future__ import annotations

import json
import sys
from collections import Counter

import click

from bpfpga import isa
from bpfpga.errors import BpfpgaError, TargetError, escape
from bpfpga.host.diff import vname


def load(obj_path, map_size=(), maps_json=None):
    """The object as targets run it: what maps.json sets before load, the XDP programs and
    their maps (a note on stderr names the maps left out)."""
    from bpfpga.compiler import mapsjson
    from bpfpga.compiler.elf import load_object
    from bpfpga.compiler.select import left_out_note, xdp_view
    from bpfpga.host.cmd_prog import parse_map_sizes
    o = load_object(obj_path, map_sizes=parse_map_sizes(map_size) or None)
    if maps_json:
        o = mapsjson.prepare(o, mapsjson.read(maps_json))
    o = xdp_view(o)
    if note := left_out_note(o):
        click.echo(f"note: {note}", err=True)
    return o


def obj_options(f):
    f = click.option("--map-size", multiple=True, metavar="NAME=ENTRIES",
                     help="override a map's max_entries (repeatable)")(f)
    f = click.option("--maps", "maps_json", type=click.Path(dir_okay=False),
                     help="maps.json with map contents to load first")(f)
    f = click.option("--prog", help="entry program (function or section name); default: "
                                    "the object's first program")(f)
    return f


@click.command("run")
@click.argument("obj", type=click.Path(dir_okay=False))
@obj_options
@click.option("--target", type=click.Choice(["ref", "rtl", "kernel", "board"]), default="ref",
              show_default=True)
@click.option("--device", envvar="BPFPGA_DEVICE", metavar="URL",
              help="the board target's device (a serial port, socket:// for `bpfpga "
                   "sim-board`, udp:// for Etherbone); default $BPFPGA_DEVICE")
@click.option("--pcap", "pcap_in", required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False),
              help="write the packets that leave (TX, PASS, REDIRECT) to this pcap")
@click.option("-j", "--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="summary only")
@click.option("--no-timing", is_flag=True, help="kernel: leave out its ns per packet")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="draw cycles (instructions on ref) per packet and the verdict mix")
def run_cmd(obj, prog, maps_json, map_size, target, device, pcap_in, out, as_json, quiet,
            no_timing, plot):
    """Run the packets of a pcap through an XDP object on a target."""
    from bpfpga.host.diff import _time_rows, open_target, timing_line
    from bpfpga.sim import pcap
    o = load(obj, map_size, maps_json)
    packets = pcap.read(pcap_in)
    rows = []
    outs = []
    with open_target(target, o, prog, maps_json, device=device) as t:
        # a target that streams packets (an engine through its rings) gets them all at once
        for i, (p, r) in enumerate(zip(packets, t.run_batch(packets))):
            if isinstance(r, TargetError):
                rows.append({"packet": i, "len": len(p), "error": str(r)})
                continue
            row = {"packet": i, "len": len(p), "verdict": vname(r.verdict),
                   "retval": r.retval, "out_len": len(r.packet)}
            if r.trap:
                row["trap"] = r.trap
                row["trap_pc"] = r.trap_pc
            if r.cycles is not None:
                row["cycles"] = r.cycles
            if r.insns is not None:
                row["insns"] = r.insns
            if r.trace:
                row["trace"] = list(r.trace)
            rows.append(row)
            if r.verdict in (isa.XDP_TX, isa.XDP_PASS, isa.XDP_REDIRECT):
                outs.append(r.packet)
    if out:
        pcap.write(out, outs)
    kt = None
    if target == "kernel" and not no_timing:
        kt = _time_rows(o, prog, maps_json, packets, rows)
    summary = Counter(r.get("verdict", "ERROR") for r in rows)
    cyc = [r["cycles"] for r in rows if "cycles" in r]
    if plot:
        from bpfpga.host.plots import run_plot
        run_plot(plot, target, rows, f"{obj}: {len(rows)} packets on {target}")
    if as_json:
        click.echo(json.dumps({"target": target, "packets": rows, "summary": dict(summary),
                               "cycles_per_packet": (sum(cyc) / len(cyc)) if cyc else None,
                               "kernel_ns_per_packet": kt}, indent=1))
        return
    if not quiet:
        for r in rows:
            if "error" in r:
                click.echo(f"{r['packet']:5} len={r['len']:<5} error: {r['error']}")
            else:
                extra = f" trap={r['trap']}@{r['trap_pc']}" if "trap" in r else ""
                if "cycles" in r:
                    extra += f" cycles={r['cycles']}"
                if "kernel_ns" in r:
                    extra += f" kernel_ns={r['kernel_ns']}"
                click.echo(f"{r['packet']:5} len={r['len']:<5} {r['verdict']:<9} "
                           f"out_len={r['out_len']}{extra}")
                for line in r.get("trace", ()):
                    click.echo(f"      trace_printk: {escape(line)}")
    print_summary(target, summary, len(rows), cyc, [r["insns"] for r in rows if "insns" in r])
    line = timing_line(kt, {})
    if line:
        click.echo(line)


def print_summary(target, summary, n, cyc, insns=()):
    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"{n} packets on {target}")
    t.add_column("verdict")
    t.add_column("packets", justify="right")
    for k in ("ABORTED", "DROP", "PASS", "TX", "REDIRECT", "ERROR"):
        if summary.get(k):
            t.add_row(k, str(summary[k]))
    Console().print(t)
    if cyc:
        s = sorted(cyc)
        click.echo(f"cycles per packet: mean {sum(cyc) / len(cyc):.1f}, median "
                   f"{s[len(s) // 2]}, max {s[-1]}")
    if insns:
        s = sorted(insns)
        click.echo(f"instructions per packet: mean {sum(s) / len(s):.1f}, median "
                   f"{s[len(s) // 2]}, max {s[-1]}")


def hexdiff(a: bytes, b: bytes, la: str, lb: str) -> str:
    lines = [f"        {la:<48}   {lb}"]
    for o in range(0, max(len(a), len(b)), 16):
        ca, cb = a[o:o + 16], b[o:o + 16]
        mark = "  " if ca == cb else "!="
        lines.append(f"{o:04x} {mark} {ca.hex(' '):<47}   {cb.hex(' ')}")
    return "\n".join(lines)


@click.command("diff")
@click.argument("obj", type=click.Path(dir_okay=False))
@obj_options
@click.option("--targets", default="kernel,ref", show_default=True,
              help="comma-separated targets to compare (ref, rtl, kernel, board)")
@click.option("--device", envvar="BPFPGA_DEVICE", metavar="URL",
              help="the board target's device (a serial port, socket:// for `bpfpga "
                   "sim-board`, udp:// for Etherbone); default $BPFPGA_DEVICE")
@click.option("--pcap", "pcap_in", required=True, type=click.Path(dir_okay=False))
@click.option("--max-packets", type=int, help="only the first N packets")
@click.option("--no-timing", is_flag=True, help="leave out the kernel's ns per packet")
@click.option("-j", "--json", "as_json", is_flag=True)
def diff_cmd(obj, prog, maps_json, map_size, targets, device, pcap_in, max_packets, no_timing,
             as_json):
    """Run the same packets on several targets; compare verdicts, output packets and the
    final map contents. Exits non-zero on any divergence."""
    from bpfpga.host.diff import diff, skipped_line, timing_line
    from bpfpga.sim import pcap
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if len(names) < 2:
        raise BpfpgaError("--targets needs at least two targets")
    o = load(obj, map_size, maps_json)
    packets = pcap.read(pcap_in)
    if max_packets is not None:
        packets = packets[:max_packets]
    res = diff(o, names, prog, maps_json, packets, device=device, timing=not no_timing,
               trace=not as_json)
    names, not_compared, kt = res["targets"], res["not_compared"], res["kernel_ns_per_packet"]
    oracle = res["oracle"] or None
    from bpfpga.host.kernel import median
    divergences, map_div = res["divergences"], res["map_divergences"]
    total = len(divergences) + len(map_div)
    cycles = {n: {"median": median(c), "packets": len(c)} for n, c in res["cycles"].items()}
    if as_json:
        click.echo(json.dumps({"targets": names, "not_compared": not_compared,
                               "packets": len(packets), "compared": res["compared"],
                               "nondeterministic": res["nondeterministic"]
                               if oracle is not None else None,
                               "skipped": res["skipped"], "divergences": divergences,
                               "map_divergences": map_div,
                               "kernel_ns_per_packet": kt, "cycles_per_packet": cycles},
                              indent=1))
    else:
        for n, why in not_compared.items():
            click.echo(f"{n}: not compared: {why}")
        if res["first"] is not None:
            d, p, a, b, an, bn_, trace = res["first"]
            click.echo(f"first divergence: packet {d['packet']} ({len(p)} bytes): "
                       + "; ".join(d["why"]))
            click.echo(hexdiff(a.packet, b.packet, an, bn_))
            if trace:
                from bpfpga.compiler.disasm_fallback import listing
                click.echo(f"reference machine trace ({len(trace)} instructions, last 40):")
                lst = {}
                for progname, pc in trace[-40:]:
                    if progname not in lst:
                        lst[progname] = {int(l.split(":")[0]): l for l in
                                         listing(o.program(progname).insns)}
                    click.echo(f"  {escape(progname)}: {lst[progname].get(pc, pc)}")
        for m in map_div[:20]:
            click.echo(f"map {m['map']} key {m['key']}: " + ", ".join(
                f"{t}={m[t]}" for t in m["targets"]))
        if oracle is not None:
            click.echo(f"the object calls ktime/prandom helpers: {res['nondeterministic']} "
                       f"packet(s) whose verdict depends on them were not compared; bytes "
                       f"that depend on them are masked in packets and maps")
        line = skipped_line(res["skipped"], res["deferred"], names)
        if line:
            click.echo(line)
        line = timing_line(kt, res["cycles"])
        if line:
            click.echo(line)
        click.echo(f"{res['compared']} packets compared on {', '.join(names)}: "
                   f"{len(divergences)} packet divergences, {len(map_div)} map divergences")
        click.echo(f"{total} divergences")
    sys.exit(1 if total else 0)


def demo_rtl(echo=click.echo) -> int:
    """`make demo`: the load balancer example on the rtl target over its traffic, with the
    verdict summary and cycles per packet. Returns the process exit status."""
    from pathlib import Path

    from bpfpga.host.targets import apply_maps
    from bpfpga.sim import pcap
    from bpfpga.compiler.mapsjson import load as load_maps
    ex = Path(__file__).resolve().parents[1] / "examples" / "lb"
    o = load(str(ex / "lb.o"))
    packets = pcap.read(ex / "traffic.pcap")
    echo(f"load balancer (examples/lb/lb.o, {o.programs[0].n_insns} instructions) on the "
         f"rtl target: the XDP engine in Verilator, driven through its control port")
    from bpfpga.host.board import RtlTarget
    with RtlTarget(o) as t:
        apply_maps(t, o, load_maps(ex / "maps.json"))
        res = t.run_batch(packets)
        c = t.counters()
    ok = [r for r in res if not isinstance(r, Exception)]
    summary = Counter(vname(r.verdict) for r in ok)
    cyc = [r.cycles for r in ok]
    ins = [r.insns for r in ok]
    print_summary("rtl", summary, len(ok), cyc)
    if ins:
        echo(f"instructions per packet: mean {sum(ins) / len(ins):.1f}; "
             f"cycles per instruction {sum(cyc) / max(1, sum(ins)):.2f}")
    skipped = len(res) - len(ok)
    if skipped:
        echo(f"{skipped} frame(s) dropped by the engine before the program (runts/oversize)")
    return 0


def register(group: click.Group) -> None:
    group.add_command(run_cmd)
    group.add_command(diff_cmd)
