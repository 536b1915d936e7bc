"""The disassembler against llvm-objdump (LLVM 14): every instruction of the 313 conformance
programs and of every examples/*/*.o object must print as llvm-objdump prints it, whitespace
aside. Where LLVM 14 does not know an instruction (v4, BPF_MOD, BPF_JSET, BPF_ST, 32-bit atomics
without +alu32) or decodes it wrongly (the v4 forms selected by the offset field: LLVM 14
ignores the field and prints sdiv as ``/=`` and movsx as a move; callx: LLVM 14 reads the
register from imm; the 32-bit fetch add: LLVM 14 without +alu32 ignores the fetch bit) the text is checked against the newer
LLVM spelling: exactly against ``llvm-objdump --mattr=+alu32`` when that knows it, else against
the LLVM 18+ template, and it must assemble back to the same bytes."""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bpfpga import isa
from bpfpga.compiler.disasm import disassemble, disassemble_elf, format_insn, iter_insns
from bpfpga.compiler.llvm_syntax import parse_llvm

from conftest import REPO, suite_root

OBJDUMP = shutil.which("llvm-objdump")
needs_objdump = pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump not installed")

_LINE = re.compile(r"^\s*(\d+):\t((?:[0-9a-f]{2} )*[0-9a-f]{2})\s*\t(.*)$")
_SECTION = re.compile(r"^Disassembly of section (.*):$")

# LLVM 18+ templates for what LLVM 14 prints as <unknown> (from LLVM's BPFInstrInfo.td)
R = r"(?P<p>[rw])\d+"
RHS = r"((?P=p)\d+|-?\d+)"
MEM = r"r\d+ [+-] \d+"
LLVM18 = {
    "sdiv/smod": rf"^{R} s[/%]= {RHS}$",
    "mod": rf"^{R} %= {RHS}$",
    "movsx": rf"^{R} = \(s(8|16|32)\)(?P=p)\d+$",
    "ldxsx": rf"^r\d+ = \*\(s(8|16|32) \*\)\({MEM}\)$",
    "bswap": r"^r(\d+) = bswap(16|32|64) r\1$",
    "gotol": r"^gotol [+-]\d+$",
    "callx": r"^callx r\d+$",
    "jset": rf"^if {R} & {RHS} goto [+-]\d+$",
    "st": rf"^\*\(u(8|16|32|64) \*\)\({MEM}\) = -?\d+$",
}


def llvm18_rule(spec: isa.InsnSpec) -> str:
    if spec.kind == isa.ALU and spec.select == ("off", 1):
        return "sdiv/smod"
    if spec.kind == isa.ALU and spec.op == isa.BPF_MOD:
        return "mod"
    if spec.kind == isa.JA and spec.cls == isa.BPF_JMP32:
        return "gotol"
    if spec.kind == isa.JCOND and spec.op == isa.BPF_JSET:
        return "jset"
    return {isa.MOVSX: "movsx", isa.LDXSX: "ldxsx", isa.CALLX: "callx", isa.ST: "st",
            isa.END: "bswap"}[spec.kind]


def norm(text: str) -> str:
    text = re.sub(r"\s+<[^<>]*>$", "", text.strip())      # llvm-objdump's branch annotation
    return " ".join(text.split())


def make_elf(sections: list[tuple[str, bytes]]) -> bytes:
    """A minimal relocatable ELF64 (EM_BPF) with one executable section per program."""
    shstr = b"\0"
    names = []
    for n, _ in sections:
        names.append(len(shstr))
        shstr += n.encode() + b"\0"
    shstr_name = len(shstr)
    shstr += b".shstrtab\0"
    data = bytearray(64)
    offs = []
    for _, b in sections:
        data += bytes(-len(data) % 8)
        offs.append(len(data))
        data += b
    shstr_off = len(data)
    data += shstr
    data += bytes(-len(data) % 8)
    shoff = len(data)
    sh = bytearray(64)   # the null section header
    SHT_PROGBITS, SHT_STRTAB, SHF_ALLOC_EXEC = 1, 3, 0x2 | 0x4
    for (_, b), no, o in zip(sections, names, offs):
        sh += struct.pack("<IIQQQQIIQQ", no, SHT_PROGBITS, SHF_ALLOC_EXEC, 0, o, len(b), 0, 0,
                          8, 0)
    sh += struct.pack("<IIQQQQIIQQ", shstr_name, SHT_STRTAB, 0, 0, shstr_off, len(shstr), 0, 0,
                      1, 0)
    data += sh
    shnum = len(sections) + 2
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)   # 64-bit, little-endian, version 1
    data[:64] = ident + struct.pack("<HHIQQQIHHHHHH", 1, 247, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                                    shnum, shnum - 1)
    return bytes(data)


def objdump(path: Path, *extra: str) -> dict[str, dict[int, str]]:
    """section -> slot -> normalized text, from one llvm-objdump run."""
    out = subprocess.run([OBJDUMP, "-d", *extra, str(path)], capture_output=True, text=True,
                         check=True).stdout
    res: dict[str, dict[int, str]] = {}
    cur = None
    for line in out.splitlines():
        m = _SECTION.match(line)
        if m:
            cur = res.setdefault(m.group(1), {})
            continue
        m = _LINE.match(line)
        if m and cur is not None:
            cur[int(m.group(1))] = norm(m.group(3))
    return res


def compare(programs: dict[str, bytes], path: Path) -> tuple[int, int, int, list[str]]:
    """(exact matches, newer-LLVM matches, instructions, failures) of the programs written
    as sections of the ELF at path."""
    plain = objdump(path)
    alu32 = objdump(path, "--mattr=+alu32")
    exact = newer = total = 0
    fails = []
    for name, prog in programs.items():
        for pc, insn, raw in iter_insns(prog):
            total += 1
            mine = norm(format_insn(insn)) if insn is not None else None
            theirs = plain.get(name, {}).get(pc)
            where = f"{name} slot {pc} ({raw.hex(' ')})"
            if insn is None or insn.spec is None:
                fails.append(f"{where}: not decoded; llvm-objdump says {theirs!r}")
                continue
            spec = insn.spec
            # LLVM 14 ignores the v4 selectors (prints sdiv as /=, movsx as a move) and takes
            # the callx register from imm: those follow the LLVM 18+ templates. Without
            # +alu32 it prints the 32-bit fetch add as a plain add and knows no other 32-bit
            # atomic: those must read as llvm-objdump --mattr=+alu32 prints them.
            newer_only = spec.version >= 4 or spec.kind == isa.CALLX
            atomic32 = (spec.kind == isa.ATOMIC and spec.size == isa.BPF_W
                        and insn.imm != isa.BPF_ADD)
            if mine == theirs and not (newer_only or atomic32):
                exact += 1
                continue
            other = alu32.get(name, {}).get(pc)
            if atomic32:
                ok = mine == other
            elif newer_only or theirs == "<unknown>":
                ok = bool(re.match(LLVM18[llvm18_rule(spec)], mine))
                back, _ = parse_llvm(mine)
                ok = ok and back.encode() == insn.encode()
            else:
                ok = False
            if ok:
                newer += 1
            else:
                fails.append(f"{where}: mine {mine!r}, llvm-objdump {theirs!r}"
                             f" (+alu32 {other!r})")
    return exact, newer, total, fails


def conformance_programs() -> dict[str, bytes]:
    path = suite_root() / "assembled.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found (set BPFPGA_CONFORMANCE)")
    progs = {}
    with open(path) as f:
        for i, line in enumerate(f):
            rec = json.loads(line)
            progs[f"p{i}"] = bytes.fromhex(rec["program_hex"])
    return progs


@needs_objdump
def test_conformance_programs_match_llvm_objdump(tmp_path):
    progs = conformance_programs()
    assert len(progs) == 313
    elf = tmp_path / "all.o"
    elf.write_bytes(make_elf(list(progs.items())))
    exact, newer, total, fails = compare(progs, elf)
    print(f"{total} instructions: {exact} as llvm-objdump 14, {newer} as newer LLVM")
    assert not fails, "\n".join(fails[:40])
    assert exact + newer == total and exact > 2400


def example_objects() -> list[Path]:
    return sorted((REPO / "examples").glob("*/*.o"))


@needs_objdump
@pytest.mark.parametrize("obj", example_objects(), ids=lambda p: p.parent.name + "/" + p.name)
def test_example_objects_match_llvm_objdump(obj):
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        progs = {s.name: s.data() for s in elf.iter_sections()
                 if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 0x4 and s.data_size}
    assert progs, f"{obj} has no code section"
    exact, newer, total, fails = compare(progs, obj)
    assert not fails, "\n".join(fails[:40])
    # our ELF listing names the same symbols and relocations as llvm-objdump -dr
    ours = disassemble_elf(str(obj))
    theirs = subprocess.run([OBJDUMP, "-dr", str(obj)], capture_output=True, text=True,
                            check=True).stdout
    for pat in (r"^[0-9a-f]{16} <[^>]+>:$", r"^\s+[0-9a-f]{16}:\s+R_BPF_\S+\s+\S+$"):
        want = [" ".join(m.split()) for m in re.findall(pat, theirs, re.M)]
        got = [" ".join(m.split()) for m in re.findall(pat, ours, re.M)]
        assert got == want


def test_no_objdump_needed_for_basic_forms():
    cases = {
        "b701000001000000": "r1 = 1",
        "0c21000000000000": "w1 += w2",
        "6d21030000000000": "if r1 s> r2 goto +3",
        "1601feff05000000": "if w1 == 5 goto -2",
        "631afcff00000000": "*(u32 *)(r10 - 4) = r1",
        "6910020000000000": "r0 = *(u16 *)(r1 + 2)",
        "db21000000000000": "lock *(u64 *)(r1 + 0) += r2",
        "db01000001000000": "r0 = atomic_fetch_add((u64 *)(r1 + 0), r0)",
        "db120000f1000000": "r0 = cmpxchg_64(r2 + 0, r0, r1)",
        "c3120000e1000000": "w1 = xchg32_32(r2 + 0, w1)",
        "8500000005000000": "call 5",
        "9500000000000000": "exit",
        "dc00000010000000": "r0 = be16 r0",
        "d400000020000000": "r0 = le32 r0",
        "8700000000000000": "r0 = -r0",
        "8400000000000000": "w0 = -w0",
        "0500020000000000": "goto +2",
        "3f10010000000000": "r0 s/= r1",
        "9f10010000000000": "r0 s%= r1",
        "3c10010000000000": "w0 s/= w1",
        "bf10080000000000": "r0 = (s8)r1",
        "bc10100000000000": "w0 = (s16)w1",
        "9110000000000000": "r0 = *(s8 *)(r1 + 0)",
        "d700000010000000": "r0 = bswap16 r0",
        "0600000005000000": "gotol +5",
        "8d02000000000000": "callx r2",
        "3000000005000000": "r0 = *(u8 *)skb[5]",
        "4830000000000000": "r0 = *(u16 *)skb[r3]",
        "18000000887766550000000044332211": "r0 = 1234605616436508552 ll",
        "18000000112233440000000055667788": "r0 = -8613303245920329199 ll",
        "7a0afcff01000000": "*(u64 *)(r10 - 4) = 1",
        "4d21010000000000": "if r1 & r2 goto +1",
    }
    for hexs, want in cases.items():
        ((_, insn, _),) = iter_insns(bytes.fromhex(hexs))
        assert format_insn(insn) == want


def test_unknown_and_truncated_never_crash():
    lines = disassemble(bytes.fromhex("8f00000000000000" "d400000008000000" "1800000001000000"
                                      "aabb"))
    assert "unknown opcode 0x8f" in lines[0] and lines[0].split(":", 1)[1].strip().startswith(
        ".insn 8f 00")
    assert "unknown field values" in lines[1]
    assert "lddw without its second slot" in lines[2]
    assert "trailing bytes" in lines[3]


def test_pc_annotation():
    (line,) = disassemble(bytes.fromhex("0500020000000000"))
    assert line.strip() == "0:  goto +2 <3>"
    assert format_insn(isa.decode(bytes.fromhex("8510000003000000"))[0], 4) == "call 3 <8>"


def test_cli_disasm(tmp_path):
    from click.testing import CliRunner

    from bpfpga.host.cli import main

    prog = bytes.fromhex("b701000001000000" "3f10010000000000" "9500000000000000")
    run = CliRunner().invoke
    (tmp_path / "p.bin").write_bytes(prog)
    (tmp_path / "p.hex").write_text(prog.hex() + "\n")
    (tmp_path / "p.words").write_text("0x00000001000001b7\n0x0000000000000095\n")
    (tmp_path / "p.o").write_bytes(make_elf([("xdp", prog)]))
    (tmp_path / "t.data").write_text("-- asm\nmov %r0, 1\nexit\n-- result\n0x1\n")
    (tmp_path / "r.data").write_text("-- raw\n0x00000002000000b7\n0x0000000000000095\n"
                                     "-- result\n0x2\n")
    (tmp_path / "junk.txt").write_text("hello\n")
    for name, want in (("p.bin", ["r1 = 1", "r0 s/= r1", "exit"]),
                       ("p.hex", ["r1 = 1", "r0 s/= r1", "exit"]),
                       ("p.words", ["r1 = 1", "exit"]),
                       ("t.data", ["r0 = 1", "exit"]),
                       ("r.data", ["r0 = 2", "exit"])):
        res = run(main, ["disasm", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        assert [l.split(":", 1)[1].strip() for l in res.output.splitlines()] == want, name
    res = run(main, ["disasm", str(tmp_path / "p.o")])
    assert res.exit_code == 0 and "Disassembly of section xdp:" in res.output
    assert "0000000000000000 <xdp>:" in res.output and "r0 s/= r1" in res.output
    res = run(main, ["disasm", "-b", str(tmp_path / "p.bin")])
    assert "3f 10 01 00 00 00 00 00" in res.output
    res = run(main, ["disasm", str(tmp_path / "junk.txt")])
    assert res.exit_code == 1 and "junk.txt: not an ELF object" in res.output
