"""Disassembler: the LLVM/kernel syntax, as ``llvm-objdump -d`` (LLVM 14) prints it.

Every spelling derives from the instruction table (:mod:`bpfpga.isa`): the kind of a spec
chooses the template, its class the register prefix (``w`` for BPF_ALU/BPF_JMP32 operands),
its op the operator (``isa.ALU_SYMBOL``, ``isa.JMP_SYMBOL``, ``isa.ATOMIC_SYMBOL``).

Where LLVM 14 prints ``<unknown>`` (or prints wrongly) the newer LLVM spellings are used:

- v4: ``r0 s/= r1``, ``r0 s%= r1``, ``r0 = (s8)r1``, ``r0 = *(s8 *)(r1 + 0)``,
  ``r0 = bswap16 r0``, ``gotol +5``, ``callx r2`` (LLVM 14 takes the callx register from imm;
  the ISA and LLVM 19+ put it in dst)
- ``r0 %= r1`` (LLVM 14 lacks BPF_MOD), ``if r1 & r2 goto +1`` (BPF_JSET, LLVM 19+),
  ``*(u32 *)(r10 - 4) = 1`` (BPF_ST, LLVM 16+)
- 32-bit atomics other than the plain add, in LLVM's alu32 spelling:
  ``lock *(u32 *)(r1 + 0) |= w2``, ``w2 = atomic_fetch_add((u32 *)(r1 + 0), w2)``,
  ``w2 = xchg32_32(r1 + 0, w2)``, ``w0 = cmpxchg32_32(r1 + 0, w0, w2)``
  (LLVM 14 without +alu32 prints the fetch add as a plain ``lock ... += r2``)

Extensions where LLVM's text drops a field: ``r0 = *(u16 *)skb[r3 + 4]`` (ld_ind with a non-zero
imm; LLVM prints ``skb[r3]``). lddw with a pseudo source prints as LLVM does:
``ld_pseudo r1, 1, 5``. Calls print ``call N`` whatever their src (helper, local, kfunc), as LLVM
does; with ``pc`` given a local call also gets its target ``<pc>`` as an annotation.
"""
from __future__ import annotations

import struct

from bpfpga import isa
from bpfpga.isa import Insn

# register prefix of ALU/JMP operands per class
_WIDE = {isa.BPF_ALU64: "r", isa.BPF_JMP: "r", isa.BPF_ALU: "w", isa.BPF_JMP32: "w"}


def _off(off: int) -> str:
    off = isa.sext(off, 16)
    return f"+ {off}" if off >= 0 else f"- {-off}"


def _mem(reg: int, off: int) -> str:
    return f"r{reg} {_off(off)}"


def _rel(v: int) -> str:
    return f"+{v}" if v >= 0 else str(v)


def unknown_text(raw: bytes) -> str:
    """An instruction the table does not know: its bytes, assembler-style, and a note."""
    note = f"unknown opcode 0x{raw[0]:02x}" if raw[0] not in isa.BY_OPCODE else \
        f"opcode 0x{raw[0]:02x} with unknown field values"
    return ".insn " + " ".join(f"{b:02x}" for b in raw[:8]) + f"  ; {note}"


def branch_target(insn: Insn, pc: int) -> int | None:
    """Target slot of a jump (or local call) at slot pc, else None."""
    spec = insn.spec or isa.lookup(insn.opcode, insn.src, insn.off, insn.imm)
    if spec is None:
        return None
    if spec.kind == isa.JCOND or (spec.kind == isa.JA and spec.cls == isa.BPF_JMP):
        return pc + 1 + isa.sext(insn.off, 16)
    if spec.kind == isa.JA:
        return pc + 1 + isa.s32(insn.imm)
    if spec.kind == isa.CALL and insn.src == isa.BPF_PSEUDO_CALL:
        return pc + 1 + isa.s32(insn.imm)
    return None


def format_insn(insn: Insn, pc: int | None = None) -> str:
    """One instruction in LLVM syntax. With ``pc`` (its slot index) a jump or local call is
    followed by its target slot, ``<N>``, in the way llvm-objdump annotates branches."""
    spec = insn.spec or isa.lookup(insn.opcode, insn.src, insn.off, insn.imm)
    if spec is None:
        return unknown_text(insn.encode())
    text = _text(insn, spec)
    if pc is not None:
        t = branch_target(insn, pc)
        if t is not None:
            text += f" <{t}>"
    return text


def _text(insn: Insn, spec: isa.InsnSpec) -> str:
    k = spec.kind
    d, s, off, imm = insn.dst, insn.src, insn.off, isa.s32(insn.imm)
    p = _WIDE.get(spec.cls, "r")
    if k == isa.ALU:
        sym = isa.ALU_SYMBOL[spec.op]
        if spec.select == ("off", 1):          # sdiv / smod
            sym = "s" + sym
        rhs = f"{p}{s}" if spec.src_mode == isa.BPF_X else str(imm)
        return f"{p}{d} {sym} {rhs}"
    if k == isa.NEG:
        return f"{p}{d} = -{p}{d}"
    if k == isa.MOVSX:
        return f"{p}{d} = (s{spec.size}){p}{s}"
    if k == isa.END:
        return f"r{d} = {spec.name} r{d}"
    if k == isa.LDDW:
        if s:
            return f"ld_pseudo r{d}, {s}, {isa.s64(insn.imm)}"
        return f"r{d} = {isa.s64(insn.imm)} ll"
    ctype = isa.SIZE_CTYPE.get(spec.size, "u64")
    if k == isa.LDABS:
        return f"r0 = *({ctype} *)skb[{imm}]"
    if k == isa.LDIND:
        extra = "" if imm == 0 else (f" + {imm}" if imm > 0 else f" - {-imm}")
        return f"r0 = *({ctype} *)skb[r{s}{extra}]"
    if k == isa.LDX:
        return f"r{d} = *({ctype} *)({_mem(s, off)})"
    if k == isa.LDXSX:
        return f"r{d} = *(s{ctype[1:]} *)({_mem(s, off)})"
    if k == isa.ST:
        return f"*({ctype} *)({_mem(d, off)}) = {imm}"
    if k == isa.STX:
        return f"*({ctype} *)({_mem(d, off)}) = r{s}"
    if k == isa.ATOMIC:
        return _atomic(spec, d, s, off, imm)
    if k == isa.JA:
        if spec.cls == isa.BPF_JMP32:
            return f"gotol {_rel(imm)}"
        return f"goto {_rel(isa.sext(off, 16))}"
    if k == isa.JCOND:
        rhs = f"{p}{s}" if spec.src_mode == isa.BPF_X else str(imm)
        return f"if {p}{d} {isa.JMP_SYMBOL[spec.op]} {rhs} goto {_rel(isa.sext(off, 16))}"
    if k == isa.CALL:
        return f"call {imm}"
    if k == isa.CALLX:
        return f"callx r{d}"
    if k == isa.EXIT:
        return "exit"
    raise AssertionError(f"no LLVM template for kind {k!r}")   # a new kind in isa.SPECS


def _atomic(spec: isa.InsnSpec, d: int, s: int, off: int, imm: int) -> str:
    is64 = spec.size == isa.BPF_DW
    ctype = isa.SIZE_CTYPE[spec.size]
    addr = _mem(d, off)
    imm &= 0xFF
    # the 32-bit plain add keeps LLVM 14's default (non-alu32) spelling with an r register
    p = "r" if is64 or imm == isa.BPF_ADD else "w"
    if imm == isa.BPF_XCHG:
        fn = "xchg_64" if is64 else "xchg32_32"
        return f"{p}{s} = {fn}({addr}, {p}{s})"
    if imm == isa.BPF_CMPXCHG:
        fn = "cmpxchg_64" if is64 else "cmpxchg32_32"
        return f"{p}0 = {fn}({addr}, {p}0, {p}{s})"
    op = imm & ~isa.BPF_FETCH
    if imm & isa.BPF_FETCH:
        return f"{p}{s} = atomic_fetch_{isa.ATOMIC_FETCH_NAME[op]}(({ctype} *)({addr}), {p}{s})"
    return f"lock *({ctype} *)({addr}) {isa.ATOMIC_SYMBOL[op]} {p}{s}"


# --- whole programs ------------------------------------------------------------------------------
def iter_insns(program: bytes):
    """(slot, Insn or None, raw bytes) for each instruction; never raises. Unknown opcodes come
    with a spec of None; a truncated lddw or a tail shorter than 8 bytes comes as raw bytes."""
    n = len(program) // 8
    pc = 0
    while pc < n:
        op, dst, src, off, imm = isa.unpack_slot(program, pc)
        spec = isa.lookup(op, src, off, imm)
        if spec is not None and spec.kind == isa.LDDW:
            if pc + 1 >= n:
                yield pc, None, program[pc * 8:pc * 8 + 8]
                pc += 1
                continue
            hi = struct.unpack_from("<I", program, pc * 8 + 12)[0]
            imm = (imm & 0xFFFFFFFF) | (hi << 32)
            yield pc, Insn(op, dst, src, off, imm, spec), program[pc * 8:pc * 8 + 16]
            pc += 2
            continue
        yield pc, Insn(op, dst, src, off, imm, spec), program[pc * 8:pc * 8 + 8]
        pc += 1
    if len(program) % 8:
        yield n, None, program[n * 8:]


def _line_text(insn: Insn | None, raw: bytes, pc: int | None) -> str:
    if insn is None:
        if len(raw) < 8:
            return ".byte " + ", ".join(f"0x{b:02x}" for b in raw) + \
                f"  ; {len(raw)} trailing bytes, not a whole instruction"
        return unknown_text(raw) + " (lddw without its second slot)"
    return format_insn(insn, pc)


def disassemble(program: bytes, raw: bool = False) -> list[str]:
    """One line per instruction: ``slot: text`` (with the bytes when ``raw``)."""
    out = []
    for pc, insn, b in iter_insns(program):
        text = _line_text(insn, b, pc)
        if raw:
            out.append(f"{pc:>6}:  {b.hex(' '):<47}  {text}")
        else:
            out.append(f"{pc:>6}:  {text}")
    return out


# --- ELF objects ---------------------------------------------------------------------------------
def _reloc_names() -> dict[int, str]:
    from elftools.elf.enums import ENUM_RELOC_TYPE_BPF
    return {v: k for k, v in ENUM_RELOC_TYPE_BPF.items() if isinstance(v, int)}


def disassemble_elf(path: str, raw: bool = False) -> str:
    """Every executable section of an ELF object, with its symbols as labels and its
    relocations under the instruction they patch, in the layout of ``llvm-objdump -dr``."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import SymbolTableSection

    from bpfpga.errors import LoadError

    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_BPF":
                raise LoadError(f"{path}: not a BPF object (machine {elf['e_machine']}, "
                                f"not EM_BPF)")
            return _disassemble_elf(elf, path, raw, RelocationSection, SymbolTableSection)
    except OSError as e:
        raise LoadError(f"{path}: {e.strerror}") from None
    except LoadError:
        raise
    except RecursionError:
        raise LoadError(f"{path}: not a readable ELF object (nested too deeply)") from None
    except Exception as e:  # noqa: BLE001 - pyelftools on a malformed file raises
        # whatever its struct parsing meets (ELFError, struct.error, KeyError, ...)
        raise LoadError(f"{path}: not a readable ELF object ({type(e).__name__}: {e})") \
            from None


def _disassemble_elf(elf, path, raw, RelocationSection, SymbolTableSection) -> str:
    from bpfpga.errors import escape    # names from the object reach a terminal: escaped
    SHF_EXECINSTR = 0x4
    symtab = next((s for s in elf.iter_sections() if isinstance(s, SymbolTableSection)), None)
    syms = list(symtab.iter_symbols()) if symtab is not None else []
    relnames = _reloc_names()
    lines = [f"{escape(path)}:\tfile format elf64-bpf", ""]
    for idx, sec in enumerate(elf.iter_sections()):
        if not sec["sh_flags"] & SHF_EXECINSTR or sec["sh_type"] != "SHT_PROGBITS":
            continue
        data = sec.data()
        if not data:
            continue
        secname = escape(sec.name)
        # labels: function and plain symbols of this section, by address
        labels: dict[int, list[str]] = {}
        for s in syms:
            if s["st_shndx"] == idx and s["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE") \
                    and s.name:
                labels.setdefault(s["st_value"], []).append(escape(s.name))
        if 0 not in labels:
            labels[0] = [secname]
        starts = sorted(labels)
        # relocations that apply to this section, by offset
        relocs: dict[int, list[str]] = {}
        for rs in elf.iter_sections():
            if isinstance(rs, RelocationSection) and rs["sh_info"] == idx:
                rsyms = elf.get_section(rs["sh_link"])
                for r in rs.iter_relocations():
                    sym = rsyms.get_symbol(r["r_info_sym"]) if r["r_info_sym"] else None
                    name = ""
                    if sym is not None:
                        name = sym.name
                        if not name and sym["st_info"]["type"] == "STT_SECTION":
                            name = elf.get_section(sym["st_shndx"]).name
                    if r.is_RELA() and r["r_addend"]:
                        name += f"+0x{r['r_addend']:x}" if r["r_addend"] > 0 \
                            else f"-0x{-r['r_addend']:x}"
                    rtype = relnames.get(r["r_info_type"], f"R_BPF_{r['r_info_type']}")
                    relocs.setdefault(r["r_offset"], []).append(f"{rtype}\t{escape(name)}")

        def where(slot: int) -> str:
            addr = slot * 8
            base = max((a for a in starts if a <= addr), default=None)
            if base is None:
                return f"<{secname}+0x{addr:x}>"
            name = labels[base][-1]
            return f"<{name}>" if addr == base else f"<{name}+0x{addr - base:x}>"

        lines += [f"Disassembly of section {secname}:", ""]
        for pc, insn, b in iter_insns(data):
            addr = pc * 8
            if addr in labels:
                if addr:
                    lines.append("")
                lines.append(f"{addr:016x} <{labels[addr][-1]}>:")
            text = _line_text(insn, b, None)
            if insn is not None:
                t = branch_target(insn, pc)
                if t is not None and (insn.spec is None or insn.spec.kind != isa.CALL):
                    text += " " + where(t)
            if raw:
                lines.append(f"{pc:>8}:\t{b.hex(' ')}\t{text}")
            else:
                lines.append(f"{pc:>8}:\t{text}")
            for off in range(addr, addr + len(b)):
                for r in relocs.get(off, ()):
                    lines.append(f"\t\t{off:016x}:  {r}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
