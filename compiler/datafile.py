"""The conformance suite's `.data` files: sections asm, raw, mem, result, error."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from bpfpga.errors import AsmError

KNOWN_SECTIONS = {"asm", "raw", "mem", "result", "error", "c", "no register offset"}


@dataclass
class DataFile:
    path: str
    asm: str | None = None          # the assembler text (line numbers kept: see asm_line0)
    asm_line0: int = 0              # file line number of the first asm line, minus one
    raw: bytes | None = None
    mem: bytes = b""
    result: int | None = None
    error: str | None = None
    sections: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def program(self) -> bytes:
        """The program bytes: the raw section when there is one, else the assembled asm."""
        if self.raw is not None:
            return self.raw
        if self.asm is None:
            raise AsmError("no program (neither an asm nor a raw section)", file=self.path)
        from bpfpga.compiler.asm import assemble
        return assemble(self.asm, file=self.path, line0=self.asm_line0)


def _raw_bytes(lines: list[tuple[int, str]], path: str) -> bytes:
    out = bytearray()
    for lineno, text in lines:
        toks = text.split()
        if not toks:
            continue
        try:
            if len(toks) == 1 and toks[0].lower().startswith("0x"):
                if not re.fullmatch(r"0[xX][0-9a-fA-F]{1,16}", toks[0]):
                    raise ValueError("not a 64-bit hex word")
                out += int(toks[0], 16).to_bytes(8, "little")
            else:
                if not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", t) for t in toks):
                    raise ValueError("not hex bytes")
                b = bytes(int(t, 16) for t in toks)
                if len(b) != 8:
                    raise ValueError(f"{len(b)} bytes")
                out += b
        except (ValueError, OverflowError) as e:
            raise AsmError(f"raw section: bad instruction '{text.strip()}' ({e})",
                           line=lineno, file=path) from None
    return bytes(out)


def parse_text(text: str, path: str = "<string>") -> DataFile:
    df = DataFile(path)
    cur = None
    chunks: dict[str, list[tuple[int, str]]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("--"):
            cur = line[2:].strip()
            df.sections.append(cur)
            if cur not in KNOWN_SECTIONS:
                raise AsmError(f"unknown section '-- {cur}'", line=lineno, file=path)
            chunks.setdefault(cur, [])
            if cur == "asm":
                df.asm_line0 = lineno
            continue
        if cur is None:
            continue
        body = line if cur in ("c", "error") else line.split("#", 1)[0]
        chunks[cur].append((lineno, body))
    if "asm" in chunks:
        df.asm = "\n".join(t for _, t in chunks["asm"])
    if "raw" in chunks:
        df.raw = _raw_bytes(chunks["raw"], path)
    if "mem" in chunks:
        try:
            toks = [t for _, t in chunks["mem"] for t in t.split()]
            if not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", t) for t in toks):
                raise ValueError("not hex bytes")
            df.mem = bytes(int(t, 16) for t in toks)
        except ValueError as e:
            raise AsmError(f"mem section: {e}", file=path) from None
    if "result" in chunks:
        vals = [t.strip() for _, t in chunks["result"] if t.strip()]
        if vals:
            v = vals[0]
            if not re.fullmatch(r"0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20}", v):
                raise AsmError(f"result section: '{v[:40]}' is not a 64-bit number",
                               file=path)
            df.result = int(v, 16) if "0x" in v.lower() else int(v, 10)
            df.result &= (1 << 64) - 1
    if "error" in chunks:
        df.error = "\n".join(t for _, t in chunks["error"]).strip()
    return df


def parse(path: str | os.PathLike) -> DataFile:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise AsmError(f"cannot read: {e.strerror}", file=str(p)) from None
    return parse_text(text, str(p))
