"""disasm: print a program in the LLVM/kernel syntax (as llvm-objdump -d prints it)."""
from __future__ import annotations

import re
from pathlib import Path

import click

from bpfpga.errors import BpfpgaError

_HEX_TEXT = re.compile(r"^(?:\s|0[xX]|[0-9a-fA-F]|,)*$")


def _hex_program(text: str, path: str) -> bytes:
    """A text file of hex: one run of hex digits, or 8-byte words (``0x...`` or bytes)."""
    words = text.replace(",", " ").split()
    if words and all(w.lower().startswith("0x") and len(w) == 18 for w in words):
        return b"".join(int(w, 16).to_bytes(8, "little") for w in words)
    digits = "".join(w[2:] if w.lower().startswith("0x") else w for w in words)
    if len(digits) % 2:
        raise BpfpgaError(f"{path}: odd number of hex digits")
    return bytes.fromhex(digits)


def load_program(path: str) -> tuple[str, bytes | None]:
    """('elf', None) for an ELF object, else ('raw', program bytes) from a raw binary, a text
    file of hex, or a conformance .data file (its raw section, else its assembled asm)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise BpfpgaError(f"{path}: cannot read: {e.strerror}") from None
    if data[:4] == b"\x7fELF":
        return "elf", None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return "raw", data
    if p.suffix == ".data" or any(line.startswith("-- ") for line in text.splitlines()):
        from bpfpga.compiler import datafile
        df = datafile.parse_text(text, path)
        if df.raw is not None:
            return "raw", df.raw
        if df.asm is None:
            raise BpfpgaError(f"{path}: neither a raw nor an asm section")
        from bpfpga.compiler.asm import assemble   # lazily: the assembler is a heavier import
        return "raw", assemble(df.asm, file=path, line0=df.asm_line0)
    if text.strip() and _HEX_TEXT.match(text):
        return "raw", _hex_program(text, path)
    if any(c < " " and c not in "\t\r\n" for c in text):
        return "raw", data       # binary that happens to be valid UTF-8
    raise BpfpgaError(f"{path}: not an ELF object, a .data file, a hex text file or a raw "
                      "program (text that is not hex)")


@click.command("disasm")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-b", "--bytes", "show_bytes", is_flag=True, help="show each instruction's bytes")
def disasm_cmd(file, show_bytes):
    """Disassemble FILE: a raw program (binary or hex text), a conformance .data file, or an
    ELF object (per code section, with symbols and relocations)."""
    from bpfpga.compiler.disasm import disassemble, disassemble_elf
    kind, prog = load_program(file)
    if kind == "elf":
        click.echo(disassemble_elf(file, raw=show_bytes), nl=False)
        return
    if not prog:
        raise BpfpgaError(f"{file}: empty program")
    for line in disassemble(prog, raw=show_bytes):
        click.echo(line)


def register(group: click.Group) -> None:
    group.add_command(disasm_cmd)
