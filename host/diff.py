"""The comparison behind `bpfpga diff`: the same packets on several targets (bpfpga/target.py),
verdicts, return values, output packets and the final map contents compared, with what
depends on ktime/prandom masked by oracle reference machines. The click command
(host/cmd_xdp.py) only prints what ``diff`` returns."""
from __future__ import annotations

from collections import Counter

from bpfpga import isa
from bpfpga.errors import BpfpgaError, TargetError
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_DEVMAP,
                        BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_HASH_OF_MAPS,
                        BPF_MAP_TYPE_PROG_ARRAY)

VERDICT = {v: n[4:] for v, n in isa.XDP_VERDICTS.items()}
SLOT_TYPES = {BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS,
              BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH}


def vname(v: int) -> str:
    return VERDICT.get(v, str(v))


def open_target(name, obj, prog, maps_json, device=None):
    """A target opened on the object with maps.json's entries loaded."""
    from bpfpga.host.targets import apply_maps, open_target as _open
    t = _open(name, obj, prog, device=device)
    if maps_json:
        from bpfpga.compiler.mapsjson import load as load_maps
        try:
            apply_maps(t, obj, load_maps(maps_json))
        except BaseException:
            t.close()
            raise
    return t


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

    tracer = next((n for n in names if ts[n].traces_insns), None) if trace else None

    def one(i, p, why):
        res = {}
        tr = [] if tracer is not None else None
        for n in names:
            if why.get(n):
                out["skipped"].setdefault(n, Counter())[why[n]] += 1
                continue
            t = ts[n]
            try:
                res[n] = t.run(p, trace=tr) if n == tracer else t.run(p)
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


def _time_rows(o, prog, maps_json, packets, rows) -> dict | None:
    """Time every packet the kernel ran (rows without an error) on a second copy of the
    object; each row gets "kernel_ns"; the summary as kernel_timing gives it."""
    from bpfpga.host.kernel import harness_ns, median
    ns = []
    with open_target("kernel", o, prog, maps_json) as t:
        for r in rows:
            if "error" not in r and t.refuses(packets[r["packet"]]) is None:
                r["kernel_ns"] = t.time_packet(packets[r["packet"]])
                ns.append(r["kernel_ns"])
    if not ns:
        return None
    return {"median": median(ns), "min": min(ns), "max": max(ns), "packets": len(ns),
            "harness_ns": harness_ns()}


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




def diff(o, names: list[str], prog, maps_json, packets, device: str | None = None,
         timing: bool = True, trace: bool = False) -> dict:
    """`bpfpga diff` as data: the targets opened (a kernel whose probe refuses a helper of the
    object is left out, with its reason in "not_compared"), every packet compared
    (compare_targets), the kernel's ns per packet ("kernel_ns_per_packet", when timing and
    the kernel is compared) and the oracle's use ("oracle": whether the object calls
    ktime/prandom helpers)."""
    names = list(names)
    if len(names) < 2:
        raise BpfpgaError("--targets needs at least two targets")
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
            ts[n] = open_target(n, o, prog, maps_json, device=device)
        oracle = _oracle(o, prog, maps_json)
        res = compare_targets(o, ts, packets, oracle, trace=trace)
    finally:
        for t in ts.values():
            t.close()
    res["targets"] = names
    res["not_compared"] = not_compared
    res["oracle"] = oracle is not None
    res["kernel_ns_per_packet"] = kernel_timing(o, prog, maps_json, packets) \
        if "kernel" in names and timing else None
    return res
