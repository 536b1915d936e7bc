"""LLVM syntax: format_insn -> parse_llvm gives back the same encoding, for every form of the
instruction table, and malformed lines are rejected with a message naming the problem."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpga import isa
from bpfpga.compiler.disasm import format_insn
from bpfpga.compiler.llvm_syntax import parse_llvm
from bpfpga.errors import AsmError
from bpfpga.isa import Insn


def field(rule, free: st.SearchStrategy) -> st.SearchStrategy:
    if rule == isa.REG:
        return st.integers(0, 10)
    if rule == isa.FREE:
        return free
    if isinstance(rule, frozenset):
        return st.sampled_from(sorted(rule))
    return st.just(rule)


@st.composite
def insns(draw, spec: isa.InsnSpec) -> Insn:
    imm_free = (st.integers(-(1 << 63), (1 << 64) - 1) if spec.kind == isa.LDDW
                else st.integers(-(1 << 31), (1 << 31) - 1))
    vals = {"dst": draw(field(spec.dst, st.nothing())),
            "src": draw(field(spec.src, st.nothing())),
            "off": draw(field(spec.off, st.integers(-(1 << 15), (1 << 15) - 1))),
            "imm": draw(field(spec.imm, imm_free))}
    if spec.select:
        f, v = spec.select
        vals[f] = v
    assert spec.field_ok(vals["dst"], vals["src"], vals["off"],
                         vals["imm"] if spec.kind != isa.LDDW else 0) is None
    return Insn(spec.opcode, spec=spec, **vals)


def spec_id(s: isa.InsnSpec) -> str:
    return f"{s.name}-{s.opcode:02x}" + (f"-{s.select[0]}{s.select[1]}" if s.select else "")


@pytest.mark.parametrize("spec", isa.SPECS, ids=spec_id)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip(spec, data):
    insn = data.draw(insns(spec))
    text = format_insn(insn)
    back, label = parse_llvm(text)
    assert label is None
    assert back.spec is not None
    if spec.kind == isa.CALL and insn.src != 0:
        # LLVM prints every call as "call N": a local (src 1) or kfunc (src 2) call reads
        # back as a helper call; a local call is written "call LABEL" (tested below).
        assert (back.src, back.imm & 0xFFFFFFFF) == (0, insn.imm & 0xFFFFFFFF)
        return
    assert back.encode() == insn.encode(), text
    assert back.spec == spec or back.spec.opcode == spec.opcode
    # the pc annotation (as llvm-objdump writes it) does not disturb the parser
    back2, _ = parse_llvm(format_insn(insn, pc=7))
    assert back2.encode() == insn.encode()


def test_every_spec_is_covered():
    """Every kind of the table has an LLVM spelling (a new kind would raise here)."""
    for spec in isa.SPECS:
        vals = {"dst": 1 if spec.dst == isa.REG else 0, "src": 2 if spec.src == isa.REG else 0}
        insn = Insn(spec.opcode, spec=spec, **vals)
        if spec.select:
            setattr(insn, spec.select[0], spec.select[1])
        assert format_insn(insn)


@pytest.mark.parametrize("text,fields", [
    ("r0 = 1", (0xB7, 0, 0, 0, 1)),
    ("w1 += w2", (0x0C, 1, 2, 0, 0)),
    ("if r1 s> r2 goto +3", (0x6D, 1, 2, 3, 0)),
    ("if w1 == 5 goto -2", (0x16, 1, 0, -2, 5)),
    ("*(u32 *)(r10 - 4) = r1", (0x63, 10, 1, -4, 0)),
    ("*(u32*)(r10-4) = w1", (0x63, 10, 1, -4, 0)),
    ("*(u64 *)(r10 - 8) = -1", (0x7A, 10, 0, -8, -1)),
    ("r0 = *(u16 *)(r1 + 2)", (0x69, 0, 1, 2, 0)),
    ("w0 = *(u32 *)(r1 + 2)", (0x61, 0, 1, 2, 0)),
    ("lock *(u64 *)(r1 + 0) += r2", (0xDB, 1, 2, 0, 0)),
    ("lock *(u32 *)(r1 + 0) += w2", (0xC3, 1, 2, 0, 0)),
    ("lock *(u32 *)(r1 + 0) |= r2", (0xC3, 1, 2, 0, 0x40)),
    ("r2 = atomic_fetch_xor((u64 *)(r1 - 8), r2)", (0xDB, 1, 2, -8, 0xA1)),
    ("w0 = cmpxchg32_32(r3 + 4, w0, w5)", (0xC3, 3, 5, 4, 0xF1)),
    ("r0 = 0x1122334455667788 ll", (0x18, 0, 0, 0, 0x1122334455667788)),
    ("r1 = -1 ll", (0x18, 1, 0, 0, -1)),
    ("ld_pseudo r1, 1, 5", (0x18, 1, 1, 0, 5)),
    ("call 5", (0x85, 0, 0, 0, 5)),
    ("callx r2", (0x8D, 2, 0, 0, 0)),
    ("goto +1", (0x05, 0, 0, 1, 0)),
    ("goto -1 <LBB0_2>", (0x05, 0, 0, -1, 0)),
    ("gotol -70000", (0x06, 0, 0, 0, -70000)),
    ("r0 = 0xffffffff", (0xB7, 0, 0, 0, -1)),
    ("w0 = -2147483648", (0xB4, 0, 0, 0, -(1 << 31))),
    ("r0 = be16 r0", (0xDC, 0, 0, 0, 16)),
    ("w3 = le64 w3", (0xD4, 3, 0, 0, 64)),
    ("r3 = bswap32 r3", (0xD7, 3, 0, 0, 32)),
    ("r0 = -r0", (0x87, 0, 0, 0, 0)),
    ("w7 = -w7", (0x84, 7, 0, 0, 0)),
    ("r0 s%= -3", (0x97, 0, 0, 1, -3)),
    ("w0 s>>= w1", (0xCC, 0, 1, 0, 0)),
    ("r0 = (s32)r1", (0xBF, 0, 1, 32, 0)),
    ("r0 = *(s16 *)(r1 - 2)", (0x89, 0, 1, -2, 0)),
    ("r0 = *(u32 *)skb[-1]", (0x20, 0, 0, 0, -1)),
    ("r0 = *(u8 *)skb[r3 - 4]", (0x50, 0, 3, 0, -4)),
    ("exit", (0x95, 0, 0, 0, 0)),
    ("r1 = r2 ; comment", (0xBF, 1, 2, 0, 0)),
])
def test_parse_forms(text, fields):
    insn, label = parse_llvm(text)
    assert label is None
    op, dst, src, off, imm = fields
    assert insn.encode() == Insn(op, dst, src, off, imm).encode()
    assert insn.spec is not None and insn.spec.opcode == op


@pytest.mark.parametrize("text,label,fields", [
    ("if r1 s> r2 goto LABEL", "LABEL", (0x6D, 1, 2, 0, 0)),
    ("if w3 != 0x10 goto .Lout", ".Lout", (0x56, 3, 0, 0, 16)),
    ("goto exit", "exit", (0x05, 0, 0, 0, 0)),
    ("gotol far_away", "far_away", (0x06, 0, 0, 0, 0)),
    ("call my_func", "my_func", (0x85, 0, isa.BPF_PSEUDO_CALL, 0, 0)),
])
def test_labels(text, label, fields):
    insn, lab = parse_llvm(text)
    assert lab == label
    assert insn.encode() == Insn(*fields).encode()


@pytest.mark.parametrize("text,message", [
    ("r11 = 1", "invalid register 'r11'"),
    ("r0 = r12", "invalid register 'r12'"),
    ("x1 = 2", "invalid register 'x1'"),
    ("w1 += r2", "mixed 32-bit and 64-bit registers"),
    ("if r1 > w2 goto +1", "mixed 32-bit and 64-bit registers"),
    ("r0 = 0x100000000", "does not fit in 32 bits"),
    ("r0 = 4294967296", "does not fit in 32 bits"),
    ("r0 = -2147483649", "does not fit in 32 bits"),
    ("r0 = 0x10000000000000000 ll", "does not fit in 64 bits"),
    ("goto +32768", "out of range"),
    ("if r1 == 0 goto -32769", "out of range"),
    ("r0 = *(u32 *)(r1 + 32768)", "out of range"),
    ("r0 = *(u24 *)(r1 + 0)", "invalid access size 'u24'"),
    ("*(s32 *)(r1 + 0) = r2", "invalid access size 's32'"),
    ("r0 = *(u32 *)(w1 + 0)", "must be r1"),
    ("lock *(u64 *)(r1 + 0) += w2", "must be r2"),
    ("lock *(u64 *)(r1 + 0) -= r2", "invalid atomic"),
    ("r1 = atomic_fetch_add((u64 *)(r1 + 0), r2)", "same register"),
    ("r0 = atomic_fetch_sub((u64 *)(r1 + 0), r0)", "unknown atomic operation"),
    ("r1 = cmpxchg_64(r1 + 0, r0, r2)", "r0"),
    ("w0 = (s32)w1", "no sign extension from 32 bits"),
    ("r0 = -r1", "same register"),
    ("r0 = be16 r1", "same register"),
    ("r0 = be8 r0", "invalid byte swap"),
    ("r0 = *(u16 *)skb[r1 + 0x100000000]", "does not fit in 32 bits"),
    ("r1 = *(u16 *)skb[4]", "r0"),
    ("call", "call needs"),
    ("call 0x1ffffffff", "does not fit in 32 bits"),
    ("goto 1x", "invalid branch target"),
    ("frobnicate r1", "unknown instruction 'frobnicate r1'"),
    ("r0 ~= 1", "unknown instruction"),
    ("exit now", "unexpected operand"),
    ("", "empty instruction"),
])
def test_errors(text, message):
    with pytest.raises(AsmError) as e:
        parse_llvm(text)
    assert message in str(e.value)
    assert e.value.line is None          # the caller adds the line number


def test_assembler_accepts_llvm_lines():
    """The lead's assembler hands LLVM lines to parse_llvm and resolves the labels."""
    asm = pytest.importorskip("bpfpga.compiler.asm")
    text = "\n".join([
        "r0 = 0",
        "loop:",
        "r0 += 1",
        "if r0 < 10 goto loop",
        "call func",
        "exit",
        "func:",
        "w0 = 7",
        "exit",
    ])
    prog = isa.decode(asm.assemble(text))
    assert prog[2].off == -2
    assert (prog[3].src, prog[3].imm) == (isa.BPF_PSEUDO_CALL, 1)
