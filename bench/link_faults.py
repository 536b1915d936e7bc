"""The link-fault campaign (issue 19): loads and map updates over a link with one fault at one
byte, every kind (cut, drop, corrupt, delay) at points spread over every stage of the
operation (the bytes of a clean run, both directions), each checked over a clean link: the
engine enabled, the old program with its maps exactly as they were or the new one with its
maps exactly as loaded, a one-line error. Against `bpfpga sim-board` (started here).

    python bench/link_faults.py [--trials 50] [--op load|update|both] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


OBJECTS = {"tailcall": ("class_policy",), "lb": ("lb_config", "vip_map", "backends")}


def entries(example: str, variant: int) -> dict:
    """maps.json entries of an example (lb: lb_config, vip_map and backends); variant 1
    with another byte in every value, so the old and the new maps differ."""
    import tempfile

    from bpfpga.compiler.mapsjson import load as load_maps
    raw = json.loads((ROOT / "examples" / example / "maps.json").read_text())
    sub = {n: raw[n] for n in OBJECTS[example]}
    if variant:
        for lst in sub.values():
            for e in lst:
                if isinstance(e.get("value"), str) and len(e["value"]) >= 2:
                    e["value"] = "ee" + e["value"][2:]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(sub, f)
    return load_maps(f.name)


class SimBoard:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "bpfpga.host.cli_entry",
                                      "sim-board", "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.close()
            raise RuntimeError(f"sim-board did not start: {line!r}")
        self.url = line.split("serving ")[1].split()[0].rstrip(";")

    def close(self):
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def campaign(url: str, trials: int, ops=("load", "update"), kinds=None, log=print,
             example: str = "tailcall") -> list:
    """`trials` trials of each op and kind, the fault at byte (i + 0.5) / trials of a clean
    run's bytes, even trials on the commands (tx), odd ones on the answers (rx). Loads of the
    example over itself (placed beside it), updates of its first map of OBJECTS."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.host.device import Device, install
    from bpfpga.host.linkfault import KINDS, good, trial
    lb = ROOT / "examples" / example / f"{example}.o"
    ents = [entries(example, 0), entries(example, 1)]
    d = Device(url, timeout=10)
    install(d, load_object(str(lb)), entries=ents[1])
    d.close()
    out = []
    name = OBJECTS[example][-1]
    vsize = {m.name: m.value_size for m in load_object(str(lb)).maps}[name]
    serial = iter(range(1, 1 << 30))    # every update writes a value not there before
    for op in ops:
        upd = lambda i: (name, (1 + i % 8).to_bytes(4, "little"),  # noqa: E731
                         (0xA000 + next(serial)).to_bytes(vsize, "little"))
        args = dict(obj_path=lb, entries=ents[0]) if op == "load" else dict(update=upd(0))
        c = trial(url, op, "count", 0, **args)
        total = {"tx": c["sent"], "rx": c["received"]}
        log(f"{op}: a clean run carries {total['tx']} bytes out, {total['rx']} back")
        for kind in kinds or KINDS:
            t0 = time.time()
            res = []
            for i in range(trials):
                direction = "tx" if i % 2 == 0 else "rx"
                at = int((i + 0.5) * total[direction] / trials)
                args = dict(obj_path=lb, entries=ents[i % 2]) if op == "load" \
                    else dict(update=upd(i))
                r = trial(url, op, kind, at, direction, **args)
                r["good"] = good(r)
                res.append(r)
                if not r["good"]:
                    log(f"  BAD {r}")
            n_ok = sum(r["good"] for r in res)
            states = {s: sum(r["state"] == s for r in res) for s in ("old", "new", "updated")}
            fails = sum(r["error"] is not None for r in res)
            fired = sum(bool(r["fired"]) for r in res)
            log(f"{op} {kind:8} {n_ok}/{trials} good; {fails} failed with an error; "
                f"after: {states}; the fault fell inside the operation in {fired}; "
                f"{time.time() - t0:.0f} s")
            out += res
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--op", choices=("load", "update", "both"), default="both")
    ap.add_argument("--kind", action="append", help="only these kinds (repeatable)")
    ap.add_argument("--device", help="a running sim-board's socket:// URL")
    ap.add_argument("--example", choices=sorted(OBJECTS), default="tailcall")
    ap.add_argument("--json", type=Path, help="write every trial's outcome here")
    a = ap.parse_args()
    board = None if a.device else SimBoard()
    try:
        ops = ("load", "update") if a.op == "both" else (a.op,)
        res = campaign(a.device or board.url, a.trials, ops, a.kind, example=a.example)
    finally:
        if board is not None:
            board.close()
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=str))
    bad = [r for r in res if not r["good"]]
    print(f"{len(res) - len(bad)} of {len(res)} trials good")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
