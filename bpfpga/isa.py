"""The eBPF instruction set: the one table everything else derives from.

RFC 9669 (BPF Instruction Set Architecture) with the v4 additions (sdiv/smod, movsx, ldsx,
bswap, gotol) and callx. The assembler, the disassembler, the reference machine and the HDL
decoder all read :data:`SPECS` instead of spelling opcodes out again, so a mistake here shows
everywhere at once (and is fixed everywhere at once).

Encoding of one 64-bit slot (little-endian in memory)::

    bits  0..7   opcode   = class (3 bits) | source/size (1-2 bits) | operation/mode (3-4 bits)
    bits  8..11  dst_reg
    bits 12..15  src_reg
    bits 16..31  offset (signed 16)
    bits 32..63  imm    (signed 32)

``lddw`` (BPF_LD | BPF_IMM | BPF_DW) takes two slots; the second carries the upper 32 bits of
the immediate in its imm field and zeros everywhere else.
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

# --- instruction classes -------------------------------------------------------------------
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_JMP32, BPF_ALU64 = range(8)
CLASS_NAMES = {BPF_LD: "BPF_LD", BPF_LDX: "BPF_LDX", BPF_ST: "BPF_ST", BPF_STX: "BPF_STX",
               BPF_ALU: "BPF_ALU", BPF_JMP: "BPF_JMP", BPF_JMP32: "BPF_JMP32",
               BPF_ALU64: "BPF_ALU64"}

# --- source (ALU/JMP) ------------------------------------------------------------------------
BPF_K = 0x00
BPF_X = 0x08
BPF_TO_LE = 0x00
BPF_TO_BE = 0x08

# --- ALU operations (upper 4 bits) -----------------------------------------------------------
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV = 0x00, 0x10, 0x20, 0x30
BPF_OR, BPF_AND, BPF_LSH, BPF_RSH = 0x40, 0x50, 0x60, 0x70
BPF_NEG, BPF_MOD, BPF_XOR, BPF_MOV = 0x80, 0x90, 0xA0, 0xB0
BPF_ARSH, BPF_END = 0xC0, 0xD0

# --- JMP operations ----------------------------------------------------------------------------
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE = 0x00, 0x10, 0x20, 0x30
BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE = 0x40, 0x50, 0x60, 0x70
BPF_CALL, BPF_EXIT, BPF_JLT, BPF_JLE = 0x80, 0x90, 0xA0, 0xB0
BPF_JSLT, BPF_JSLE = 0xC0, 0xD0

# --- load/store sizes and modes ------------------------------------------------------------------
BPF_W, BPF_H, BPF_B, BPF_DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {BPF_W: 4, BPF_H: 2, BPF_B: 1, BPF_DW: 8}
SIZE_SUFFIX = {BPF_W: "w", BPF_H: "h", BPF_B: "b", BPF_DW: "dw"}
SIZE_CTYPE = {BPF_W: "u32", BPF_H: "u16", BPF_B: "u8", BPF_DW: "u64"}
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM = 0x00, 0x20, 0x40, 0x60
BPF_MEMSX, BPF_ATOMIC = 0x80, 0xC0

# --- atomic operations (in imm) -------------------------------------------------------------------
BPF_FETCH = 0x01
BPF_XCHG = 0xE0 | BPF_FETCH
BPF_CMPXCHG = 0xF0 | BPF_FETCH

# --- src_reg values with special meaning ----------------------------------------------------------
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_MAP_IDX = 5
BPF_PSEUDO_MAP_IDX_VALUE = 6
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_KFUNC_CALL = 2

# --- XDP verdicts ---------------------------------------------------------------------------------
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
XDP_VERDICTS = {XDP_ABORTED: "XDP_ABORTED", XDP_DROP: "XDP_DROP", XDP_PASS: "XDP_PASS",
                XDP_TX: "XDP_TX", XDP_REDIRECT: "XDP_REDIRECT"}

ALU_OPS = {  # name -> op code, in the assembler's spelling
    "add": BPF_ADD, "sub": BPF_SUB, "mul": BPF_MUL, "div": BPF_DIV, "or": BPF_OR,
    "and": BPF_AND, "lsh": BPF_LSH, "rsh": BPF_RSH, "neg": BPF_NEG, "mod": BPF_MOD,
    "xor": BPF_XOR, "mov": BPF_MOV, "arsh": BPF_ARSH,
}
# the operator LLVM prints for each ALU op ("r0 += r1")
ALU_SYMBOL = {
    BPF_ADD: "+=", BPF_SUB: "-=", BPF_MUL: "*=", BPF_DIV: "/=", BPF_OR: "|=", BPF_AND: "&=",
    BPF_LSH: "<<=", BPF_RSH: ">>=", BPF_MOD: "%=", BPF_XOR: "^=", BPF_MOV: "=",
    BPF_ARSH: "s>>=",
}
JMP_OPS = {
    "jeq": BPF_JEQ, "jgt": BPF_JGT, "jge": BPF_JGE, "jset": BPF_JSET, "jne": BPF_JNE,
    "jsgt": BPF_JSGT, "jsge": BPF_JSGE, "jlt": BPF_JLT, "jle": BPF_JLE, "jslt": BPF_JSLT,
    "jsle": BPF_JSLE,
}
JMP_SYMBOL = {
    BPF_JEQ: "==", BPF_JGT: ">", BPF_JGE: ">=", BPF_JSET: "&", BPF_JNE: "!=",
    BPF_JSGT: "s>", BPF_JSGE: "s>=", BPF_JLT: "<", BPF_JLE: "<=", BPF_JSLT: "s<",
    BPF_JSLE: "s<=",
}
ATOMIC_OPS = {"add": BPF_ADD, "or": BPF_OR, "and": BPF_AND, "xor": BPF_XOR}
ATOMIC_SYMBOL = {BPF_ADD: "+=", BPF_OR: "|=", BPF_AND: "&=", BPF_XOR: "^="}
ATOMIC_FETCH_NAME = {BPF_ADD: "add", BPF_OR: "or", BPF_AND: "and", BPF_XOR: "xor"}

# kinds of instruction: how the operands are used (drives every consumer)
ALU = "alu"            # dst op= src/imm
NEG = "neg"            # dst = -dst
MOVSX = "movsx"        # dst = (sN) src
END = "end"            # byte swap: le/be (ALU) or bswap (ALU64)
LDDW = "lddw"          # dst = imm64 (two slots)
LDABS = "ldabs"        # r0 = ntoh(*(packet + imm))
LDIND = "ldind"        # r0 = ntoh(*(packet + src + imm))
LDX = "ldx"            # dst = *(size *)(src + off)
LDXSX = "ldxsx"        # dst = *(sN *)(src + off)
ST = "st"              # *(size *)(dst + off) = imm
STX = "stx"            # *(size *)(dst + off) = src
ATOMIC = "atomic"      # lock *(size *)(dst + off) op= src, fetch variants, xchg, cmpxchg
JA = "ja"              # pc += off  (JMP) / pc += imm (JMP32, gotol)
JCOND = "jcond"        # if dst op src/imm goto pc + off
CALL = "call"          # helper (src 0), local (src 1), kfunc (src 2)
CALLX = "callx"        # call the helper whose id is in dst
EXIT = "exit"

# field constraints: REG (any register 0..10), OFF/IMM (free), or a frozenset of allowed values
REG = "reg"
FREE = "free"


@dataclass(frozen=True)
class InsnSpec:
    """One instruction form: an opcode plus the field values that select it."""
    name: str            # assembler mnemonic in the conformance suite's syntax
    opcode: int
    kind: str
    cls: int
    op: int = 0          # ALU/JMP operation, or mode for memory classes
    src_mode: int = 0    # BPF_K / BPF_X for ALU/JMP
    size: int = 0        # BPF_W/H/B/DW for memory, 8/16/32 for movsx/ldsx, 16/32/64 for END
    dst: object = REG
    src: object = 0
    off: object = 0
    imm: object = 0
    group: str = "base32"      # conformance group
    version: int = 1           # minimum cpu version (v1..v4)
    # the value that selects this spec among those sharing the opcode: ("off"|"imm"|"src", v)
    select: tuple | None = None
    aliases: tuple = ()

    @property
    def is64(self) -> bool:
        return self.cls in (BPF_ALU64, BPF_JMP)

    @property
    def operands(self) -> "Operands":
        """The registers this form reads and writes (see :class:`Operands`)."""
        return _operands(self)

    @property
    def width(self) -> int:
        """Operand width in bits for ALU/JMP classes."""
        return 64 if self.cls in (BPF_ALU64, BPF_JMP) else 32

    def field_ok(self, dst: int, src: int, off: int, imm: int) -> str | None:
        """None when the field values are legal for this form, else the name of the bad field."""
        for fname, rule, val in (("dst", self.dst, dst), ("src", self.src, src),
                                 ("offset", self.off, off), ("imm", self.imm, imm)):
            if rule == REG:
                if not 0 <= val <= 10:
                    return fname
            elif rule == FREE:
                continue
            elif isinstance(rule, frozenset):
                if val not in rule:
                    return fname
            elif val != rule:
                return fname
        return None


def _build() -> list[InsnSpec]:
    specs: list[InsnSpec] = []
    add = specs.append
    # ALU and ALU64
    for cls, sfx, g in ((BPF_ALU, "32", "base32"), (BPF_ALU64, "", "base64")):
        dm = "divmul32" if cls == BPF_ALU else "divmul64"
        for name, op in ALU_OPS.items():
            grp = dm if op in (BPF_MUL, BPF_DIV, BPF_MOD) else g
            if op == BPF_NEG:
                add(InsnSpec(name + sfx, cls | op, NEG, cls, op, BPF_K, group=grp))
                continue
            sel = ("off", 0) if op in (BPF_DIV, BPF_MOD, BPF_MOV) else None
            add(InsnSpec(name + sfx, cls | op | BPF_K, ALU, cls, op, BPF_K, imm=FREE,
                         group=grp, select=sel))
            add(InsnSpec(name + sfx, cls | op | BPF_X, ALU, cls, op, BPF_X, src=REG,
                         group=grp, select=sel))
            if op in (BPF_DIV, BPF_MOD):
                sname = "s" + name + sfx
                add(InsnSpec(sname, cls | op | BPF_K, ALU, cls, op, BPF_K, imm=FREE, off=1,
                             group=grp, version=4, select=("off", 1)))
                add(InsnSpec(sname, cls | op | BPF_X, ALU, cls, op, BPF_X, src=REG, off=1,
                             group=grp, version=4, select=("off", 1)))
        # movsx: sign-extend the low 8/16/32 bits of src; named movsx<from><to>
        for bits in ((8, 16) if cls == BPF_ALU else (8, 16, 32)):
            to = 32 if cls == BPF_ALU else 64
            add(InsnSpec(f"movsx{bits}{to}", cls | BPF_MOV | BPF_X, MOVSX, cls, BPF_MOV, BPF_X,
                         size=bits, src=REG, off=bits, group=g, version=4,
                         select=("off", bits)))
    # byte swaps
    for bits in (16, 32, 64):
        add(InsnSpec(f"le{bits}", BPF_ALU | BPF_END | BPF_TO_LE, END, BPF_ALU, BPF_END,
                     BPF_TO_LE, size=bits, imm=bits, select=("imm", bits)))
        add(InsnSpec(f"be{bits}", BPF_ALU | BPF_END | BPF_TO_BE, END, BPF_ALU, BPF_END,
                     BPF_TO_BE, size=bits, imm=bits, select=("imm", bits)))
        add(InsnSpec(f"bswap{bits}", BPF_ALU64 | BPF_END, END, BPF_ALU64, BPF_END, BPF_K,
                     size=bits, imm=bits, group="base64", version=4, select=("imm", bits),
                     aliases=(f"swap{bits}",)))
    # loads and stores
    for size, sfx in SIZE_SUFFIX.items():
        g = "base64" if size == BPF_DW else "base32"
        add(InsnSpec("ldx" + sfx, BPF_LDX | BPF_MEM | size, LDX, BPF_LDX, BPF_MEM, size=size,
                     src=REG, off=FREE, group=g))
        add(InsnSpec("st" + sfx, BPF_ST | BPF_MEM | size, ST, BPF_ST, BPF_MEM, size=size,
                     off=FREE, imm=FREE, group=g))
        add(InsnSpec("stx" + sfx, BPF_STX | BPF_MEM | size, STX, BPF_STX, BPF_MEM, size=size,
                     src=REG, off=FREE, group=g))
        if size != BPF_DW:
            add(InsnSpec("ldxs" + sfx, BPF_LDX | BPF_MEMSX | size, LDXSX, BPF_LDX, BPF_MEMSX,
                         size=size, src=REG, off=FREE, group=g, version=4))
            add(InsnSpec("ldabs" + sfx, BPF_LD | BPF_ABS | size, LDABS, BPF_LD, BPF_ABS,
                         size=size, dst=0, imm=FREE, group="packet"))
            add(InsnSpec("ldind" + sfx, BPF_LD | BPF_IND | size, LDIND, BPF_LD, BPF_IND,
                         size=size, dst=0, src=REG, imm=FREE, group="packet"))
    add(InsnSpec("lddw", BPF_LD | BPF_IMM | BPF_DW, LDDW, BPF_LD, BPF_IMM, size=BPF_DW,
                 src=frozenset(range(7)), imm=FREE, group="base64"))
    # atomics: imm selects the operation
    for size, sfx, g in ((BPF_W, "32", "atomic32"), (BPF_DW, "", "atomic64")):
        opc = BPF_STX | BPF_ATOMIC | size
        for name, op in ATOMIC_OPS.items():
            add(InsnSpec(f"lock {name}{sfx}", opc, ATOMIC, BPF_STX, BPF_ATOMIC, size=size,
                         src=REG, off=FREE, imm=op, group=g, version=3, select=("imm", op)))
            add(InsnSpec(f"lock fetch {name}{sfx}", opc, ATOMIC, BPF_STX, BPF_ATOMIC, size=size,
                         src=REG, off=FREE, imm=op | BPF_FETCH, group=g, version=3,
                         select=("imm", op | BPF_FETCH)))
        add(InsnSpec(f"lock xchg{sfx}", opc, ATOMIC, BPF_STX, BPF_ATOMIC, size=size, src=REG,
                     off=FREE, imm=BPF_XCHG, group=g, version=3, select=("imm", BPF_XCHG)))
        add(InsnSpec(f"lock cmpxchg{sfx}", opc, ATOMIC, BPF_STX, BPF_ATOMIC, size=size,
                     src=REG, off=FREE, imm=BPF_CMPXCHG, group=g, version=3,
                     select=("imm", BPF_CMPXCHG)))
    # jumps
    add(InsnSpec("ja", BPF_JMP | BPF_JA, JA, BPF_JMP, BPF_JA, dst=0, off=FREE))
    add(InsnSpec("ja32", BPF_JMP32 | BPF_JA, JA, BPF_JMP32, BPF_JA, dst=0, imm=FREE,
                 version=4))
    for cls, sfx in ((BPF_JMP, ""), (BPF_JMP32, "32")):
        for name, op in JMP_OPS.items():
            v = 2 if op in (BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE) else 1
            if cls == BPF_JMP32:
                v = 3
            add(InsnSpec(name + sfx, cls | op | BPF_K, JCOND, cls, op, BPF_K, off=FREE,
                         imm=FREE, version=v))
            add(InsnSpec(name + sfx, cls | op | BPF_X, JCOND, cls, op, BPF_X, src=REG,
                         off=FREE, version=v))
    add(InsnSpec("call", BPF_JMP | BPF_CALL, CALL, BPF_JMP, BPF_CALL, dst=0,
                 src=frozenset({0, BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL}), imm=FREE))
    add(InsnSpec("callx", BPF_JMP | BPF_CALL | BPF_X, CALLX, BPF_JMP, BPF_CALL, BPF_X,
                 group="callx"))
    add(InsnSpec("exit", BPF_JMP | BPF_EXIT, EXIT, BPF_JMP, BPF_EXIT, dst=0))
    return specs


SPECS: list[InsnSpec] = _build()

# opcode -> list of specs sharing it (several when off/imm selects among them)
BY_OPCODE: dict[int, list[InsnSpec]] = {}
for _s in SPECS:
    BY_OPCODE.setdefault(_s.opcode, []).append(_s)

# mnemonic -> specs (a mnemonic has a K and an X form for ALU/JMP)
BY_NAME: dict[str, list[InsnSpec]] = {}
for _s in SPECS:
    for _n in (_s.name,) + _s.aliases:
        BY_NAME.setdefault(_n, []).append(_s)


def lookup(opcode: int, src: int = 0, off: int = 0, imm: int = 0) -> InsnSpec | None:
    """The spec of an instruction, or None when the opcode (with its selector) is unknown."""
    cands = BY_OPCODE.get(opcode)
    if not cands:
        return None
    if len(cands) == 1:
        return cands[0]
    for s in cands:
        if s.select is None:
            return s
        f, v = s.select
        if (off if f == "off" else imm if f == "imm" else src) == v:
            return s
    return None


# --- operand facts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operands:
    """Which registers an instruction form reads and writes, as fields of the instruction:
    "dst", "src", or "r0" (a fixed r0). The one definition for the static checks
    (compiler/check.py), the reference machine's r10 rule (sim/ref.py), and the HDL decoder's
    and the CPU's (hdl/decode.py, hdl/cpu/core.py). A call's clobbers (r1..r5, r0) are the
    calling convention's, not listed here."""
    reads: frozenset
    writes: frozenset
    base: str | None = None     # the base register of a memory access
    imm: bool = False           # the second operand is the immediate (K forms, st)
    no_r10: str | None = None   # the field that traps TRAP_R10_WRITE when it names r10


@functools.cache
def _operands(s: InsnSpec) -> Operands:
    k, x = s.kind, s.src_mode == BPF_X
    srcx = {"src"} if x else set()
    f = frozenset
    if k == ALU:
        reads = srcx if s.op == BPF_MOV else {"dst"} | srcx
        return Operands(f(reads), f({"dst"}), imm=not x, no_r10="dst")
    if k in (NEG, END):
        return Operands(f({"dst"}), f({"dst"}), no_r10="dst")
    if k == MOVSX:
        return Operands(f({"src"}), f({"dst"}), no_r10="dst")
    if k == LDDW:
        return Operands(f(), f({"dst"}), no_r10="dst")
    if k in (LDX, LDXSX):
        return Operands(f({"src"}), f({"dst"}), base="src", no_r10="dst")
    if k == ST:
        return Operands(f({"dst"}), f(), base="dst", imm=True)
    if k == STX:
        return Operands(f({"dst", "src"}), f(), base="dst")
    if k == ATOMIC:
        fetch = isinstance(s.imm, int) and bool(s.imm & BPF_FETCH)
        if s.imm == BPF_CMPXCHG:
            ops = Operands(f({"dst", "src", "r0"}), f({"r0"}), base="dst")
        else:
            ops = Operands(f({"dst", "src"}), f({"src"} if fetch else set()), base="dst")
        # a fetch atomic with src r10 traps, cmpxchg too (its old value goes to r0)
        return Operands(ops.reads, ops.writes, ops.base, no_r10="src" if fetch else None)
    if k == JCOND:
        return Operands(f({"dst"}) | srcx, f(), imm=not x)
    if k == CALLX:
        return Operands(f({"dst"}), f())
    if k == EXIT:
        return Operands(f({"r0"}), f())
    if k == LDABS:
        return Operands(f(), f({"r0"}))
    if k == LDIND:
        return Operands(f({"src"}), f({"r0"}), base="src")
    return Operands(f(), f())       # JA, CALL




# --- encoding ------------------------------------------------------------------------------------
@dataclass
class Insn:
    """One decoded slot (lddw keeps its full 64-bit immediate in imm and occupies two slots)."""
    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    spec: InsnSpec | None = field(default=None, compare=False, repr=False)

    @property
    def slots(self) -> int:
        return 2 if self.opcode == BPF_LD | BPF_IMM | BPF_DW else 1

    def encode(self) -> bytes:
        regs = (self.dst & 0xF) | ((self.src & 0xF) << 4)
        if self.slots == 2:
            v = self.imm & 0xFFFFFFFFFFFFFFFF
            return (struct.pack("<BBhI", self.opcode, regs, self.off, v & 0xFFFFFFFF)
                    + struct.pack("<BBhI", 0, 0, 0, v >> 32))
        return struct.pack("<BBhI", self.opcode, regs, self.off, self.imm & 0xFFFFFFFF)


def make(spec: InsnSpec, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Insn:
    """An instruction of this form, with its selector and fixed field values put in place
    (sdiv's offset 1, movsx's offset 8/16/32, a byte swap's width, an atomic's operation)."""
    if spec.select:
        f, v = spec.select
        if f == "off":
            off = v
        elif f == "imm":
            imm = v
        else:
            src = v
    if isinstance(spec.imm, int) and spec.imm:
        imm = spec.imm
    return Insn(spec.opcode, dst, src, off, imm, spec)


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


def sext(v: int, bits: int) -> int:
    m = (1 << bits) - 1
    v &= m
    return v - (1 << bits) if v & (1 << (bits - 1)) else v


def unpack_slot(raw: bytes, i: int) -> tuple[int, int, int, int, int]:
    """(opcode, dst, src, off, imm) of slot i, imm signed 32."""
    op, regs, off, imm = struct.unpack_from("<BBhi", raw, i * 8)
    return op, regs & 0xF, regs >> 4, off, imm


class DecodeError(ValueError):
    def __init__(self, pc: int, message: str):
        super().__init__(f"instruction {pc}: {message}")
        self.pc = pc
        self.reason = message


def decode(raw: bytes, strict: bool = True) -> list[Insn]:
    """Decode a program into instructions (one entry per instruction; lddw counts once).

    With ``strict`` every reserved field must be zero and every opcode known, as the kernel's
    verifier requires; otherwise unknown opcodes decode with ``spec=None``.
    """
    if len(raw) % 8:
        raise DecodeError(len(raw) // 8, f"program length {len(raw)} is not a multiple of 8")
    n = len(raw) // 8
    out: list[Insn] = []
    pc = 0
    while pc < n:
        op, dst, src, off, imm = unpack_slot(raw, pc)
        spec = lookup(op, src, off, imm)
        if spec is None and strict:
            if op in BY_OPCODE:
                c = BY_OPCODE[op][0]
                f = c.select[0] if c.select else "offset"
                v = {"off": off, "imm": imm, "src": src}.get(f, off)
                raise DecodeError(pc, f"{c.name.split()[0]} (opcode 0x{op:02x}): invalid "
                                  f"{'offset' if f == 'off' else f} value {v}")
            raise DecodeError(pc, f"unknown opcode 0x{op:02x}")
        if spec is not None and strict:
            bad = spec.field_ok(dst, src, off, imm)
            if bad:
                raise DecodeError(pc, f"{spec.name}: reserved field {bad} is not zero"
                                  if getattr(spec, bad if bad != "offset" else "off", None) == 0
                                  else f"{spec.name}: invalid {bad} value")
        if spec is not None and spec.kind == LDDW:
            if pc + 1 >= n:
                raise DecodeError(pc, "lddw is missing its second slot")
            op2, d2, s2, o2, imm2 = unpack_slot(raw, pc + 1)
            if strict and (op2 or d2 or s2 or o2):
                raise DecodeError(pc + 1, "lddw second slot has non-zero reserved fields")
            imm = (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
            out.append(Insn(op, dst, src, off, imm, spec))
            pc += 2
            continue
        out.append(Insn(op, dst, src, off, imm, spec))
        pc += 1
    return out


def encode(insns: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def reg_masks(ins: Insn) -> tuple[int, int]:
    """(registers read, registers written) by one instruction, as bit masks."""
    o = ins.spec.operands
    bit = {"dst": 1 << ins.dst, "src": 1 << ins.src, "r0": 1}
    rd = wr = 0
    for r in o.reads:
        rd |= bit[r]
    for r in o.writes:
        wr |= bit[r]
    return rd, wr


def writes_r10(ins: Insn) -> bool:
    """True when the instruction names r10 in a field it may not (TRAP_R10_WRITE)."""
    f = ins.spec.operands.no_r10
    return f is not None and (ins.dst if f == "dst" else ins.src) == 10
