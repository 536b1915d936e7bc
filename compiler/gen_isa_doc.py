"""Write docs/isa.md from bpfpga/isa.py: `python -m bpfpga.compiler.gen_isa_doc > docs/isa.md`."""
from __future__ import annotations

from bpfpga import isa


def _rule(r) -> str:
    if r == isa.REG:
        return "reg"
    if r == isa.FREE:
        return "any"
    if isinstance(r, frozenset):
        return "{" + ",".join(str(v) for v in sorted(r)) + "}"
    return str(r)


def render() -> str:
    lines = ["# ISA coverage", "",
             "Generated from `bpfpga/isa.py` by `python -m bpfpga.compiler.gen_isa_doc`; "
             "every form below is assembled, disassembled, run by the reference machine and "
             "decoded by the hardware from that one table. Field columns give what each field "
             "must hold: `reg` a register r0..r10, `any` free, a number: that exact value "
             "(0 = reserved, must be zero).", "",
             f"{len(isa.SPECS)} instruction forms.", "",
             "| mnemonic | opcode | class | kind | dst | src | off | imm | group | version |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in isa.SPECS:
        lines.append(f"| `{s.name}` | 0x{s.opcode:02x} | {isa.CLASS_NAMES[s.cls]} | {s.kind} | "
                     f"{_rule(s.dst)} | {_rule(s.src)} | {_rule(s.off)} | {_rule(s.imm)} | "
                     f"{s.group} | v{s.version} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
