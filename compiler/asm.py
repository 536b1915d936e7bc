"""Assembler: the conformance suite's syntax and the LLVM/kernel syntax, one line at a time.

Conformance syntax (as in ../shared/conformance/README.md)::

    mov32 %r0, 0          add %r1, %r2        lddw %r0, 0x1122334455667788
    ldxw %r0, [%r1+4]     stxdw [%r10-8], %r1 stb [%r10-1], 7
    jeq %r1, 5, label     ja +2               ja32 label       call 5 / call local f / call %r2
    lock fetch add32 [%r10-8], %r1           be16 %r0   movsx832 %r0, %r1

LLVM syntax lines (``r0 = 1``, ``if r1 s> r2 goto +3``...) are parsed by
compiler/llvm_syntax.py; both may be mixed in one file. Labels are ``name:``; the label
``exit`` is implicit and names the first ``exit`` instruction.
"""
from __future__ import annotations

import re

from bpfpga import isa
from bpfpga.errors import AsmError
from bpfpga.isa import Insn

_REG = re.compile(r"^%r([0-9]+)$")
_MEM = re.compile(r"^\[\s*%r([0-9]+)\s*(?:([+-])\s*([0-9a-fA-Fx]+))?\s*\]$")
_LABEL = re.compile(r"^([A-Za-z_.$][\w.$]*)\s*:\s*(.*)$")
_IDENT = re.compile(r"^[A-Za-z_.$][\w.$]*$")


_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")


def parse_int(tok: str, what: str) -> int:
    """An integer token of the assembler (decimal or 0x hex, ASCII digits only, a sign and
    spaces after it allowed); an AsmError names a malformed or absurdly long one."""
    t = tok.replace(" ", "").strip()
    if not _NUMBER.fullmatch(t):
        shown = tok.strip() if len(tok.strip()) <= 40 else tok.strip()[:40] + "..."
        raise AsmError(f"invalid {what} '{shown}'")
    if len(t) > 40:          # 2**64 has 20 digits; int() of a huge one is slow, or refused
        raise AsmError(f"{what} of {len(t)} characters does not fit in 64 bits")
    return int(t, 0) if "x" in t.lower() else int(t, 10)


_int = parse_int


def _imm32(tok: str) -> int:
    v = _int(tok, "immediate")
    ishex = "x" in tok.lower()
    lo = -(1 << 31)
    hi = (1 << 32) - 1 if ishex else (1 << 31) - 1
    if not lo <= v <= hi:
        raise AsmError(f"immediate {tok} does not fit in 32 bits")
    return isa.s32(v)


def _imm64(tok: str) -> int:
    v = _int(tok, "immediate")
    if not -(1 << 63) <= v < (1 << 64):
        raise AsmError(f"immediate {tok} does not fit in 64 bits")
    return v & 0xFFFFFFFFFFFFFFFF


def _reg(tok: str) -> int:
    m = _REG.match(tok.strip())
    if not m:
        raise AsmError(f"invalid register '{tok.strip()}'")
    n = int(m.group(1))
    if n > 10:
        raise AsmError(f"invalid register '{tok.strip()}'")
    return n


def _is_reg(tok: str) -> bool:
    return tok.strip().startswith("%")


def _mem(tok: str) -> tuple[int, int]:
    t = tok.strip()
    m = _MEM.match(t)
    if not m:
        raise AsmError(f"invalid memory operand '{t}' (expected [%rN+offset])")
    reg = int(m.group(1))
    if reg > 10:
        raise AsmError(f"invalid register '%r{reg}'")
    off = 0
    if m.group(3):
        off = _int(m.group(3), "offset")
        if m.group(2) == "-":
            off = -off
    if not -(1 << 15) <= off < (1 << 15):
        raise AsmError(f"offset {off} does not fit in 16 bits")
    return reg, off


def _split_operands(rest: str) -> list[str]:
    rest = rest.strip()
    if not rest:
        return []
    return [o.strip() for o in rest.split(",")]


def _nops(name: str, ops: list[str], n: int) -> None:
    if len(ops) != n:
        raise AsmError(f"invalid number of operands for {name}: expected {n}, got {len(ops)}")


def _spec(name: str, src_mode: int | None = None) -> isa.InsnSpec:
    specs = isa.BY_NAME[name]
    if src_mode is None or len(specs) == 1:
        return specs[0]
    for s in specs:
        if s.src_mode == src_mode:
            return s
    raise AsmError(f"{name} has no {'register' if src_mode else 'immediate'} form")


_make = isa.make


# A pending label reference: (index into insns, label, field) resolved after all lines are read.
class _Ref:
    __slots__ = ("idx", "label", "field", "line")

    def __init__(self, idx, label, field, line):
        self.idx, self.label, self.field, self.line = idx, label, field, line


def _target(tok: str) -> tuple[int | None, str | None]:
    t = tok.strip()
    if re.fullmatch(r"[+-]?[0-9]+|[+-]?0[xX][0-9a-fA-F]+", t):
        return _int(t, "jump offset"), None
    if _IDENT.match(t):
        return None, t
    raise AsmError(f"invalid jump target '{t}'")


def _parse_conformance(name: str, rest: str) -> tuple[Insn, tuple[str, str] | None]:
    """One instruction in the suite's syntax; returns the Insn and an optional (label, field)."""
    ops = _split_operands(rest)
    if name == "lock":
        raise AsmError("invalid number of operands for lock")
    if name == "exit":
        _nops(name, ops, 0)
        return _make(_spec("exit")), None
    if name == "call":
        if len(ops) != 1:
            raise AsmError(f"invalid number of operands for call: expected 1, got {len(ops)}")
        op = ops[0]
        if op.startswith("local "):
            lbl = op[len("local "):].strip()
            s = _spec("call")
            n, lab = _target(lbl)
            return Insn(s.opcode, 0, isa.BPF_PSEUDO_CALL, 0, n or 0, s), \
                ((lab, "imm") if lab else None)
        if _is_reg(op):
            return _make(_spec("callx"), dst=_reg(op)), None
        return _make(_spec("call"), imm=_imm32(op)), None
    if name in ("ja", "ja32"):
        _nops(name, ops, 1)
        n, lab = _target(ops[0])
        fld = "imm" if name == "ja32" else "off"
        if n is not None and fld == "off" and not -(1 << 15) <= n < (1 << 15):
            raise AsmError(f"jump offset {n} does not fit in 16 bits")
        s = _spec(name)
        ins = _make(s, **({fld: n} if n is not None else {}))
        return ins, ((lab, fld) if lab else None)
    if name == "lddw":
        _nops(name, ops, 2)
        return _make(_spec("lddw"), dst=_reg(ops[0]), imm=_imm64(ops[1])), None
    specs = isa.BY_NAME.get(name)
    if not specs:
        raise AsmError(f"unknown mnemonic '{name}'")
    s0 = specs[0]
    k = s0.kind
    if k in (isa.NEG, isa.END):
        _nops(name, ops, 1)
        return _make(s0, dst=_reg(ops[0])), None
    if k == isa.MOVSX:
        _nops(name, ops, 2)
        return _make(s0, dst=_reg(ops[0]), src=_reg(ops[1])), None
    if k == isa.ALU:
        _nops(name, ops, 2)
        d = _reg(ops[0])
        if _is_reg(ops[1]):
            return _make(_spec(name, isa.BPF_X), dst=d, src=_reg(ops[1])), None
        return _make(_spec(name, isa.BPF_K), dst=d, imm=_imm32(ops[1])), None
    if k == isa.JCOND:
        _nops(name, ops, 3)
        d = _reg(ops[0])
        n, lab = _target(ops[2])
        if n is not None and not -(1 << 15) <= n < (1 << 15):
            raise AsmError(f"jump offset {n} does not fit in 16 bits")
        if _is_reg(ops[1]):
            ins = _make(_spec(name, isa.BPF_X), dst=d, src=_reg(ops[1]), off=n or 0)
        else:
            ins = _make(_spec(name, isa.BPF_K), dst=d, imm=_imm32(ops[1]), off=n or 0)
        return ins, ((lab, "off") if lab else None)
    if k in (isa.LDX, isa.LDXSX):
        _nops(name, ops, 2)
        d = _reg(ops[0])
        r, off = _mem(ops[1])
        return _make(s0, dst=d, src=r, off=off), None
    if k == isa.ST:
        _nops(name, ops, 2)
        r, off = _mem(ops[0])
        return _make(s0, dst=r, off=off, imm=_imm32(ops[1])), None
    if k == isa.STX:
        _nops(name, ops, 2)
        r, off = _mem(ops[0])
        return _make(s0, dst=r, src=_reg(ops[1]), off=off), None
    if k == isa.LDABS:
        _nops(name, ops, 1)
        return _make(s0, imm=_imm32(ops[0])), None
    if k == isa.LDIND:
        _nops(name, ops, 2)
        return _make(s0, src=_reg(ops[0]), imm=_imm32(ops[1])), None
    raise AsmError(f"unknown mnemonic '{name}'")


def _parse_lock(rest: str) -> Insn:
    toks = rest.split(None, 1)
    if not toks:
        raise AsmError("invalid number of operands for lock")
    fetch = ""
    if toks[0] == "fetch":
        fetch = "fetch "
        toks = toks[1].split(None, 1) if len(toks) > 1 else []
        if not toks:
            raise AsmError("invalid number of operands for lock")
    name = f"lock {fetch}{toks[0]}"
    specs = isa.BY_NAME.get(name)
    if not specs:
        raise AsmError(f"unknown atomic operation '{name}'")
    ops = _split_operands(toks[1] if len(toks) > 1 else "")
    if len(ops) != 2:
        raise AsmError("invalid number of operands for lock")
    r, off = _mem(ops[0])
    return _make(specs[0], dst=r, src=_reg(ops[1]), off=off)


def _is_conformance(mnem: str, rest: str) -> bool:
    r = rest.strip()
    if "=" in rest:
        return False
    if mnem == "lock":
        return not r.startswith("*")
    if mnem == "call":
        return r.startswith(("local ", "%")) or bool(re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|[0-9]+)", r))
    if mnem in ("exit", "ja", "ja32"):
        return True
    return mnem in isa.BY_NAME and mnem != "callx"


def _looks_llvm(line: str) -> bool:
    return bool(re.match(r"^(r[0-9]+|w[0-9]+|if\b|\*\(|lock\s+\*|goto\b|gotol\b|callx\b|"
                         r"call\s+[A-Za-z_]|may_goto)", line)) or "=" in line


def assemble_insns(text: str, file: str | None = None, line0: int = 0) -> list[Insn]:
    insns: list[Insn] = []
    labels: dict[str, int] = {}
    refs: list[_Ref] = []
    slot = 0                       # slot index (lddw takes two)
    slot_of: list[int] = []        # slot index of each instruction
    first_exit: int | None = None
    for n, raw_line in enumerate(text.splitlines(), 1):
        lineno = line0 + n
        line = raw_line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        try:
            while True:
                m = _LABEL.match(line)
                if not m or line.startswith("lock"):
                    break
                lab = m.group(1)
                if lab in labels:
                    raise AsmError(f"label '{lab}' defined twice")
                labels[lab] = slot
                line = m.group(2).strip()
            if not line:
                continue
            if line.startswith("--"):
                raise AsmError(f"unexpected directive '{line}'")
            parts = line.split(None, 1)
            mnem, rest = parts[0], (parts[1] if len(parts) > 1 else "")
            ref = None
            if _is_conformance(mnem, rest):
                if mnem == "lock":
                    ins = _parse_lock(rest)
                else:
                    ins, ref = _parse_conformance(mnem, rest)
            elif _looks_llvm(line):
                from bpfpga.compiler.llvm_syntax import parse_llvm
                ins, lab = parse_llvm(line)
                if lab is not None:
                    fld = "imm" if (ins.spec and ins.spec.kind == isa.CALL) or \
                        ins.opcode == isa.BPF_JMP32 | isa.BPF_JA else "off"
                    ref = (lab, fld)
            else:
                raise AsmError(f"unknown mnemonic '{mnem}'")
        except AsmError as e:
            raise AsmError(e.reason, line=lineno, file=file) from None
        if ref:
            refs.append(_Ref(len(insns), ref[0], ref[1], lineno))
        if ins.spec is not None and ins.spec.kind == isa.EXIT and first_exit is None:
            first_exit = slot
        insns.append(ins)
        slot_of.append(slot)
        slot += ins.slots
    if first_exit is not None:
        labels.setdefault("exit", first_exit)
    for r in refs:
        if r.label not in labels:
            raise AsmError(f"undefined label '{r.label}'", line=r.line, file=file)
        delta = labels[r.label] - slot_of[r.idx] - 1
        ins = insns[r.idx]
        if r.field == "off":
            if not -(1 << 15) <= delta < (1 << 15):
                raise AsmError(f"jump to '{r.label}' is out of range", line=r.line, file=file)
            ins.off = delta
        else:
            ins.imm = delta
    if not insns:
        raise AsmError("no instructions", file=file)
    return insns


def assemble(text: str, file: str | None = None, line0: int = 0) -> bytes:
    """Assemble text into little-endian instruction bytes."""
    return isa.encode(assemble_insns(text, file, line0))
