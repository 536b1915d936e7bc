"""run and diff: XDP objects on packets, on one target or compared across targets."""
from __future__ import annotations

import json
import sys
from collections import Counter

import click

from bpfpga import isa
from bpfpga.errors import BpfpgaError, TargetError, escape
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_DEVMAP,
                        BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_HASH_OF_MAPS,
                        BPF_MAP_TYPE_PROG_ARRAY)

VERDICT = {v: n[4:] for v, n in isa.XDP_VERDICTS.items()}
SLOT_TYPES = {BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS,
              BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH}


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


def vname(v: int) -> str:
    return VERDICT.get(v, str(v))


def obj_options(f):
    f = click.option("--map-size", multiple=True, metavar="NAME=ENTRIES",
                     help="override a map's max_entries (repeatable)")(f)
    f = click.option("--maps", "maps_json", type=click.Path(dir_okay=False),
                     help="maps.json with map contents to load first")(f)
    f = click.option("--prog", help="entry program (function or section name); default: "
                                    "the object's first program")(f)
    return f


def _open(target, obj, prog, maps_json):
    from bpfpga.host.targets import apply_maps, open_target
    t = open_target(target, obj, prog)
    if maps_json:
        from bpfpga.compiler.mapsjson import load as load_maps
        apply_maps(t, obj, load_maps(maps_json))
    return t


@click.command("run")
@click.argument("obj", type=click.Path(dir_okay=False))
@obj_options
@click.option("--target", type=click.Choice(["ref", "rtl", "kernel"]), default="ref",
              show_default=True)
@click.option("--pcap", "pcap_in", required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False),
              help="write the packets that leave (TX, PASS, REDIRECT) to this pcap")
@click.option("-j", "--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="summary only")
@click.option("--no-timing", is_flag=True, help="kernel: leave out its ns per packet")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="draw cycles (instructions on ref) per packet and the verdict mix")
def run_cmd(obj, prog, maps_json, map_size, target, pcap_in, out, as_json, quiet, no_timing,
            plot):
    """Run the packets of a pcap through an XDP object on a target."""
    from bpfpga.sim import pcap
    o = load(obj, map_size, maps_json)
    packets = pcap.read(pcap_in)
    rows = []
    outs = []
    with _open(target, o, prog, maps_json) as t:
        # a target that streams packets (the rtl engine through its rings) gets them all
        results = t.run_batch(packets) if hasattr(t, "run_batch") else None
        for i, p in enumerate(packets):
            try:
                if results is not None:
                    r = results[i]
                    if isinstance(r, Exception):
                        raise r
                else:
                    r = t.run(p)
            except TargetError as e:
                rows.append({"packet": i, "len": len(p), "error": str(e)})
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


def _time_rows(o, prog, maps_json, packets, rows) -> dict | None:
    """Time every packet the kernel ran (rows without an error) on a second copy of the
    object; each row gets "kernel_ns"; the summary as kernel_timing gives it."""
    from bpfpga.host.kernel import harness_ns, median
    ns = []
    with _open("kernel", o, prog, maps_json) as t:
        for r in rows:
            if "error" not in r and t.refuses(packets[r["packet"]]) is None:
                r["kernel_ns"] = t.time_packet(packets[r["packet"]])
                ns.append(r["kernel_ns"])
    if not ns:
        return None
    return {"median": median(ns), "min": min(ns), "max": max(ns), "packets": len(ns),
            "harness_ns": harness_ns()}


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


def _norm_dump(dump):
    out = {}
    for k, v in dump:
        if isinstance(v, (list, tuple)) and v and isinstance(v[0], (bytes, bytearray)):
            v = tuple(bytes(x) for x in v)
        elif isinstance(v, (bytes, bytearray)):
            v = bytes(v)
        out[bytes(k)] = v
    return out


class _Gaps:
    """A clock that advances by random gaps (seeded): mostly microseconds, now and then
    milliseconds or seconds, so every kind of boundary a program keys on is crossed."""

    def __init__(self, seed: int):
        import random
        self.rng = random.Random(seed)

    def __call__(self) -> int:
        r = self.rng.random()
        if r < 0.1:
            return self.rng.randrange(1_000_000_000, 3_000_000_000)
        if r < 0.3:
            return self.rng.randrange(1_000_000, 300_000_000)
        return self.rng.randrange(1, 100_000)


def _second_before(base: int, ns: int) -> int:
    """``base`` moved to ``ns`` before the next whole second."""
    return (base // 1_000_000_000 + 1) * 1_000_000_000 - ns


# The oracles' clocks: bases that differ in every byte (so every byte of a stored timestamp
# differs among them), and rates that differ as the kernel's real clock can: 1 us a packet;
# the kernel's own pace (~25 us) from 2 ms before a second boundary; more than a second a
# packet (a boundary at every packet); 1 ns a packet (the whole run inside one second); and
# random gaps from nanoseconds to seconds. Random generators get different seeds.
ORACLE_CLOCKS = (
    (0x05A5A5A5A5A5A5A5, 1000, 0x1234567),
    (_second_before(0x1A2B3C4D5E6F7081, 2_000_000), 25_000, 0x7654321),
    (0x2C3D4E5F60718293, 1_000_000_007, 0x2468ACE),
    (0x0312233445566778, 1, 0x1357BDF),
    (0x3E4F5A6B7C8D9EAF, _Gaps, 0x0ABCDEF),
)


def _oracle(o, prog, maps_json):
    """Reference machines whose ktime and prandom helpers give different values (clocks
    with different starts and rates, ORACLE_CLOCKS; different seeds): what differs among
    them depends on those helpers and cannot be compared across targets."""
    from bpfpga.sim.xdp import XdpRef
    probe = XdpRef(o, prog)
    if not probe.nondeterministic():
        return None
    out = []
    for base, gap, seed in ORACLE_CLOCKS:
        t = XdpRef(o, prog, clock_base=base, seed=seed,
                   clock_gap=gap(seed) if gap is _Gaps else gap)
        if maps_json:
            from bpfpga.compiler.mapsjson import load as load_maps
            from bpfpga.host.targets import apply_maps
            apply_maps(t, o, load_maps(maps_json))
        out.append(t)
    return out


def _masked(data: bytes, mask: bytes | None) -> bytes:
    if not mask or len(mask) != len(data):
        return data
    return bytes(0 if m else b for b, m in zip(data, mask))


def _vmask(a, b):
    if isinstance(a, tuple) and isinstance(b, tuple):
        return tuple(bytes(0 if x == y else 1 for x, y in zip(u, v)) for u, v in zip(a, b))
    if isinstance(a, bytes) and isinstance(b, bytes):
        return bytes(0 if x == y else 1 for x, y in zip(a, b))
    return b""


def _vor(a, b):
    if isinstance(a, tuple):
        return tuple(_vor(x, y) for x, y in zip(a, b))
    return bytes(x | y for x, y in zip(a, b))


def _mask_val(v, m):
    if not m:
        return v
    if isinstance(v, tuple) and isinstance(m, tuple):
        return tuple(_masked(x, mm) for x, mm in zip(v, m)) + v[len(m):]
    if isinstance(v, bytes) and isinstance(m, bytes):
        return _masked(v, m)
    return v


def _same_value(a, b) -> bool:
    """Map values equal; per-CPU lists of different lengths (the kernel's possible CPUs, the
    engine's cores) compare with the shorter padded by zero values."""
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) != len(b):
        n = max(len(a), len(b))
        z = bytes(len((a or b)[0]))
        a = a + (z,) * (n - len(a))
        b = b + (z,) * (n - len(b))
    return a == b


def _fmt_val(v):
    if isinstance(v, tuple):
        return "[" + ", ".join(x.hex() for x in v) + "]"
    return v.hex() if isinstance(v, bytes) else str(v)


def _compare_packet(i, p, res, names, mask, out, trace):
    base_n = names[0] if names[0] in res else next(iter(res))
    base = res[base_n]
    for n, r in res.items():
        if n == base_n:
            continue
        why = []
        if r.verdict != base.verdict:
            why.append(f"verdict {vname(base.verdict)} ({base_n}) vs {vname(r.verdict)} ({n})")
        elif r.retval != base.retval:
            why.append(f"return value {base.retval} ({base_n}) vs {r.retval} ({n})")
        if _masked(r.packet, mask) != _masked(base.packet, mask) and \
                base.verdict != isa.XDP_DROP:
            why.append(f"output packet differs ({len(base.packet)} vs {len(r.packet)} bytes)")
        if why:
            d = {"packet": i, "targets": [base_n, n], "why": why}
            out["divergences"].append(d)
            if out["first"] is None:
                out["first"] = (d, p, base, r, base_n, n, list(trace or []))


def _compare_maps(o, ts, names, oracle) -> list[dict]:
    map_div = []
    for md in o.maps:
        if md.type in SLOT_TYPES:
            continue
        dumps = {n: _norm_dump(ts[n].map_dump(md.name)) for n in names}
        bn = names[0]
        if oracle is not None:
            vmask: dict = {}
            ds = [_norm_dump(x.map_dump(md.name)) for x in oracle]
            for k in set().union(*ds):
                if any(k not in d for d in ds):
                    vmask[k] = None
                    continue
                m = _vmask(ds[0][k], ds[0][k])
                for d in ds[1:]:
                    m = _vor(m, _vmask(ds[0][k], d[k]))
                vmask[k] = m
            for n in dumps:
                dumps[n] = {k: _mask_val(v, vmask.get(k, b"")) for k, v in dumps[n].items()
                            if not (k in vmask and vmask[k] is None)}
        for n, dmp in dumps.items():
            if n == bn:
                continue
            b = dumps[bn]
            for k in sorted(set(b) | set(dmp)):
                if not _same_value(b.get(k), dmp.get(k)):
                    map_div.append({"map": md.name, "key": k.hex(), "targets": [bn, n],
                                    bn: _fmt_val(b.get(k)) if k in b else None,
                                    n: _fmt_val(dmp.get(k)) if k in dmp else None})
    return map_div


def compare_targets(o, ts: dict, packets, oracle=None, trace: bool = False) -> dict:
    """Run ``packets`` on every opened target of ``ts`` ({name: Target}, the first the
    base of comparison) and compare results, then final maps.

    Packets every target can run go first; the maps are compared after them, so every target
    has seen the same packets. Then the packets some target refuses (Target.refuses: the
    kernel's runts, the engine's oversize frames) run on the targets that take them and are
    compared among those; they are counted by target and reason in ``skipped``."""
    names = list(ts)
    out = {"compared": 0, "nondeterministic": 0, "divergences": [], "first": None,
           "skipped": {}, "cycles": {}, "deferred": 0}
    now, later = [], []
    for i, p in enumerate(packets):
        why = {n: ts[n].refuses(p) for n in names}
        (later if any(why.values()) else now).append((i, p, why))
    errors = Counter()

    def one(i, p, why):
        res = {}
        tr = [] if trace and "ref" in ts else None
        for n in names:
            if why.get(n):
                out["skipped"].setdefault(n, Counter())[why[n]] += 1
                continue
            t = ts[n]
            try:
                res[n] = t.run(p, trace=tr) if n == "ref" and tr is not None else t.run(p)
            except TargetError as e:
                errors[(n, str(e))] += 1
                continue
            if res[n].cycles is not None:
                out["cycles"].setdefault(n, []).append(res[n].cycles)
        mask = None
        # the oracles run every frame they take (as ref), so their maps follow ref's
        if oracle is not None and oracle[0].refuses(p) is None:
            outs = [t.run(p) for t in oracle]
            oa = outs[0]
            if any((x.verdict, x.retval, len(x.packet)) !=
                   (oa.verdict, oa.retval, len(oa.packet)) for x in outs[1:]):
                out["nondeterministic"] += 1
                return
            mask = bytes(0 if len({x.packet[j] for x in outs}) == 1 else 1
                         for j in range(len(oa.packet)))
        if len(res) < 2:
            return
        out["compared"] += 1
        _compare_packet(i, p, res, names, mask, out, tr)

    for i, p, why in now:
        one(i, p, why)
    out["map_divergences"] = _compare_maps(o, ts, names, oracle)
    for i, p, why in later:
        one(i, p, why)
    out["deferred"] = len(later)
    for (n, e), c in errors.items():   # a target that failed a packet it did not refuse
        out["skipped"].setdefault(n, Counter())[e] += c
    out["skipped"] = {n: dict(c) for n, c in out["skipped"].items()}
    return out


def skipped_line(skipped: dict, deferred: int, names) -> str | None:
    """The one line that reports the frames some target did not run, by target and reason."""
    if not skipped:
        return None
    parts = [f"{n}: " + ", ".join(f"{c} {why}" for why, c in sorted(r.items()))
             for n, r in skipped.items()]
    ran = [n for n in names if n not in skipped]
    tail = (f"; they ran on {', '.join(ran)} after the maps were compared" if deferred and ran
            else "")
    return f"frames not run on every target: {'; '.join(parts)}{tail}"


def kernel_timing(o, prog, maps_json, packets) -> dict | None:
    """The kernel's ns per packet (KernelTarget.time_packet) over the packets it takes, on
    a second copy of the object (its maps loaded from maps_json as well)."""
    return _time_rows(o, prog, maps_json, packets, [{"packet": i} for i in range(len(packets))])


def timing_line(kt: dict | None, cycles: dict) -> str | None:
    """One line: the kernel's median ns per packet beside each target's median cycles."""
    from bpfpga.host.kernel import median
    parts = []
    if kt:
        parts.append(f"kernel {kt['median']} ns (median over {kt['packets']} packets, "
                     f"BPF_PROG_TEST_RUN less {kt['harness_ns']} ns for an empty program)")
    for n, c in cycles.items():
        parts.append(f"{n} {median(c)} cycles (median over {len(c)} packets)")
    return ("per packet: " + "; ".join(parts)) if parts else None


@click.command("diff")
@click.argument("obj", type=click.Path(dir_okay=False))
@obj_options
@click.option("--targets", default="kernel,ref", show_default=True,
              help="comma-separated targets to compare (ref, rtl, kernel)")
@click.option("--pcap", "pcap_in", required=True, type=click.Path(dir_okay=False))
@click.option("--max-packets", type=int, help="only the first N packets")
@click.option("--no-timing", is_flag=True, help="leave out the kernel's ns per packet")
@click.option("-j", "--json", "as_json", is_flag=True)
def diff_cmd(obj, prog, maps_json, map_size, targets, pcap_in, max_packets, no_timing,
             as_json):
    """Run the same packets on several targets; compare verdicts, output packets and the
    final map contents. Exits non-zero on any divergence."""
    from bpfpga.sim import pcap
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if len(names) < 2:
        raise BpfpgaError("--targets needs at least two targets")
    o = load(obj, map_size, maps_json)
    packets = pcap.read(pcap_in)
    if max_packets is not None:
        packets = packets[:max_packets]
    not_compared = {}
    if "kernel" in names:
        from bpfpga.host.features import not_compared as refusal
        from bpfpga.host.kernel import require_kernel
        require_kernel()
        why = refusal(o)
        if why:
            not_compared["kernel"] = why
            names.remove("kernel")
    ts = {}
    try:
        for n in names:
            ts[n] = _open(n, o, prog, maps_json)
        oracle = _oracle(o, prog, maps_json)
        res = compare_targets(o, ts, packets, oracle, trace=not as_json)
    finally:
        for t in ts.values():
            t.close()
    kt = None
    if "kernel" in names and not no_timing:
        kt = kernel_timing(o, prog, maps_json, packets)
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
    from bpfpga.sim.rtl_xdp import XdpRtl
    with XdpRtl(o) as t:
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
