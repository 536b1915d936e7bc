"""The instruction decoder, generated from the one ISA table (bpfpga/isa.py).

Nothing here spells an opcode out: the Amaranth ``Switch`` is built by iterating
:data:`bpfpga.isa.SPECS`, so an instruction added to the table is decoded (or, if the CPU has
no unit for its kind, trapped as illegal) without touching this file. The selection among
specs that share an opcode (div/sdiv by offset, le16/32/64 by imm, the atomics by imm) and the
reserved-field rules (REG, a fixed value, a set of values, FREE) are read from the same specs,
exactly as :func:`bpfpga.isa.lookup` and :meth:`bpfpga.isa.InsnSpec.field_ok` read them.
"""
from __future__ import annotations

from amaranth import *

from bpfpga import isa, traps

# kind codes of the control word; the order is arbitrary but fixed
KINDS = [isa.ALU, isa.NEG, isa.MOVSX, isa.END, isa.LDDW, isa.LDABS, isa.LDIND, isa.LDX,
         isa.LDXSX, isa.ST, isa.STX, isa.ATOMIC, isa.JA, isa.JCOND, isa.CALL, isa.CALLX,
         isa.EXIT]
K = {k: i for i, k in enumerate(KINDS)}
KIND_BITS = (len(KINDS) - 1).bit_length()

# kinds whose destination register is written (the r10 check), from the ISA's operand facts
WRITES_DST = tuple(dict.fromkeys(s.kind for s in isa.SPECS if "dst" in s.operands.writes))

_LOG2 = {1: 0, 2: 1, 4: 2, 8: 3}


def size_code(spec: isa.InsnSpec) -> int:
    """2-bit size field of the control word: log2 of the bytes a memory access moves, or of
    the bytes a movsx/END instruction keeps (movsx 8/16/32 -> 0/1/2, END 16/32/64 -> 1/2/3)."""
    if spec.kind in (isa.LDX, isa.LDXSX, isa.ST, isa.STX, isa.ATOMIC, isa.LDABS, isa.LDIND):
        return _LOG2[isa.SIZE_BYTES[spec.size]]
    if spec.kind in (isa.MOVSX, isa.END):
        return _LOG2[spec.size // 8]
    return 0


def controls(spec: isa.InsnSpec) -> dict:
    """The control word of one spec as plain ints (also used by the tests)."""
    return {
        "kind": K[spec.kind],
        "op": spec.op >> 4 if spec.kind in (isa.ALU, isa.NEG, isa.JCOND, isa.JA) else 0,
        "is64": int(spec.is64),
        "srcx": int(spec.src_mode == isa.BPF_X),
        "size": size_code(spec),
        "signed": int(spec.kind == isa.ALU and spec.op in (isa.BPF_DIV, isa.BPF_MOD)
                      and spec.off == 1),
        "swap": int(spec.kind == isa.END and (spec.cls == isa.BPF_ALU64
                                              or spec.src_mode == isa.BPF_TO_BE)),
    }


class Decoded:
    """The decoder's outputs (combinational signals)."""

    def __init__(self):
        self.kind = Signal(KIND_BITS)
        self.op = Signal(4)
        self.is64 = Signal()
        self.srcx = Signal()
        self.size = Signal(2)
        self.signed = Signal()
        self.swap = Signal()
        self.trap = Signal(4)


def _field_ok(rule, val: Value, width: int) -> Value | None:
    """An expression true when ``val`` obeys ``rule``; None when the field is free."""
    if rule == isa.REG:
        return val <= 10
    if rule == isa.FREE:
        return None
    if isinstance(rule, frozenset):
        return Cat(*[val == (v & ((1 << width) - 1)) for v in sorted(rule)]).any()
    return val == (rule & ((1 << width) - 1))


def decoder(m: Module, insn: Value) -> Decoded:
    """Add the decoder of the 64-bit instruction ``insn`` to ``m``; return its outputs."""
    d = Decoded()
    opcode, dst, src, off, imm = insn[0:8], insn[8:12], insn[12:16], insn[16:32], insn[32:64]
    fields = {"dst": (dst, 4), "src": (src, 4), "off": (off, 16), "imm": (imm, 32)}

    def emit(spec: isa.InsnSpec):
        for name, val in controls(spec).items():
            m.d.comb += getattr(d, name).eq(val)
        bad = []
        for fname, rule in (("dst", spec.dst), ("src", spec.src), ("off", spec.off),
                            ("imm", spec.imm)):
            ok = _field_ok(rule, *fields[fname])
            if ok is not None:
                bad.append(~ok)
        # the CPU resolves no pseudo sources: a linker turns map references into addresses
        if spec.kind == isa.LDDW:
            bad.append(src != 0)
        r10 = None
        if spec.operands.no_r10 is not None:
            r10 = fields[spec.operands.no_r10][0] == 10
        with m.If(Cat(*bad).any() if bad else C(0)):
            m.d.comb += d.trap.eq(traps.TRAP_RESERVED)
        if r10 is not None:
            with m.Elif(r10):
                m.d.comb += d.trap.eq(traps.TRAP_R10_WRITE)
        if spec.kind == isa.CALL:
            # kfunc calls (src 2) name kernel functions no hardware unit implements
            with m.Elif(src == isa.BPF_PSEUDO_KFUNC_CALL):
                m.d.comb += d.trap.eq(traps.TRAP_HELPER)

    with m.Switch(opcode):
        for opc, cands in sorted(isa.BY_OPCODE.items()):
            with m.Case(opc):
                if len(cands) == 1:
                    emit(cands[0])
                    continue
                first = True
                for s in cands:
                    if s.select is None:
                        cond = C(1)
                    else:
                        f, v = s.select
                        val, width = fields[f]
                        cond = val == (v & ((1 << width) - 1))
                    with (m.If(cond) if first else m.Elif(cond)):
                        emit(s)
                    first = False
                    if s.select is None:
                        break
                with m.Else():
                    m.d.comb += d.trap.eq(traps.TRAP_ILLEGAL)
        with m.Default():
            m.d.comb += d.trap.eq(traps.TRAP_ILLEGAL)
    return d
