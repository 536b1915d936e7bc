"""The LLVM/kernel assembler syntax, one instruction at a time: the inverse of
:func:`bpfpga.compiler.disasm.format_insn`.

Accepts everything the disassembler prints (and what llvm-objdump prints, a trailing
``<target>`` annotation included) plus what people write by hand: labels as branch and call
targets (``if r1 s> r2 goto LABEL``, ``call LABEL`` for a local call), no spaces inside memory
operands (``*(u32*)(r10-4) = r1``), ``w`` registers in 32-bit loads, stores and atomics
(LLVM's alu32 spelling). The opcode always comes from the instruction table
(:data:`bpfpga.isa.SPECS`), looked up by kind, class, operation and size.

Immediates: a 32-bit field takes -2**31 .. 2**32-1 (2**31 and above stand for the negative
values, as ``0xffffffff`` for -1); lddw takes -2**63 .. 2**64-1; offsets -32768 .. 32767.
Errors are :class:`bpfpga.errors.AsmError` with the problem named; the caller adds the line.
"""
from __future__ import annotations

import functools
import re

from bpfpga import isa
from bpfpga.errors import AsmError
from bpfpga.isa import Insn

from .asm import parse_int as _int

_IDENT_RE = re.compile(r"^[A-Za-z_.$][\w.$]*$")
_NUM_RE = re.compile(r"^[+-]?\s*(?:0[xX][0-9a-fA-F]+|[0-9]+)$")
_REG_RE = re.compile(r"^([rw])([0-9]+)$")

_ALU_BY_SYM = {sym: op for op, sym in isa.ALU_SYMBOL.items()}
_JMP_BY_SYM = {sym: op for op, sym in isa.JMP_SYMBOL.items()}
_ATOMIC_BY_SYM = {sym: op for op, sym in isa.ATOMIC_SYMBOL.items()}
_ATOMIC_BY_NAME = {name: op for op, name in isa.ATOMIC_FETCH_NAME.items()}
_SIZE_BY_CTYPE = {ct: size for size, ct in isa.SIZE_CTYPE.items()}          # "u32" -> BPF_W
_SIZE_BY_BITS = {8 * n: size for size, n in isa.SIZE_BYTES.items()}         # 32 -> BPF_W

_CTYPE = r"\*\(\s*([us])([0-9]+)\s*\*\s*\)"
_ASSIGN = re.compile(r"^(\S+?)\s*(s>>=|s/=|s%=|<<=|>>=|[-+*/|&^%]=|=)\s*(.*)$")
_IF = re.compile(r"^if\s+(\S+)\s*(s<=|s>=|s<|s>|<=|>=|==|!=|<|>|&)\s*(\S+)\s+goto\s+(\S+)$")
_LOCK = re.compile(rf"^lock\s+{_CTYPE}\s*\((.*)\)\s*([-+|&^]=)\s*(\S+)$")
_STORE = re.compile(rf"^{_CTYPE}\s*\((.*)\)\s*=\s*(\S+)$")
_LOAD = re.compile(rf"^{_CTYPE}\s*\((.*)\)$")
_SKB = re.compile(rf"^{_CTYPE}\s*skb\s*\[(.*)\]$")
_FETCH = re.compile(rf"^atomic_fetch_(\w+)\s*\(\s*\(\s*([us])([0-9]+)\s*\*\s*\)\s*\((.*)\)\s*,"
                    r"\s*(\S+)\s*\)$")
_XCHG = re.compile(r"^xchg(32_32|_64)\s*\((.*),\s*(\S+)\s*\)$")
_CMPXCHG = re.compile(r"^cmpxchg(32_32|_64)\s*\((.*),\s*(\S+)\s*,\s*(\S+)\s*\)$")
_MOVSX = re.compile(r"^\(\s*s([0-9]+)\s*\)\s*(\S+)$")
_END = re.compile(r"^(be|le|bswap)([0-9]+)\s+(\S+)$")
_MEMOP = re.compile(r"^(\w+)\s*(?:([+-])\s*([+-]?\s*\w+))?$")


# --- tokens --------------------------------------------------------------------------------------
def _imm32(tok: str, what: str = "immediate") -> int:
    v = _int(tok, what)
    if not -(1 << 31) <= v <= (1 << 32) - 1:
        raise AsmError(f"{what} {tok} does not fit in 32 bits")
    return isa.s32(v)


def _imm64(tok: str) -> int:
    v = _int(tok, "immediate")
    if not -(1 << 63) <= v <= (1 << 64) - 1:
        raise AsmError(f"immediate {tok} does not fit in 64 bits")
    return isa.s64(v)


def _off16(tok: str, what: str = "offset") -> int:
    v = _int(tok, what)
    if not -(1 << 15) <= v < (1 << 15):
        raise AsmError(f"{what} {tok} is out of range (-32768..32767)")
    return v


def _reg(tok: str, allowed: str = "rw") -> tuple[str, int]:
    """(prefix, number) of a register token; allowed: the prefixes this operand takes."""
    m = _REG_RE.match(tok.strip())
    if not m:
        raise AsmError(f"invalid register '{tok.strip()}'")
    n = int(m.group(2))
    if n > 10 or m.group(2) != str(n):
        raise AsmError(f"invalid register '{tok.strip()}' (r0..r10)")
    if m.group(1) not in allowed:
        raise AsmError(f"register '{tok.strip()}' must be {allowed[0]}{n} here")
    return m.group(1), n


def _is_reg(tok: str) -> bool:
    return bool(_REG_RE.match(tok.strip()))


def _same_width(p: str, tok: str, ctx: str) -> int:
    q, n = _reg(tok)
    if q != p:
        raise AsmError(f"mixed 32-bit and 64-bit registers in '{ctx}'")
    return n


def _mem(text: str) -> tuple[int, int]:
    """'r10 - 4' -> (10, -4)."""
    m = _MEMOP.match(text.strip())
    if not m:
        raise AsmError(f"invalid memory operand '({text.strip()})'")
    _, r = _reg(m.group(1), "r")
    off = 0
    if m.group(2):
        off = _int(m.group(3), "offset")
        off = -off if m.group(2) == "-" else off
        if not -(1 << 15) <= off < (1 << 15):
            raise AsmError(f"offset {m.group(2)}{m.group(3)} is out of range (-32768..32767)")
    return r, off


def _target(tok: str) -> tuple[int | None, str | None]:
    """A branch target: a signed number or a label."""
    t = tok.strip()
    if _NUM_RE.match(t):
        return _int(t, "target"), None
    if _IDENT_RE.match(t):
        return None, t
    raise AsmError(f"invalid branch target '{t}'")


def _size(sign: str, bits: str, ctx: str, signed_ok: bool = False) -> int:
    size = _SIZE_BY_BITS.get(int(bits)) if bits.isdigit() else None
    if size is None or (sign == "s" and not signed_ok):
        raise AsmError(f"invalid access size '{sign}{bits}' in '{ctx}'")
    return size


# --- the table -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _find(kind: str, **want) -> tuple[isa.InsnSpec, ...]:
    return tuple(s for s in isa.SPECS if s.kind == kind
                 and all(getattr(s, k) == v for k, v in want.items()))


def _one(specs, what: str) -> isa.InsnSpec:
    if not specs:
        raise AsmError(f"no such instruction: {what}")
    return specs[0]


def _make(spec: isa.InsnSpec, dst=0, src=0, off=0, imm=0) -> Insn:
    ins = isa.make(spec, dst, src, off, imm)
    bad = spec.field_ok(ins.dst, ins.src, ins.off, ins.imm if spec.kind != isa.LDDW else 0)
    if bad:
        raise AsmError(f"invalid {bad} for {spec.name}")
    return ins


# --- the parser ----------------------------------------------------------------------------------
def parse_llvm(text: str) -> tuple[Insn, str | None]:
    """One instruction in LLVM syntax -> (Insn, label or None).

    A label is returned when a branch or call names one instead of a number; the field it goes
    into is left 0 for the caller: ``off`` of a jump (target - pc - 1), ``imm`` of a local
    call (src 1) or of ``gotol``.
    """
    line = re.split(r"[;#]", text, maxsplit=1)[0].strip()
    line = re.sub(r"\s+<[^<>]*>$", "", line)          # llvm-objdump's target annotation
    line = " ".join(line.split())
    if not line:
        raise AsmError("empty instruction")
    head = line.split(" ", 1)[0]
    rest = line[len(head):].strip()
    if head == "exit":
        if rest:
            raise AsmError(f"unexpected operand after exit: '{rest}'")
        return _make(_one(_find(isa.EXIT), "exit")), None
    if head == "call":
        return _call(rest)
    if head == "callx":
        _, r = _reg(rest, "r")
        return _make(_one(_find(isa.CALLX), "callx"), dst=r), None
    if head in ("goto", "gotol"):
        cls = isa.BPF_JMP if head == "goto" else isa.BPF_JMP32
        spec = _one(_find(isa.JA, cls=cls), head)
        v, label = _target(rest)
        if v is None:
            return _make(spec), label
        if head == "goto":
            return _make(spec, off=_off16(rest, "jump offset")), None
        return _make(spec, imm=_imm32(rest, "jump offset")), None
    if head == "if":
        return _if(line)
    if head == "lock":
        return _lock(line), None
    if head == "ld_pseudo":
        parts = [p.strip() for p in rest.split(",")]
        if len(parts) != 3:
            raise AsmError(f"ld_pseudo takes a register, a source and an immediate: '{line}'")
        _, d = _reg(parts[0], "r")
        src = _int(parts[1], "pseudo source")
        return _make(_one(_find(isa.LDDW), "lddw"), dst=d, src=src,
                     imm=_imm64(parts[2])), None
    if line.startswith("*"):
        return _store(line), None
    m = _ASSIGN.match(line)
    if m and _REG_RE.match(m.group(1)):
        return _assign(line, m.group(1), m.group(2), m.group(3).strip()), None
    if m:
        _reg(m.group(1))       # names the bad register
    raise AsmError(f"unknown instruction '{line}'")


def _call(rest: str) -> tuple[Insn, str | None]:
    spec = _one(_find(isa.CALL), "call")
    if not rest:
        raise AsmError("call needs a helper number or a label")
    if _is_reg(rest):
        _, r = _reg(rest, "r")
        return _make(_one(_find(isa.CALLX), "callx"), dst=r), None
    v, label = _target(rest)
    if label is not None:
        return _make(spec, src=isa.BPF_PSEUDO_CALL), label
    return _make(spec, imm=_imm32(rest, "helper number")), None


def _if(line: str) -> tuple[Insn, str | None]:
    m = _IF.match(line)
    if not m:
        raise AsmError(f"invalid conditional jump '{line}'")
    a, sym, b, tgt = m.groups()
    p, d = _reg(a)
    cls = isa.BPF_JMP if p == "r" else isa.BPF_JMP32
    op = _JMP_BY_SYM[sym]
    if _is_reg(b) or re.match(r"^[A-Za-z]", b):
        src, imm, mode = _same_width(p, b, line), 0, isa.BPF_X
    else:
        src, imm, mode = 0, _imm32(b), isa.BPF_K
    spec = _one(_find(isa.JCOND, cls=cls, op=op, src_mode=mode), line)
    v, label = _target(tgt)
    off = 0 if label is not None else _off16(tgt, "jump offset")
    return _make(spec, dst=d, src=src, off=off, imm=imm), label


def _lock(line: str) -> Insn:
    m = _LOCK.match(line)
    if not m:
        raise AsmError(f"invalid atomic instruction '{line}'")
    sign, bits, addr, sym, val = m.groups()
    size = _size(sign, bits, line)
    d, off = _mem(addr)
    p, s = _reg(val, "r" if size == isa.BPF_DW else "rw")
    if sym not in _ATOMIC_BY_SYM:
        raise AsmError(f"invalid atomic operation '{sym}' (one of "
                       + ", ".join(_ATOMIC_BY_SYM) + ")")
    return _atomic(size, _ATOMIC_BY_SYM[sym], d, s, off, line)


def _atomic(size: int, value: int, d: int, s: int, off: int, line: str) -> Insn:
    specs = _find(isa.ATOMIC, size=size, select=("imm", value))
    if not specs:
        raise AsmError(f"no such atomic instruction: '{line}'")
    return _make(specs[0], dst=d, src=s, off=off)


def _store(line: str) -> Insn:
    m = _STORE.match(line)
    if not m:
        raise AsmError(f"invalid store '{line}'")
    sign, bits, addr, val = m.groups()
    size = _size(sign, bits, line)
    d, off = _mem(addr)
    if _is_reg(val) or re.match(r"^[A-Za-z]", val):
        _, s = _reg(val)
        return _make(_one(_find(isa.STX, size=size), line), dst=d, src=s, off=off)
    return _make(_one(_find(isa.ST, size=size), line), dst=d, off=off, imm=_imm32(val))


def _assign(line: str, dtok: str, op: str, rhs: str) -> Insn:
    p, d = _reg(dtok)
    if op != "=":
        return _alu(line, p, d, op, rhs)
    m = re.match(r"^-\s*(\S+)$", rhs)
    if m and _is_reg(m.group(1)):
        if _same_width(p, m.group(1), line) != d:
            raise AsmError(f"negation must name the same register twice: '{line}'")
        cls = isa.BPF_ALU64 if p == "r" else isa.BPF_ALU
        return _make(_one(_find(isa.NEG, cls=cls), line), dst=d)
    m = _MOVSX.match(rhs)
    if m:
        bits = int(m.group(1))
        s = _same_width(p, m.group(2), line)
        cls = isa.BPF_ALU64 if p == "r" else isa.BPF_ALU
        specs = _find(isa.MOVSX, cls=cls, size=bits)
        if not specs:
            raise AsmError(f"no sign extension from {bits} bits into a {p} register: '{line}'")
        return _make(specs[0], dst=d, src=s)
    m = _END.match(rhs)
    if m:
        name = m.group(1) + m.group(2)
        q, s = _reg(m.group(3))
        if s != d:
            raise AsmError(f"byte swap must name the same register twice: '{line}'")
        specs = [x for x in _find(isa.END) if name in (x.name,) + x.aliases]
        if not specs:
            raise AsmError(f"invalid byte swap '{m.group(1)}{m.group(2)}'")
        return _make(specs[0], dst=d)
    m = re.match(r"^(.*?)\s*ll$", rhs)
    if m:
        _reg(dtok, "r")
        return _make(_one(_find(isa.LDDW), line), dst=d, imm=_imm64(m.group(1)))
    m = _SKB.match(rhs)
    if m:
        return _skb(line, d, *m.groups())
    m = _LOAD.match(rhs)
    if m:
        sign, bits, addr = m.groups()
        size = _size(sign, bits, line, signed_ok=True)
        s, off = _mem(addr)
        if sign == "s":
            specs = _find(isa.LDXSX, size=size)
            if not specs:
                raise AsmError(f"no sign-extending load of {bits} bits: '{line}'")
            return _make(specs[0], dst=d, src=s, off=off)
        return _make(_one(_find(isa.LDX, size=size), line), dst=d, src=s, off=off)
    m = _FETCH.match(rhs)
    if m:
        name, sign, bits, addr, val = m.groups()
        size = _size(sign, bits, line)
        if name not in _ATOMIC_BY_NAME:
            raise AsmError(f"unknown atomic operation 'atomic_fetch_{name}'")
        a, off = _mem(addr)
        s = _atomic_reg(p, size, val, d, line)
        return _atomic(size, _ATOMIC_BY_NAME[name] | isa.BPF_FETCH, a, s, off, line)
    m = _XCHG.match(rhs)
    if m:
        size = isa.BPF_W if m.group(1) == "32_32" else isa.BPF_DW
        a, off = _mem(m.group(2))
        s = _atomic_reg(p, size, m.group(3), d, line)
        return _atomic(size, isa.BPF_XCHG, a, s, off, line)
    m = _CMPXCHG.match(rhs)
    if m:
        size = isa.BPF_W if m.group(1) == "32_32" else isa.BPF_DW
        a, off = _mem(m.group(2))
        if d != 0 or _atomic_reg(p, size, m.group(3), 0, line) != 0:
            raise AsmError(f"cmpxchg compares and returns r0: '{line}'")
        s = _atomic_reg(p, size, m.group(4), None, line)
        return _atomic(size, isa.BPF_CMPXCHG, a, s, off, line)
    # plain move
    cls = isa.BPF_ALU64 if p == "r" else isa.BPF_ALU
    if _is_reg(rhs) or re.match(r"^[A-Za-z]", rhs):
        s = _same_width(p, rhs, line)
        spec = _alu_spec(cls, isa.BPF_MOV, isa.BPF_X, False, line)
        return _make(spec, dst=d, src=s)
    if _NUM_RE.match(rhs):
        spec = _alu_spec(cls, isa.BPF_MOV, isa.BPF_K, False, line)
        return _make(spec, dst=d, imm=_imm32(rhs))
    raise AsmError(f"unknown instruction '{line}'")


def _atomic_reg(p: str, size: int, tok: str, must: int | None, line: str) -> int:
    allowed = "r" if size == isa.BPF_DW else "rw"
    if p not in allowed:
        raise AsmError(f"64-bit atomic needs r registers: '{line}'")
    q, n = _reg(tok, allowed)
    if q != p:
        raise AsmError(f"mixed 32-bit and 64-bit registers in '{line}'")
    if must is not None and n != must:
        raise AsmError(f"atomic result and operand must be the same register: '{line}'")
    return n


def _skb(line: str, d: int, sign: str, bits: str, inner: str) -> Insn:
    if d != 0:
        raise AsmError(f"packet loads write r0: '{line}'")
    size = _size(sign, bits, line)
    m = re.match(r"^\s*(r[0-9]+|w[0-9]+)\s*(?:([+-])\s*(\S+))?\s*$", inner)
    if m:
        _, s = _reg(m.group(1), "r")
        imm = 0
        if m.group(2):
            imm = _imm32(("-" if m.group(2) == "-" else "") + m.group(3))
        return _make(_one(_find(isa.LDIND, size=size), line), src=s, imm=imm)
    return _make(_one(_find(isa.LDABS, size=size), line), imm=_imm32(inner.strip()))


def _alu_spec(cls: int, op: int, mode: int, signed: bool, line: str) -> isa.InsnSpec:
    specs = [s for s in _find(isa.ALU, cls=cls, op=op, src_mode=mode)
             if (s.select == ("off", 1)) == signed]
    if not specs:
        raise AsmError(f"no such instruction: '{line}'")
    return specs[0]


def _alu(line: str, p: str, d: int, op: str, rhs: str) -> Insn:
    signed = op in ("s/=", "s%=")
    sym = op[1:] if signed else op
    if sym not in _ALU_BY_SYM:
        raise AsmError(f"unknown operator '{op}'")
    cls = isa.BPF_ALU64 if p == "r" else isa.BPF_ALU
    if _is_reg(rhs) or re.match(r"^[A-Za-z]", rhs):
        s = _same_width(p, rhs, line)
        return _make(_alu_spec(cls, _ALU_BY_SYM[sym], isa.BPF_X, signed, line), dst=d, src=s)
    return _make(_alu_spec(cls, _ALU_BY_SYM[sym], isa.BPF_K, signed, line), dst=d,
                 imm=_imm32(rhs))
