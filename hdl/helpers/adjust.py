"""bpf_xdp_adjust_head / adjust_meta / adjust_tail: the packet pointers moved within the
kernel's limits and errors (offsets in the packet buffer)."""
from __future__ import annotations

from amaranth import *

from bpfpga import memmap

XDP_FRAME_SIZE = 40     # the kernel's struct xdp_frame, kept in the headroom
ETH_HLEN = 14


def add_states(u):
    """AH0 .. AT0 into the helper unit's FSM (``u``: hdl/helpers_hw.py HelperContext), the
    states of the helpers built (``u.hs``); adjust_head moves the metadata with the data
    byte by byte (MM_RD / MM_WR, only with adjust_meta), adjust_tail zeroes a grown tail
    with the unit's copy routine."""
    m, a2, PW = u.m, u.a2, u.PW
    data, data_meta, data_end = u.data, u.data_meta, u.data_end
    head, meta, tail = u.H_ADJUST_HEAD in u.hs, u.H_ADJUST_META in u.hs, u.H_ADJUST_TAIL in u.hs
    # a delta beyond +-2**(PW+1) moves any pointer out of the buffer: -EINVAL from every
    # check below, so it is caught first
    delta = Signal(signed(PW + 3))
    dbig = (a2[PW + 1:32] != 0) & (a2[PW + 1:32] != (1 << (31 - PW)) - 1)
    m.d.comb += delta.eq(a2[0:PW + 2].as_signed())
    metalen = Signal(8)
    if meta:
        m.d.comb += metalen.eq(data - data_meta)
    mm_i = Signal(8)
    if head:
        with m.State("AH0"):
            nd = Signal(signed(PW + 3))
            m.d.comb += nd.eq(data + delta)
            frame_end = metalen + XDP_FRAME_SIZE
            with m.If(dbig | (nd < frame_end) | (nd > data_end - ETH_HLEN)):
                u.finish(u.neg(u.EINVAL))
            with m.Elif(metalen != 0):      # (never without adjust_meta)
                if meta:
                    m.d.sync += mm_i.eq(0)
                    m.next = "MM_RD"
            with m.Else():
                m.next = "AH_SET"
    # move the metadata with the data (byte by byte, in the safe direction)
    mm_idx = Mux(delta < 0, mm_i, metalen - 1 - mm_i)
    mm_src = Signal(PW)
    m.d.comb += mm_src.eq(data_meta + mm_idx)
    if meta and head:
        with m.State("MM_RD"):
            with m.If(mm_i >= metalen):
                m.next = "AH_SET"
            with m.Else():
                with m.If(u.access(memmap.PKT_BASE | mm_src, 0)):
                    m.d.sync += u.tmp.eq(u.bus.rdata)     # (a byte write: low byte)
                    m.next = "MM_WR"
        with m.State("MM_WR"):
            with m.If(u.access(memmap.PKT_BASE | (mm_src + delta)[0:PW], 0, 1, u.tmp)):
                m.d.sync += mm_i.eq(mm_i + 1)
                m.next = "MM_RD"
    if head:
        with m.State("AH_SET"):
            m.d.sync += [data.eq(data + delta), data_meta.eq(data_meta + delta)]
            u.finish(0)
    if meta:
        with m.State("AM0"):
            nm = Signal(signed(PW + 3))
            ml = Signal(signed(PW + 3))
            m.d.comb += [nm.eq(data_meta + delta), ml.eq(data - nm)]
            with m.If(dbig | (nm < XDP_FRAME_SIZE) | (nm > data)):
                u.finish(u.neg(u.EINVAL))
            with m.Elif((ml[0:2] != 0) | (ml > 32)):
                u.finish(u.neg(u.EACCES))
            with m.Else():
                m.d.sync += data_meta.eq(nm)
                u.finish(0)
    if tail:
        with m.State("AT0"):
            ne = Signal(signed(PW + 3))
            m.d.comb += ne.eq(data_end + delta)
            with m.If(dbig | (ne > u.hard_end) | (ne < data + ETH_HLEN)):
                u.finish(u.neg(u.EINVAL))
            with m.Elif(delta > 0):
                m.d.sync += [u.cp_dst.eq(u.data_end_port), u.cp_len.eq(delta), u.cp_zero.eq(1),
                             u.ret.eq(u.RET_ACK), data_end.eq(ne)]
                u.set_res(0)
                m.next = "CP_WR"
            with m.Else():
                m.d.sync += data_end.eq(ne)
                u.finish(0)
