"""The reference machine: a complete functional eBPF machine in pure Python.

The program is decoded once into a list of closures, one per instruction slot; each closure
does its work and returns the next pc. Memory is a set of 32-bit windows (bpfpga/memmap.py),
the same address map the hardware uses, and every access is checked against its window.
A fault raises :class:`bpfpga.errors.Fault` with a trap reason and the pc.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from bpfpga import isa, memmap, traps
from bpfpga.errors import Fault, LoadError
from bpfpga.isa import (ALU, ATOMIC, CALL, CALLX, END, EXIT, JA, JCOND, LDABS, LDDW, LDIND,
                        LDX, LDXSX, MOVSX, NEG, ST, STX)

M64 = 0xFFFFFFFFFFFFFFFF
M32 = 0xFFFFFFFF
SIGN64 = 1 << 63
_STRUCTS = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"),
            8: struct.Struct("<Q")}


class Window:
    """One address window: a backing bytearray at `base`, accessible in [lo, hi)."""
    __slots__ = ("name", "base", "buf", "lo", "hi", "writable")

    def __init__(self, name: str, base: int, buf: bytearray, lo: int | None = None,
                 hi: int | None = None, writable: bool = True):
        self.name = name
        self.base = base
        self.buf = buf
        self.lo = base if lo is None else lo
        self.hi = base + len(buf) if hi is None else hi
        self.writable = writable


class Memory:
    """The 32-bit address space: windows selected by the top 4 address bits."""

    def __init__(self):
        self.slots: list[Window | None] = [None] * 16

    def add(self, w: Window) -> Window:
        self.slots[(w.base >> 28) & 0xF] = w
        return w

    def window(self, name: str) -> Window | None:
        for w in self.slots:
            if w is not None and w.name == name:
                return w
        return None

    def translate(self, addr: int, n: int, pc: int, write: bool = False):
        if addr >> 32:
            raise Fault(traps.TRAP_MEM, pc, f"address 0x{addr:x} is outside every window")
        w = self.slots[addr >> 28]
        if w is None or addr < w.lo or addr + n > w.hi:
            raise Fault(traps.TRAP_MEM, pc, f"{n}-byte access at 0x{addr:x} is outside "
                        + (f"the {w.name} window [0x{w.lo:x}, 0x{w.hi:x})" if w
                           else "every window"))
        if write and not w.writable:
            raise Fault(traps.TRAP_MEM, pc, f"write to read-only {w.name} at 0x{addr:x}")
        return w.buf, addr - w.base

    def read(self, addr: int, n: int, pc: int = -1) -> int:
        buf, o = self.translate(addr, n, pc)
        return _STRUCTS[n].unpack_from(buf, o)[0]

    def write(self, addr: int, n: int, value: int, pc: int = -1) -> None:
        buf, o = self.translate(addr, n, pc, True)
        _STRUCTS[n].pack_into(buf, o, value & ((1 << (8 * n)) - 1))

    def read_bytes(self, addr: int, n: int, pc: int = -1) -> bytes:
        if n == 0:
            return b""
        buf, o = self.translate(addr, n, pc)
        return bytes(buf[o:o + n])

    def write_bytes(self, addr: int, data: bytes, pc: int = -1) -> None:
        if not data:
            return
        buf, o = self.translate(addr, len(data), pc, True)
        buf[o:o + len(data)] = data


class _Exit(Exception):
    pass


@dataclass
class RefResult:
    r0: int
    trap: int = 0
    trap_pc: int = -1
    trap_detail: str = ""
    insns: int = 0
    mem: bytes = b""
    trace: list = field(default_factory=list)


# helper signature: fn(machine) -> r0 (reads machine.r[1..5])
Helper = Callable[["Machine"], int]


def conformance_unwind(m: "Machine") -> int:
    """Helper 5 of the conformance suite: returns r1; zero means stop with r0 = 0."""
    v = m.r[1]
    if v == 0:
        m.stop = True
    return v


class Machine:
    """An eBPF machine for one program. Reusable: call run() many times."""

    def __init__(self, program: bytes, helpers: dict[int, Helper] | None = None,
                 strict: bool = True, memory: Memory | None = None,
                 budget: int = memmap.INSN_BUDGET, resolve_lddw=None):
        try:
            self.insns = isa.decode(program, strict=strict)
        except isa.DecodeError as e:
            raise LoadError(str(e)) from None
        self.program = program
        self.resolve_lddw = resolve_lddw
        self.nslots = len(program) // 8
        self.helpers = dict(helpers or {})
        self.budget = budget
        self.r = [0] * 11
        self.mem = memory or Memory()
        self.stack_buf = bytearray(memmap.STACK_SIZE)
        self.mem.add(Window("stack", memmap.STACK_BASE, self.stack_buf))
        self.frames: list[tuple[int, int, int, int, int, int]] = []
        self.stop = False
        self.trace_hook = None       # fn(pc) per executed instruction when tracing
        self.ops: list = [None] * (self.nslots + 1)
        self._compile()

    # ------------------------------------------------------------------ compile
    def _compile(self) -> None:
        pc = 0
        for ins in self.insns:
            self.ops[pc] = self._op(ins, pc)
            if ins.slots == 2:
                self.ops[pc + 1] = self._bad_target(pc + 1)
            pc += ins.slots
        self.ops[self.nslots] = self._fell_off()

    def _bad_target(self, pc):
        def op():
            raise Fault(traps.TRAP_PC, pc, "jump into the middle of lddw")
        return op

    def _fell_off(self):
        n = self.nslots

        def op():
            raise Fault(traps.TRAP_PC, n, "execution ran past the end of the program")
        return op

    def _jump(self, pc: int, delta: int) -> int:
        t = pc + 1 + delta
        if not 0 <= t < self.nslots:
            raise LoadError(f"instruction {pc}: jump target {t} is outside the program "
                            f"(0..{self.nslots - 1})")
        return t

    def _op(self, ins: isa.Insn, pc: int):
        s = ins.spec
        if s is None:
            def illegal():
                raise Fault(traps.TRAP_ILLEGAL, pc, f"unknown opcode 0x{ins.opcode:02x}")
            return illegal
        r = self.r
        d, sr, off, imm = ins.dst, ins.src, ins.off, ins.imm
        nxt = pc + 1
        k = s.kind
        wr = s.width == 64
        mask = M64 if wr else M32
        if isa.writes_r10(ins):
            def r10():
                raise Fault(traps.TRAP_R10_WRITE, pc, "write to r10")
            return r10
        if k == ALU:
            return self._alu(s, d, sr, off, imm, nxt, pc, mask, wr)
        if k == NEG:
            def neg():
                r[d] = (-r[d]) & mask
                return nxt
            return neg
        if k == MOVSX:
            bits = s.size
            sb = 1 << (bits - 1)
            lm = (1 << bits) - 1

            def movsx():
                v = r[sr] & lm
                r[d] = ((v ^ sb) - sb) & mask
                return nxt
            return movsx
        if k == END:
            bits = s.size
            nb = bits // 8
            lm = (1 << bits) - 1
            swap = s.src_mode == isa.BPF_TO_BE or s.cls == isa.BPF_ALU64
            if swap:
                def bswap():
                    r[d] = int.from_bytes((r[d] & lm).to_bytes(nb, "little"), "big")
                    return nxt
                return bswap

            def le():
                r[d] &= lm
                return nxt
            return le
        if k == LDDW:
            if ins.src != 0:
                v = self._pseudo_lddw(ins, pc)
            else:
                v = imm & M64
            nxt2 = pc + 2

            def lddw():
                r[d] = v
                return nxt2
            return lddw
        mem = self.mem
        if k in (LDX, LDXSX):
            n = isa.SIZE_BYTES[s.size]
            st = _STRUCTS[n]
            tr = mem.translate
            if k == LDXSX:
                sb = 1 << (8 * n - 1)

                def ldxs():
                    buf, o = tr((r[sr] + off) & M64, n, pc)
                    r[d] = ((st.unpack_from(buf, o)[0] ^ sb) - sb) & M64
                    return nxt
                return ldxs

            def ldx():
                buf, o = tr((r[sr] + off) & M64, n, pc)
                r[d] = st.unpack_from(buf, o)[0]
                return nxt
            return ldx
        if k in (ST, STX):
            n = isa.SIZE_BYTES[s.size]
            st = _STRUCTS[n]
            vm = (1 << (8 * n)) - 1
            tr = mem.translate
            if k == ST:
                v = imm & vm

                def sti():
                    buf, o = tr((r[d] + off) & M64, n, pc, True)
                    st.pack_into(buf, o, v)
                    return nxt
                return sti

            def stx():
                buf, o = tr((r[d] + off) & M64, n, pc, True)
                st.pack_into(buf, o, r[sr] & vm)
                return nxt
            return stx
        if k == ATOMIC:
            return self._atomic(s, d, sr, off, imm, nxt, pc)
        if k == JA:
            t = self._jump(pc, imm if s.cls == isa.BPF_JMP32 else off)

            def ja():
                return t
            return ja
        if k == JCOND:
            return self._jcond(s, d, sr, off, imm, nxt, pc)
        if k == CALL:
            if sr == isa.BPF_PSEUDO_CALL:
                t = self._jump(pc, imm)
                return self._local_call(t, nxt, pc)
            if sr == isa.BPF_PSEUDO_KFUNC_CALL:
                raise LoadError(f"instruction {pc}: kfunc calls are not supported")
            return self._helper_call(lambda: imm, nxt, pc)
        if k == CALLX:
            return self._helper_call(lambda: r[d], nxt, pc)
        if k == EXIT:
            frames = self.frames

            def exit_():
                if not frames:
                    raise _Exit
                ret, r6, r7, r8, r9, r10 = frames.pop()
                r[6], r[7], r[8], r[9], r[10] = r6, r7, r8, r9, r10
                return ret
            return exit_
        if k in (LDABS, LDIND):
            return self._ldpkt(s, sr, imm, nxt, pc)
        raise LoadError(f"instruction {pc}: {s.name} is not supported")  # pragma: no cover

    def _pseudo_lddw(self, ins: isa.Insn, pc: int) -> int:
        if self.resolve_lddw is not None:
            return self.resolve_lddw(ins, pc)
        raise LoadError(f"instruction {pc}: lddw with src_reg {ins.src} (a map or BTF "
                        f"reference) was not linked")

    def _alu(self, s, d, sr, off, imm, nxt, pc, mask, wr):
        r = self.r
        op = s.op
        x = s.src_mode == isa.BPF_X
        signed = off == 1 and op in (isa.BPF_DIV, isa.BPF_MOD)
        bits = 64 if wr else 32
        sbit = 1 << (bits - 1)
        k = (imm & M64) if wr else (imm & M32)     # imm sign-extended to the operand width
        if op == isa.BPF_MOV:
            if x:
                def mov_x():
                    r[d] = r[sr] & mask
                    return nxt
                return mov_x

            def mov_k():
                r[d] = k
                return nxt
            return mov_k
        simple = {
            isa.BPF_ADD: lambda a, b: a + b, isa.BPF_SUB: lambda a, b: a - b,
            isa.BPF_MUL: lambda a, b: a * b, isa.BPF_OR: lambda a, b: a | b,
            isa.BPF_AND: lambda a, b: a & b, isa.BPF_XOR: lambda a, b: a ^ b,
        }
        shmask = bits - 1
        if op in (isa.BPF_ADD, isa.BPF_SUB, isa.BPF_OR, isa.BPF_AND, isa.BPF_XOR, isa.BPF_MUL):
            f = simple[op]
            if op == isa.BPF_ADD:
                if x:
                    def add_x():
                        r[d] = (r[d] + r[sr]) & mask
                        return nxt
                    return add_x

                def add_k():
                    r[d] = (r[d] + k) & mask
                    return nxt
                return add_k
            if x:
                def alu_x():
                    r[d] = f(r[d] & mask, r[sr] & mask) & mask
                    return nxt
                return alu_x

            def alu_k():
                r[d] = f(r[d] & mask, k) & mask
                return nxt
            return alu_k
        if op == isa.BPF_LSH:
            if x:
                def lsh_x():
                    r[d] = ((r[d] & mask) << (r[sr] & shmask)) & mask
                    return nxt
                return lsh_x
            sh = k & shmask

            def lsh_k():
                r[d] = ((r[d] & mask) << sh) & mask
                return nxt
            return lsh_k
        if op == isa.BPF_RSH:
            if x:
                def rsh_x():
                    r[d] = (r[d] & mask) >> (r[sr] & shmask)
                    return nxt
                return rsh_x
            sh = k & shmask

            def rsh_k():
                r[d] = (r[d] & mask) >> sh
                return nxt
            return rsh_k
        if op == isa.BPF_ARSH:
            def arsh():
                v = r[d] & mask
                v = (v ^ sbit) - sbit
                r[d] = (v >> ((r[sr] if x else k) & shmask)) & mask
                return nxt
            return arsh
        if op in (isa.BPF_DIV, isa.BPF_MOD):
            is_div = op == isa.BPF_DIV

            def divmod_():
                a = r[d] & mask
                b = (r[sr] if x else k) & mask
                if b == 0:
                    r[d] = 0 if is_div else a
                    return nxt
                if signed:
                    sa = (a ^ sbit) - sbit
                    sb_ = (b ^ sbit) - sbit
                    q = abs(sa) // abs(sb_)
                    if (sa < 0) != (sb_ < 0):
                        q = -q
                    res = q if is_div else sa - q * sb_
                else:
                    res = a // b if is_div else a % b
                r[d] = res & mask
                return nxt
            return divmod_
        raise LoadError(f"instruction {pc}: ALU op 0x{op:02x} unsupported")  # pragma: no cover

    def _jcond(self, s, d, sr, off, imm, nxt, pc):
        r = self.r
        t = self._jump(pc, off)
        wr = s.width == 64
        mask = M64 if wr else M32
        sbit = 1 << (s.width - 1)
        x = s.src_mode == isa.BPF_X
        k = imm & mask
        op = s.op
        if op == isa.BPF_JEQ:
            cmp = lambda a, b: a == b  # noqa: E731
        elif op == isa.BPF_JNE:
            cmp = lambda a, b: a != b  # noqa: E731
        elif op == isa.BPF_JGT:
            cmp = lambda a, b: a > b  # noqa: E731
        elif op == isa.BPF_JGE:
            cmp = lambda a, b: a >= b  # noqa: E731
        elif op == isa.BPF_JLT:
            cmp = lambda a, b: a < b  # noqa: E731
        elif op == isa.BPF_JLE:
            cmp = lambda a, b: a <= b  # noqa: E731
        elif op == isa.BPF_JSET:
            cmp = lambda a, b: (a & b) != 0  # noqa: E731
        else:
            base = {isa.BPF_JSGT: lambda a, b: a > b, isa.BPF_JSGE: lambda a, b: a >= b,
                    isa.BPF_JSLT: lambda a, b: a < b, isa.BPF_JSLE: lambda a, b: a <= b}[op]

            def cmp(a, b, base=base):
                return base((a ^ sbit) - sbit, (b ^ sbit) - sbit)
        if op == isa.BPF_JEQ and not x and wr:
            def jeq_k():
                return t if r[d] == k else nxt
            return jeq_k
        if op == isa.BPF_JNE and not x and wr:
            def jne_k():
                return t if r[d] != k else nxt
            return jne_k
        if x:
            def jx():
                return t if cmp(r[d] & mask, r[sr] & mask) else nxt
            return jx

        def jk():
            return t if cmp(r[d] & mask, k) else nxt
        return jk

    def _atomic(self, s, d, sr, off, imm, nxt, pc):
        r = self.r
        n = isa.SIZE_BYTES[s.size]
        vm = (1 << (8 * n)) - 1
        st = _STRUCTS[n]
        tr = self.mem.translate
        fetch = bool(imm & isa.BPF_FETCH)
        op = imm & 0xF0
        if imm == isa.BPF_CMPXCHG:
            def cmpxchg():
                buf, o = tr((r[d] + off) & M64, n, pc, True)
                old = st.unpack_from(buf, o)[0]
                if old == r[0] & vm:
                    st.pack_into(buf, o, r[sr] & vm)
                r[0] = old
                return nxt
            return cmpxchg
        if imm == isa.BPF_XCHG:
            def xchg():
                buf, o = tr((r[d] + off) & M64, n, pc, True)
                old = st.unpack_from(buf, o)[0]
                st.pack_into(buf, o, r[sr] & vm)
                r[sr] = old
                return nxt
            return xchg
        f = {isa.BPF_ADD: lambda a, b: a + b, isa.BPF_OR: lambda a, b: a | b,
             isa.BPF_AND: lambda a, b: a & b, isa.BPF_XOR: lambda a, b: a ^ b}[op]

        def atomic():
            buf, o = tr((r[d] + off) & M64, n, pc, True)
            old = st.unpack_from(buf, o)[0]
            st.pack_into(buf, o, f(old, r[sr] & vm) & vm)
            if fetch:
                r[sr] = old
            return nxt
        return atomic

    def _local_call(self, t, nxt, pc):
        r = self.r
        frames = self.frames

        def call_local():
            if len(frames) + 1 >= memmap.MAX_CALL_FRAMES:
                raise Fault(traps.TRAP_CALL_DEPTH, pc, "bpf-to-bpf calls nested too deep")
            frames.append((nxt, r[6], r[7], r[8], r[9], r[10]))
            r[10] = (r[10] - memmap.STACK_FRAME) & M64
            return t
        return call_local

    def _helper_call(self, fid, nxt, pc):
        r = self.r
        helpers = self.helpers

        def call_helper():
            h = helpers.get(fid())
            if h is None:
                raise Fault(traps.TRAP_HELPER, pc, f"unknown helper {fid()}")
            self.pc = pc
            v = h(self)
            r[0] = v & M64
            if self.stop:
                raise _Exit
            return nxt
        return call_helper

    def _ldpkt(self, s, sr, imm, nxt, pc):
        r = self.r
        n = isa.SIZE_BYTES[s.size]
        ind = s.kind == LDIND

        def ldpkt():
            base = self.packet_data()
            off = ((r[sr] if ind else 0) + imm) & M32
            try:
                v = int.from_bytes(self.mem.read_bytes(base + off, n, pc), "big")
            except Fault:
                r[0] = 0            # the kernel ends the program with 0, as a socket filter
                raise _Exit from None
            r[0] = v
            return nxt
        return ldpkt

    def packet_data(self) -> int:
        w = self.mem.window("packet")
        if w is None:
            raise Fault(traps.TRAP_MEM, getattr(self, "pc", -1), "no packet for ld_abs/ld_ind")
        return w.lo

    # ------------------------------------------------------------------ run
    def run(self, r1: int = 0, r2: int = 0, budget: int | None = None,
            entry: int = 0) -> RefResult:
        r = self.r
        for i in range(11):
            r[i] = 0
        r[1] = r1 & M64
        r[2] = r2 & M64
        r[10] = memmap.frame_top(0)
        self.frames.clear()
        self.stop = False
        budget = self.budget if budget is None else budget
        ops = self.ops
        pc = entry
        n = 0
        hook = self.trace_hook
        try:
            if hook is None:
                while n < budget:
                    pc = ops[pc]()
                    n += 1
            else:
                while n < budget:
                    hook(pc)
                    pc = ops[pc]()
                    n += 1
            return RefResult(r[0], traps.TRAP_BUDGET, pc, "instruction budget spent", n)
        except _Exit:
            return RefResult(r[0], insns=n + 1)
        except Fault as f:
            return RefResult(r[0], f.reason, f.pc, f.detail, n)


def run_program(program: bytes, mem: bytes = b"", budget: int = memmap.INSN_BUDGET,
                helpers: dict[int, Helper] | None = None, strict: bool = True) -> RefResult:
    """Run a program under the conformance suite's contract: r1 -> copy of mem, r2 = len."""
    memory = Memory()
    buf = bytearray(mem)
    memory.add(Window("packet", memmap.MEM_BASE, buf))
    hs = {5: conformance_unwind}
    hs.update(helpers or {})
    m = Machine(program, hs, strict=strict, memory=memory, budget=budget)
    res = m.run(memmap.MEM_BASE if mem else 0, len(mem))
    res.mem = bytes(buf)
    return res
