"""A listing of a program for messages and demos: the full disassembler when present."""
from __future__ import annotations

from bpfpga import isa


def listing(program: bytes) -> list[str]:
    try:
        from bpfpga.compiler.disasm import disassemble
        return disassemble(program)
    except ImportError:
        out = []
        pc = 0
        for ins in isa.decode(program, strict=False):
            name = ins.spec.name if ins.spec else f"0x{ins.opcode:02x}"
            out.append(f"{pc:4}: {name} dst=r{ins.dst} src=r{ins.src} off={ins.off} "
                       f"imm={ins.imm}")
            pc += ins.slots
        return out
