#!/usr/bin/env python3
"""Fuzz campaign for the CLI's error handling: mutated objects, packets and maps.json.

    .venv/bin/python bench/fuzz_objects.py [--count N | --seconds S] [--seed 1]
                                           [--kinds objects,pcap,mapsjson] [--save DIR]

Each case takes one example of examples/*/ (its .o, the first packets of its traffic.pcap,
its maps.json) and mutates one of them: bit flips, random bytes, truncation, corrupt section
headers and ELF header fields, words and bytes inside the sections the loader reads, hostile
names (newlines, terminal escapes, rich markup) written over the string tables; pcap headers,
record lengths and frames of 0 and 9,000 bytes; maps.json as bytes and as JSON (wrong types,
wrong slot kinds, missing maps and programs, deep nesting, bytes that are not UTF-8). The
mutated input goes through the CLI as a user runs it (click's CliRunner: prog show, disasm,
run on the ref target) and every invocation is judged:

- traceback: an exception escaped the CLI (BPFPGA_TRACEBACK=1 turns off its last line of
  defence, so a bug shows as the exception it is);
- multi-line error: a failing command that did not print exactly one ``error:`` line on
  stderr;
- raw control: a control or other non-printable character (other than newline and the tab
  of disasm's columns) in what the command printed: untrusted text reached the terminal.

Case i uses its own random generator (seed, i), so ``--first i --count 1 --save DIR``
reproduces one. Prints a table, writes build/bench/fuzz_objects.json; exit status 1 when any
case is bad. A short run is part of the test suite (tests/test_errors.py).

Measured (this machine, 2 shared cores): `--kinds objects --count 10000 --seed 19`: 10,000
mutated objects, 30,000 CLI invocations (prog show, disasm, run) in 455 s, 22,380 exit 0 and
7,620 exit 1; 0 tracebacks, 0 multi-line errors, 0 raw control characters. `--count 3000
--seed 11` (all kinds: 973 objects, 970 pcaps, 1,057 maps.json): 4,946 invocations in 79 s,
0 / 0 / 0. With escaping switched off (bpfpga.errors.escape made the identity), 400 cases
found 9 outputs with raw control characters: the judge sees what it should.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("objects", "pcap", "mapsjson")
PACKETS = 12            # packets of each example's traffic a case runs
HOSTILE = [b"\n", b"\nerror: forged", b"\x1b]0;retitled\x07", b"\x1b[2J", b"[/]", b"[bold]x",
           b"\r", b"\x7f", b"\xc2\x9b", b"\xe2\x80\xae", b"\xff\xfe", b"\t", b"\x00"]
INTERESTING32 = [0, 1, 7, 0x80, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


# --- the examples ----------------------------------------------------------------------------------
def examples() -> list[dict]:
    """Each example with an object: its name, object bytes, maps.json text (or None) and the
    first PACKETS frames of its traffic."""
    from bpfpga.sim import pcap
    out = []
    for o in sorted(ROOT.glob("examples/*/*.o")):
        d = o.parent
        mj = d / "maps.json"
        tp = d / "traffic.pcap"
        out.append({"name": d.name, "obj": o.read_bytes(),
                    "maps": mj.read_text() if mj.exists() else None,
                    "packets": pcap.read(tp)[:PACKETS] if tp.exists() else [bytes(64)]})
    if not out:
        raise SystemExit("no examples/*/*.o: run `make examples`")
    return out


def pcap_bytes(frames: list[bytes]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", i, 0, len(f), len(f)) + f)
    return b"".join(out)


# --- object mutations ------------------------------------------------------------------------------
def sections(d: bytes) -> list[tuple[int, int, int, int]]:
    """(header offset, sh_type, sh_offset, sh_size) of each section of an ELF64 LE object."""
    shoff, = struct.unpack_from("<Q", d, 0x28)
    entsize, num = struct.unpack_from("<HH", d, 0x3A)
    out = []
    for i in range(num):
        h = shoff + i * entsize
        if h + 64 > len(d):
            break
        _, typ, _, _, off, size = struct.unpack_from("<IIQQQQ", d, h)
        out.append((h, typ, off, size))
    return out


def mutate_object(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    d = bytearray(data)
    secs = [s for s in sections(data) if s[1] != 8 and s[2] + s[3] <= len(d) and s[3]]
    strtabs = [s for s in secs if s[1] == 3]
    kind = rng.choice(["bitflip", "bytes", "truncate", "shdr", "section", "word", "ehdr",
                       "names", "names"])
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 8)):
            d[rng.randrange(len(d))] = rng.randrange(256)
    elif kind == "truncate":
        d = d[:rng.randrange(len(d))]
    elif kind == "shdr":
        h = rng.choice(sections(data))[0]
        at, fmt = rng.choice([(0, "<I"), (4, "<I"), (8, "<Q"), (24, "<Q"), (32, "<Q"),
                              (40, "<I"), (44, "<I"), (56, "<Q")])
        v = rng.choice(INTERESTING32 + [len(d), rng.randrange(1 << 16)])
        struct.pack_into(fmt, d, h + at, v)
    elif kind in ("section", "word") and secs:
        _, _, off, size = rng.choice(secs)
        if kind == "section":
            for _ in range(rng.randint(1, 6)):
                d[off + rng.randrange(size)] = rng.randrange(256)
        elif size >= 4:
            struct.pack_into("<I", d, off + rng.randrange(size - 3) // 4 * 4,
                             rng.choice(INTERESTING32 + [rng.randrange(1 << 32)]))
    elif kind == "ehdr":
        d[rng.randrange(64)] = rng.randrange(256)
    elif strtabs:                           # hostile text over names in a string table
        _, _, off, size = rng.choice(strtabs)
        for _ in range(rng.randint(1, 3)):
            bad = rng.choice(HOSTILE)
            at = off + rng.randrange(size)
            d[at:at + len(bad)] = bad[:max(0, off + size - at)]
        d = d[:len(data)]
    return kind, bytes(d)


# --- packet and maps.json mutations ----------------------------------------------------------------
def mutate_pcap(frames: list[bytes], rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["sizes", "frames", "header", "record", "truncate", "bytes"])
    if kind == "sizes":       # frames the targets refuse, and the edges around them
        fr = list(frames)
        for _ in range(rng.randint(1, 4)):
            n = rng.choice([0, 1, 13, 14, 15, 3520, 3521, 4096, 9000, 65535])
            fr.insert(rng.randrange(len(fr) + 1), bytes(rng.randrange(256) for _ in range(n))
                      if n < 64 else bytes(n))
        return kind, pcap_bytes(fr)
    if kind == "frames":      # packet contents
        fr = [bytearray(f) for f in frames]
        for _ in range(rng.randint(1, 16)):
            f = rng.choice(fr)
            if f:
                f[rng.randrange(len(f))] = rng.randrange(256)
        return kind, pcap_bytes([bytes(f) for f in fr])
    d = bytearray(pcap_bytes(frames))
    if kind == "header":
        at = rng.randrange(24)
        d[at] = rng.randrange(256)
    elif kind == "record":    # a record header's lengths
        o, recs = 24, []
        while o + 16 <= len(d):
            recs.append(o)
            o += 16 + struct.unpack_from("<I", d, o + 8)[0]
        o = rng.choice(recs)
        struct.pack_into("<I", d, o + rng.choice([8, 12]), rng.choice(INTERESTING32))
    elif kind == "truncate":
        d = d[:rng.randrange(len(d))]
    else:
        for _ in range(rng.randint(1, 8)):
            d[rng.randrange(len(d))] = rng.randrange(256)
    return kind, bytes(d)


def _json_junk(rng: random.Random, depth: int = 0):
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return rng.choice([0, 5, -1, 2 ** 70, 1.5])
    if pick == 1:
        return rng.choice(["", "zz", "0", "00000000", "0" * 17, "ff" * 4096,
                           "\n\x1b]0;x\x07", "[/]", "xdp/[/]", "\u202e00"])
    if pick == 2:
        return None
    if pick == 3:
        return rng.choice([True, False])
    if pick == 4:
        return "00" * rng.choice([1, 4, 8, 16, 20])
    if pick == 5:
        return rng.choice(["stage1", "classify", "nope", "class_stats", "stages"])
    if pick == 6:
        return [_json_junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["key", "value", "values", "prog", "map", "x"]): _json_junk(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def mutate_maps(text: str | None, obj_maps: list[str], rng: random.Random) -> tuple[str, bytes]:
    base = json.loads(text) if text else {}
    kind = rng.choice(["value", "entry", "map", "slot", "deep", "bytes", "utf8"])
    names = list(base) or obj_maps or ["m"]
    if kind == "deep":
        n = rng.choice([100, 1000, 100000])
        return kind, ("[" * n + "]" * n).encode()
    if kind == "utf8":
        raw = json.dumps(base).encode()
        at = rng.randrange(len(raw) + 1)
        return kind, raw[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"]) + raw[at:]
    if kind == "bytes":
        raw = bytearray(json.dumps(base, indent=1).encode())
        for _ in range(rng.randint(1, 6)):
            if raw:
                raw[rng.randrange(len(raw))] = rng.choice(b'{}[]":,0 \nx')
        return kind, bytes(raw)
    m = rng.choice(names)
    if kind == "map":              # a map the object may not have, or of any JSON type
        base[rng.choice([m, "nope", "[/]", "\x1b[2J"])] = _json_junk(rng)
    else:
        entries = base.get(m)
        if not isinstance(entries, list) or not entries:
            entries = [{"key": "00000000", "value": "00000000"}]
        e = dict(rng.choice(entries))
        if kind == "value":
            e[rng.choice(["key", "value"])] = _json_junk(rng)
        elif kind == "slot":       # a slot entry of any kind naming anything
            e.pop("value", None)
            e[rng.choice(["prog", "map", "values"])] = _json_junk(rng)
        else:
            e = _json_junk(rng)
        entries = list(entries) + [e]
        base[m] = entries
    return kind, json.dumps(base).encode()


# --- running and judging ---------------------------------------------------------------------------
def judge(exit_code: int, stdout: str, stderr: str, exc) -> list[str]:
    """What is wrong with one CLI invocation: 'traceback', 'multi-line error', 'raw control'."""
    bad = []
    if exc is not None and not isinstance(exc, SystemExit):
        bad.append("traceback")
    if "Traceback (most recent call last)" in stdout + stderr or "internal error (" in stderr:
        bad.append("traceback")
    if exit_code != 0 and "traceback" not in bad:
        lines = stderr.splitlines()
        if len(lines) != 1 or not lines[0].startswith("error: "):
            bad.append("multi-line error")
    for c in stdout + stderr:
        if c not in "\n\t" and not c.isprintable():
            bad.append("raw control")
            break
    return sorted(set(bad))


def _invoke(args: list[str]):
    from click.testing import CliRunner

    from bpfpga.host.cli import main
    r = CliRunner().invoke(main, args, catch_exceptions=True)
    stderr = getattr(r, "stderr", "")
    exc = r.exception
    tb = "".join(traceback.format_exception(exc)) if exc is not None and \
        not isinstance(exc, SystemExit) else ""
    return r.exit_code, r.stdout, stderr, exc, tb


def one_case(i: int, seed: int, kinds: tuple[str, ...], exs: list[dict], tmp: Path) -> dict:
    rng = random.Random(f"{seed}:{i}")
    kind = rng.choice(kinds)
    ex = rng.choice(exs)
    obj, pc, mj = tmp / f"{ex['name']}.o", tmp / "traffic.pcap", tmp / "maps.json"
    obj.write_bytes(ex["obj"])
    pc.write_bytes(pcap_bytes(ex["packets"]))
    maps = ex["maps"]
    if kind == "objects":
        how, data = mutate_object(ex["obj"], rng)
        obj.write_bytes(data)
        cmds = [["prog", "show", str(obj)], ["disasm", str(obj)]]
    elif kind == "pcap":
        how, data = mutate_pcap(ex["packets"], rng)
        pc.write_bytes(data)
        cmds = []
    else:
        from bpfpga.compiler.elf import load_bytes
        how, data = mutate_maps(maps, [m.name for m in load_bytes(ex["obj"]).maps], rng)
        mj.write_bytes(data)
        maps = True
        cmds = []
    if maps:
        if kind != "mapsjson":
            mj.write_text(maps)
    run = ["run", str(obj), "--pcap", str(pc), "--target", "ref"] + \
          (["--maps", str(mj)] if maps else [])
    cmds.append(run)
    out = {"case": i, "kind": kind, "mutation": how, "example": ex["name"], "runs": []}
    for args in cmds:
        code, so, se, exc, tb = _invoke(args)
        bad = judge(code, so, se, exc)
        out["runs"].append({"cmd": args[0] if args[0] != "prog" else "prog show",
                            "exit": code, "bad": bad,
                            "detail": (tb.strip().splitlines()[-1] if tb else
                                       (se.strip()[:300] if bad else ""))})
    out["data"] = data
    return out


def campaign(count: int | None = None, seconds: float | None = None, seed: int = 1,
             kinds: tuple[str, ...] = KINDS, first: int = 0, save: Path | None = None,
             progress=None) -> dict:
    """Run cases first.. until `count` cases or `seconds` have passed; the counts."""
    os.environ["BPFPGA_TRACEBACK"] = "1"   # the CLI's last line of defence off: bugs surface
    exs = examples()
    stats = {"cases": 0, "invocations": 0, "by_kind": {k: 0 for k in kinds},
             "exit_codes": {}, "tracebacks": 0, "multi_line_errors": 0, "raw_control": 0,
             "findings": [], "seed": seed, "first": first}
    t0 = time.time()
    i = first
    with tempfile.TemporaryDirectory(prefix="bpfpga-fuzz-") as td:
        tmp = Path(td)
        while (count is None or stats["cases"] < count) and \
                (seconds is None or time.time() - t0 < seconds):
            c = one_case(i, seed, kinds, exs, tmp)
            stats["cases"] += 1
            stats["by_kind"][c["kind"]] += 1
            for r in c["runs"]:
                stats["invocations"] += 1
                stats["exit_codes"][str(r["exit"])] = stats["exit_codes"].get(str(r["exit"]),
                                                                              0) + 1
                stats["tracebacks"] += "traceback" in r["bad"]
                stats["multi_line_errors"] += "multi-line error" in r["bad"]
                stats["raw_control"] += "raw control" in r["bad"]
                if r["bad"]:
                    f = {k: c[k] for k in ("case", "kind", "mutation", "example")}
                    f.update(cmd=r["cmd"], bad=r["bad"], detail=r["detail"])
                    if save is not None:
                        save.mkdir(parents=True, exist_ok=True)
                        ext = {"objects": "o", "pcap": "pcap", "mapsjson": "json"}[c["kind"]]
                        p = save / f"case{c['case']}.{ext}"
                        p.write_bytes(c["data"])
                        f["saved"] = str(p)
                    stats["findings"].append(f)
            if progress is not None:
                progress(stats)
            i += 1
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, help="cases to run (default: 1000 unless --seconds)")
    ap.add_argument("--seconds", type=float, help="run for this long")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first", type=int, default=0, help="index of the first case")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"comma-separated, of {', '.join(KINDS)}")
    ap.add_argument("--save", type=Path, help="write the input of every bad case here")
    ap.add_argument("--json", type=Path, default=ROOT / "build/bench/fuzz_objects.json")
    args = ap.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not kinds or set(kinds) - set(KINDS):
        ap.error(f"--kinds takes {', '.join(KINDS)}")
    count = args.count if args.count is not None or args.seconds else 1000
    last = [0.0]

    def progress(s):
        if time.time() - last[0] > 10:
            last[0] = time.time()
            print(f"{s['cases']} cases, {s['invocations']} invocations: {s['tracebacks']} "
                  f"tracebacks, {s['multi_line_errors']} multi-line errors, "
                  f"{s['raw_control']} raw control", file=sys.stderr, flush=True)

    s = campaign(count, args.seconds, args.seed, kinds, args.first, args.save, progress)
    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"fuzz_objects: {s['cases']} cases (seed {s['seed']}) in {s['seconds']} s",
              title_justify="left")
    t.add_column("what")
    t.add_column("count", justify="right")
    for k, v in s["by_kind"].items():
        t.add_row(f"cases: {k}", str(v))
    t.add_row("CLI invocations", str(s["invocations"]))
    for k, v in sorted(s["exit_codes"].items()):
        t.add_row(f"exit status {k}", str(v))
    t.add_row("tracebacks", str(s["tracebacks"]))
    t.add_row("multi-line errors", str(s["multi_line_errors"]))
    t.add_row("raw control characters", str(s["raw_control"]))
    Console().print(t)
    from bpfpga.errors import escape
    for f in s["findings"][:20]:
        print(f"case {f['case']} ({f['kind']}/{f['mutation']}, {f['example']}, {f['cmd']}): "
              f"{', '.join(f['bad'])}: {escape(f['detail'])}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(s, indent=1))
    return 1 if s["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
