"""Errors stay one line (issue 19): every malformed input the CLI takes gives a non-zero exit
and exactly one ``error:`` line naming what is wrong, never a traceback; text from an object
reaches the terminal escaped. Plus a short run of the fuzz campaign (bench/fuzz_objects.py)."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpfpga.compiler.mapsjson import check, load as load_maps
from bpfpga.errors import BpfpgaError, LoadError, escape
from bpfpga.host.cli import main
from bpfpga.sim import pcap
from bpfpga.sim.frame import MAX_FRAME, frame_refusal

import bpfobjs

REPO = Path(__file__).resolve().parents[1]
EX = REPO / "examples"


@pytest.fixture(scope="module")
def objs():
    return bpfobjs.build_all()


def one_error(args, *needles, status=1):
    """Run the CLI; assert the exit status, one `error:` line on stderr naming each needle,
    nothing raised; return the line."""
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert r.exit_code == status, (r.exit_code, r.output)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def tiny_pcap(tmp_path, frames=(bytes(64),)) -> Path:
    p = tmp_path / "t.pcap"
    pcap.write(p, list(frames))
    return p


# --- the escaping function -------------------------------------------------------------------------
def test_escape_control_and_nonprintable():
    assert escape("a\nb\r\t\x1b]0;t\x07\x7f\x9b\u202e\u200b ok") == \
        "a\\x0ab\\x0d\\x09\\x1b]0;t\\x07\\x7f\\x9b\\u202e\\u200b ok"
    assert escape("plain [x] ünïcode") == "plain [x] ünïcode"
    assert escape("xdp/[/] [bold]b", markup=True) == "xdp/\\[/] \\[bold]b"
    assert str(LoadError("sec\nerror: forged")) == "sec\\x0aerror: forged"


# --- maps.json -------------------------------------------------------------------------------------
MAPS_CASES = {
    "not_utf8": (b"\xff\xfe{}", ["not UTF-8", "0xff"]),
    "deep": (b"[" * 100000 + b"]" * 100000, ["nested too deeply"]),
    "values_5": (b'{"jumps": [{"key": "01000000", "values": 5}]}', ['"values"', "not 5"]),
    "missing_prog": (b'{"jumps": [{"key": "00000000", "prog": "nope"}]}', ["no program 'nope'"]),
    "prog_slot_names_map": (b'{"jumps": [{"key": "00000000", "map": "inner_a"}]}',
                            ["'jumps'", "takes \"prog\""]),
    "prog_slot_raw": (b'{"jumps": [{"key": "00000000", "value": "01000000"}]}',
                      ["takes \"prog\""]),
    "inner_slot_names_prog": (b'{"outer": [{"key": "01000000", "prog": "tail_a"}]}',
                              ["'outer'", "takes \"map\""]),
    "missing_inner": (b'{"outer": [{"key": "01000000", "map": "nope"}]}', ["no inner map"]),
    "prog_in_plain_map": (b'{"inner_a": [{"key": "00000000", "prog": "tail_a"}]}',
                          ["'inner_a'", "not a prog"]),
    "missing_map": (b'{"nope": []}', ["'nope'"]),
    "key_size": (b'{"inner_a": [{"key": "00", "value": "00000000"}]}', ["key of 1 bytes"]),
    # a key neither hex nor of the key's BTF type (a number is a typed __u32 key now)
    "key_wrong_type": (b'{"inner_a": [{"key": [1, 2], "value": "00000000"}]}',
                       ["key: expected an integer"]),
    "markup_name": (b'{"[/]\\u001b[2J": []}', ["\\x1b"]),
}


@pytest.mark.parametrize("case", sorted(MAPS_CASES))
def test_bad_maps_json(case, objs, tmp_path):
    text, needles = MAPS_CASES[case]
    mj = tmp_path / "maps.json"
    mj.write_bytes(text)
    one_error(["run", objs["maps"], "--maps", mj, "--pcap", tiny_pcap(tmp_path)], *needles)


class Recorder:
    """A target that records every write: a refused maps.json must write nothing."""

    def __init__(self):
        self.writes = []

    def map_update(self, *a):
        self.writes.append(a)

    set_prog_slot = set_inner_map = map_update


@pytest.mark.parametrize("case", ["missing_prog", "prog_slot_names_map",
                                  "inner_slot_names_prog", "missing_inner"])
def test_slot_refused_before_any_target_write(case, objs, tmp_path):
    """rtl and board take maps.json through the same check (apply_maps; device prog load
    before it opens the device): refused before anything is written."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.host.targets import apply_maps
    o = load_object(str(objs["maps"]))
    mj = tmp_path / "maps.json"
    good = b'{"inner_a": [{"key": "00000000", "value": "01000000"}], '
    mj.write_bytes(good + MAPS_CASES[case][0][1:])
    t = Recorder()
    with pytest.raises(LoadError):
        apply_maps(t, o, load_maps(mj))
    assert t.writes == []
    # the board: refused before the device is opened (nothing listens on this port)
    one_error(["prog", "load", objs["maps"], "--maps", mj, "-d", "udp://127.0.0.1:9"],
              *MAPS_CASES[case][1])


def test_slot_refused_on_kernel(objs, tmp_path):
    from bpfpga.host.kernel import kernel_available
    ok, why = kernel_available()
    if not ok:
        pytest.skip(f"the kernel target is not available here: {why}")
    mj = tmp_path / "maps.json"
    mj.write_bytes(MAPS_CASES["prog_slot_names_map"][0])
    one_error(["run", objs["maps"], "--target", "kernel", "--maps", mj, "--pcap",
               tiny_pcap(tmp_path)], "takes \"prog\"")


def test_good_slots_still_load(objs):
    from bpfpga.compiler.elf import load_object
    o = load_object(str(objs["maps"]))
    check(o, {"jumps": [(bytes(4), ("prog", "tail_a"))],
              "outer": [(bytes(4), ("map", "inner_b"))],
              "inner_a": [(bytes(4), bytes(4))]})


# --- objects: the kernel's map rules, names with markup and escapes, not BPF -----------------------
def _clang(tmp_path, src: str, name: str) -> Path:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (needed to build the BPF test object)")
    c = tmp_path / f"{name}.c"
    c.write_text(src)
    o = tmp_path / f"{name}.o"
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", *bpfobjs._include_flags(), "-c",
                    str(c), "-o", str(o)], check=True, capture_output=True)
    return o


MARKUP_SRC = """#include <linux/bpf.h>
#define SEC(n) __attribute__((section(n), used))
struct { int (*type)[BPF_MAP_TYPE_PROG_ARRAY]; int (*key_size)[%d]; int (*value_size)[4];
         int (*max_entries)[4]; } jt SEC(".maps");
SEC("xdp/[/]") int prog(struct xdp_md *ctx) { return 2; }
char _license[] SEC("license") = "GPL";
"""


def test_prog_array_key_size_8_refused_on_ref(tmp_path):
    o = _clang(tmp_path, MARKUP_SRC % 8, "k8")
    one_error(["run", o, "--pcap", tiny_pcap(tmp_path)], "map 'jt'", "key_size 8")


def test_markup_name(tmp_path):
    o = _clang(tmp_path, MARKUP_SRC % 4, "markup")
    r = CliRunner().invoke(main, ["prog", "show", str(o)])
    assert r.exit_code == 0, r.output
    assert "xdp/[/]" in r.stdout


def test_hostile_section_name_escaped(tmp_path):
    o = _clang(tmp_path, MARKUP_SRC % 4, "markup")
    data = o.read_bytes()
    assert b"xdp/[/]\0" in data
    o.write_bytes(data.replace(b"xdp/[/]\0", b"\nerror:\0"))
    for args in (["prog", "show", o], ["disasm", o]):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        assert "\\x0aerror:" in r.stdout and "\nerror:" not in r.stdout, r.stdout
    line = one_error(["prog", "load", o, "--section", "nope", "-d", "udp://127.0.0.1:9"],
                     "no program in section 'nope'")
    assert "\\x0aerror:" in line


def test_disasm_of_an_x86_elf(tmp_path):
    exe = Path(sys.executable).resolve()
    if exe.read_bytes()[:4] != b"\x7fELF":
        pytest.skip(f"{exe} is not an ELF file on this system")
    one_error(["disasm", exe], "not a BPF object")


# --- packets ---------------------------------------------------------------------------------------
def test_frame_rule():
    assert frame_refusal(13) and frame_refusal(MAX_FRAME + 1) and frame_refusal(9000)
    assert frame_refusal(14) is None and frame_refusal(MAX_FRAME) is None
    assert MAX_FRAME == 4096 - 256 - 320


def test_ref_refuses_what_kernel_and_engine_refuse(tmp_path):
    p = tiny_pcap(tmp_path, [b"", bytes(14), bytes(9000)])
    r = CliRunner().invoke(main, ["run", str(EX / "pass/pass.o"), "--pcap", str(p), "-j"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["packets"]
    assert "0 bytes is shorter than an Ethernet header" in rows[0]["error"]
    assert rows[1]["verdict"] == "PASS"
    assert "9000 bytes is longer than the 3520" in rows[2]["error"]


@pytest.mark.parametrize("case", ["short", "magic", "record", "linktype"])
def test_bad_pcap(case, tmp_path):
    good = tiny_pcap(tmp_path).read_bytes()
    bad = {"short": good[:10], "magic": b"\x1b[2J" + good[4:], "record": good[:-10],
           "linktype": good[:20] + b"\x71\0\0\0" + good[24:]}[case]
    p = tmp_path / "bad.pcap"
    p.write_bytes(bad)
    one_error(["run", EX / "pass/pass.o", "--pcap", p], "bad.pcap")


# --- asm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,needle", [
    ("r0 = " + "9" * 1_000_000 + "\nexit\n", "does not fit in 64 bits"),
    ("r0 = \u0663\nexit\n", "r0 = \u0663"),
    ("mov %r\u0663, 1\nexit\n", "invalid register"),
    ("-- asm\nr0 = 1\nexit\n-- result\nzz\n", "result section"),
    ("-- raw\nb7 00 00 00 01 00 00 \u0663\n", "raw section"),
])
def test_bad_asm(text, needle, tmp_path):
    f = tmp_path / ("p.data" if text.startswith("--") else "p.s")
    f.write_text(text)
    line = one_error(["asm", f], needle)
    assert len(line) < 300


# --- CLI values and URLs ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["x", "=5", "a=", "a=0", "a=0x", "a=99999999999",
                                   "a=\u0663", "a=1" + "0" * 5000])
def test_map_size_one_parser(value, tmp_path):
    p = tiny_pcap(tmp_path)
    a = one_error(["run", EX / "pass/pass.o", "--map-size", value, "--pcap", p], "--map-size")
    b = one_error(["prog", "show", EX / "pass/pass.o", "--map-size", value], "--map-size")
    assert a == b


@pytest.mark.parametrize("args,needle", [
    (["run", "--target", "x", "a.o", "--pcap", "p"], "'--target'"),
    (["nosuchcommand"], "No such command"),
    (["prog", "show", "--nope"], "--nope"),
])
def test_usage_errors_one_line(args, needle):
    one_error(args, needle, status=2)


@pytest.mark.parametrize("url,needle", [
    ("udp://no..such..host:1234", "cannot resolve host"),
    ("udp://:1", "no host"),
    ("udp://localhost:99999", "port '99999'"),
    ("udp://localhost:x", "port 'x'"),
    ("udp://\x1b]0;t\x07h", "\\x1b]0;t\\x07h"),
])
def test_bad_udp_url(url, needle):
    one_error(["device", "info", "-d", url], needle)


def test_internal_error_is_one_line(monkeypatch):
    """The CLI's last line of defence: a bug still prints one line (and says it is one)."""
    import bpfpga.host.cmd_disasm as cd

    def boom(path):
        raise ZeroDivisionError("x\ny")
    monkeypatch.setattr(cd, "load_program", boom)
    monkeypatch.delenv("BPFPGA_TRACEBACK", raising=False)
    one_error(["disasm", "whatever"], "internal error (ZeroDivisionError: x\\x0ay)")


# --- the fuzz campaign -----------------------------------------------------------------------------
def _fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_objects",
                                                  REPO / "bench/fuzz_objects.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fuzz_judge_flags_what_it_should():
    j = _fuzz().judge
    assert j(0, "ok\n\tcol\n", "", None) == []
    assert j(1, "", "error: one line\n", SystemExit(1)) == []
    assert j(1, "", "error: a\nerror: b\n", SystemExit(1)) == ["multi-line error"]
    assert j(1, "", "Usage: x\n\nError: y\n", SystemExit(1)) == ["multi-line error"]
    assert j(1, "", "", KeyError("k")) == ["traceback"]
    assert j(0, "name \x1b]0;x\x07\n", "", None) == ["raw control"]


def test_fuzz_short_campaign(monkeypatch):
    monkeypatch.setenv("BPFPGA_TRACEBACK", "1")
    s = _fuzz().campaign(count=300, seed=20240611)
    assert s["cases"] == 300 and all(s["by_kind"].values()), s["by_kind"]
    assert s["exit_codes"].get("0") and s["exit_codes"].get("1"), s["exit_codes"]
    assert (s["tracebacks"], s["multi_line_errors"], s["raw_control"]) == (0, 0, 0), \
        s["findings"][:5]
