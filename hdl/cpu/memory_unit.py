"""The memory unit: addresses (in D, and in X when D's could not be used), the window check,
the atomics' read-modify-write data, and the extension of loaded data in W."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga import isa, memmap
from bpfpga.hdl.cpu.alu import bswap
from bpfpga.hdl.cpu.stages import MEM_ADDR, W_LOAD

M32 = 0xFFFF_FFFF


class MemoryUnit(wiring.Component):
    """D side: ``d_addr`` from the base register ``d_base``, ``d_off`` and ``d_size`` (its
    ``rdy`` is the caller's). X side, on the registered ``x_addr``: ``win_ok`` (the access
    lies wholly inside one window it may use), ``agu`` (the address recomputed from the
    forwarded base ``a``, or for ld_abs/ld_ind from the packet start), the store data
    ``wdata`` (an atomic's new value from ``at_old``). W side: ``w_data``, the load in
    ``ld_q`` extended as ``w_load`` says."""
    # D
    d_base: In(64)
    d_off: In(16)
    d_size: In(2)
    d_addr: Out(MEM_ADDR)
    # X
    x_addr: In(MEM_ADDR)
    a: In(64)
    b: In(64)
    off: In(16)
    imm: In(32)
    size: In(2)
    is_store: In(1)
    is_atomic: In(1)
    is_ldind: In(1)
    is_ldabs: In(1)     # ld_abs or ld_ind
    r0: In(64)          # cmpxchg's comparand
    pkt_lo: In(32)
    pkt_hi: In(32)
    ctx_len: In(16)
    map_len: In(29)
    agu: Out(MEM_ADDR)
    win_ok: Out(1)
    ld_q: In(64)        # the bus's data, registered
    at_p1_first: In(1)  # an atomic's first write cycle: its old value is ld_q
    at_old: Out(64)
    cmpxchg: Out(1)
    wdata: Out(64)
    # W
    w_load: In(W_LOAD)
    w_data: Out(64)

    def elaborate(self, platform):
        m = Module()

        # ---- D: address and end (address + size) added in parallel from IR bits, so that
        # X's check is a compare of registers
        d_off32, d_offn = Signal(32), Signal(32)
        d_lo, d_end = Signal(33), Signal(32)
        base = self.d_base
        m.d.comb += [d_off32.eq(self.d_off.as_signed()),
                     d_offn.eq(self.d_off.as_signed() + (1 << self.d_size)),
                     d_lo.eq(base[0:32] + d_off32), d_end.eq(base[0:32] + d_offn)]
        ahi = base[32:64]
        # the access crosses into the next nibble (size <= 8), or wraps past 2^32 (from F to 0)
        d_ecross = d_end[28:32] != d_lo[28:32]
        da = self.d_addr
        m.d.comb += [da.addr.eq(d_lo[0:32]), da.end.eq(d_end), da.ecross.eq(d_ecross),
                     da.ecarry.eq(d_ecross & (d_end[28:32] == 0)),
                     da.offneg.eq(self.d_off[15]), da.carry.eq(d_lo[32]),
                     da.ahz.eq(ahi == 0), da.ah1.eq(ahi == 1), da.ahm.eq(ahi == M32)]

        # ---- X: the address computed in a cycle of its own when D's could not be used
        nbytes = Signal(4)
        m.d.comb += nbytes.eq(1 << self.size)
        agu = Signal(64)
        agu_abs = Signal(33)
        m.d.comb += [agu.eq(self.a + self.off.as_signed()),
                     agu_abs.eq(self.pkt_lo + (Mux(self.is_ldind, self.a[0:32], 0)
                                               + self.imm)[0:32])]
        agu_addr = Mux(self.is_ldabs, agu_abs[0:32], agu[0:32])
        agu_end = Signal(33)
        m.d.comb += agu_end.eq(agu_addr + nbytes)
        g = self.agu
        m.d.comb += [g.rdy.eq(1), g.addr.eq(agu_addr), g.end.eq(agu_end[0:32]),
                     g.ecarry.eq(agu_end[32]), g.ecross.eq(agu_end[28:32] != agu_addr[28:32]),
                     g.ahz.eq(Mux(self.is_ldabs, ~agu_abs[32], agu[32:64] == 0))]

        # ---- X: the window check, on the registered address and end
        xa = self.x_addr
        hiok = Signal()
        m.d.comb += hiok.eq(Mux(xa.offneg, Mux(xa.carry, xa.ahz, xa.ah1),
                                Mux(xa.carry, xa.ahm, xa.ahz)))
        nib = xa.addr[28:32]
        end28 = Cat(xa.end[0:28], xa.ecross)
        mend = Cat(xa.end, xa.ecarry)

        def in_win(base, length):
            return (nib == base >> 28) & (end28 <= length)
        m.d.comb += self.win_ok.eq(hiok & (
            in_win(memmap.STACK_BASE, memmap.STACK_SIZE)
            | (in_win(memmap.CTX_BASE, self.ctx_len) & ~self.is_store & ~self.is_atomic)
            | in_win(memmap.MAP_BASE, self.map_len)
            | ((xa.addr >= self.pkt_lo) & (mend <= self.pkt_hi))))

        # ---- X: atomics read in phase 0 and write in phase 1; the old value is ld_q in
        # phase 1's first cycle and held in at_old_r after it
        at_old_r = Signal(64)
        at_old = self.at_old
        m.d.comb += at_old.eq(Mux(self.at_p1_first, self.ld_q, at_old_r))
        m.d.sync += at_old_r.eq(at_old)
        aimm = self.imm[0:8]
        m.d.comb += self.cmpxchg.eq(self.is_atomic & (aimm == isa.BPF_CMPXCHG))
        vmask = Mux(self.size == 3, (1 << 64) - 1, M32)
        b, at_new = self.b, self.wdata
        # the store data of every store: other kinds than atomics take the xchg case (b)
        with m.Switch(Mux(self.is_atomic, aimm & 0xF0, isa.BPF_XCHG & 0xF0)):
            with m.Case(isa.BPF_ADD):
                m.d.comb += at_new.eq(at_old + b)
            with m.Case(isa.BPF_OR):
                m.d.comb += at_new.eq(at_old | b)
            with m.Case(isa.BPF_AND):
                m.d.comb += at_new.eq(at_old & b)
            with m.Case(isa.BPF_XOR):
                m.d.comb += at_new.eq(at_old ^ b)
            with m.Default():       # xchg, cmpxchg
                m.d.comb += at_new.eq(b)
        # a failed cmpxchg writes the old value back (under lock, invisible): finishing early
        # would make X's end depend on read data
        with m.If(self.cmpxchg & (at_old != (self.r0 & vmask))):
            m.d.comb += at_new.eq(at_old)

        # ---- W: size, sign and ld_abs byte order
        wl, ld_q, w_data = self.w_load, self.ld_q, self.w_data
        with m.Switch(wl.size):
            with m.Case(0):
                m.d.comb += w_data.eq(Mux(wl.sx, ld_q[0:8].as_signed(), ld_q[0:8]))
            with m.Case(1):
                m.d.comb += w_data.eq(Mux(wl.sx, ld_q[0:16].as_signed(),
                                          Mux(wl.abs, bswap(ld_q, 2), ld_q[0:16])))
            with m.Case(2):
                m.d.comb += w_data.eq(Mux(wl.sx, ld_q[0:32].as_signed(),
                                          Mux(wl.abs, bswap(ld_q, 4), ld_q[0:32])))
            with m.Default():
                m.d.comb += w_data.eq(ld_q)
        return m
