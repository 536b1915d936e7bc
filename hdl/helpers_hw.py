"""The helper unit of one core: every XDP helper bpfpga supports, in hardware.

The CPU raises ``helper.req`` and waits; the unit then owns the core's data bus (the engine
multiplexes its ``bus`` onto the core's window router while ``req`` is high), reads keys and
values where the program keeps them (stack, packet, map memory), works on map memory through
the shared arbiter (holding ``lock`` for a whole map operation, so two cores never interleave
an update), and acks with r0. It also owns the packet pointers (data, data_end, data_meta)
that xdp_adjust_head/meta/tail move, and records tail-call and redirect requests for the lane.

Semantics follow sim/xdp.py and sim/maps.py (the kernel's, see docs/xdp.md); hash maps are
open-addressing tables in the layout of compiler/link.py's hw_layout.
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga import memmap, traps
from bpfpga.hdl import control as C
from bpfpga.hdl.bus import DataBusSignature, HelperSignature
from bpfpga.hdl import layouts
from bpfpga.hdl.config import HELPERS
from bpfpga.hdl.helpers import adjust, csum_diff
from bpfpga.hdl.maps_hw import hdl_hash_final
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_DEVMAP,
                        BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_LRU_HASH,
                        BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
                        BPF_MAP_TYPE_HASH_OF_MAPS, BPF_MAP_TYPE_PERCPU_HASH,
                        BPF_MAP_TYPE_PROG_ARRAY, BPF_F_BROADCAST, REDIRECT_ACTION_MASK,
                        REDIRECT_MAP_FLAGS)

M64 = (1 << 64) - 1
EINVAL, ENOENT, E2BIG, EEXIST, EACCES = 22, 2, 7, 17, 13
TAILROOM = 320
MAX_TAIL_CALLS = 33

# helper ids (enum bpf_func_id)
H_LOOKUP, H_UPDATE, H_DELETE, H_KTIME, H_PRANDOM, H_SMP_ID = 1, 2, 3, 5, 7, 8
H_TAIL_CALL, H_REDIRECT, H_CSUM_DIFF = 12, 23, 28
H_ADJUST_HEAD, H_REDIRECT_MAP, H_ADJUST_META, H_ADJUST_TAIL, H_KTIME_BOOT = 44, 51, 54, 65, 125
H_TRACE = 6
SUPPORTED = HELPERS         # (every helper the unit can be built with; hdl/config.py)
assert {H_LOOKUP, H_UPDATE, H_DELETE, H_KTIME, H_PRANDOM, H_SMP_ID, H_TAIL_CALL, H_REDIRECT,
        H_CSUM_DIFF, H_ADJUST_HEAD, H_REDIRECT_MAP, H_ADJUST_META, H_ADJUST_TAIL,
        H_KTIME_BOOT, H_TRACE} == set(HELPERS)
HASH_TYPES = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_HASH,
              BPF_MAP_TYPE_LRU_PERCPU_HASH)

# trace_printk format parser states (bpfpga/printk.py is the same language in Python)
TP_LIT, TP_PCT, TP_FLAGS, TP_WIDTH, TP_LONG, TP_PTR = range(6)

# where a shared routine (copy / zero) returns to
RET_ACK, RET_INS_VAL, RET_INS_STATE, RET_MM_DONE, RET_TAIL_DONE = range(5)


class HelperContext(SimpleNamespace):
    """What a sub-unit (hdl/helpers/) reaches of the unit: the module and the helper's
    arguments, its bus ``access``, the window check (``win_ok``, its result ``wo_ok``), the
    copy routine's pointers (``cp_*``), the packet pointers, ``finish`` / ``fault`` /
    ``set_res`` for r0, and the constants they test."""


def _neg(e):
    return (-e) & M64


class HelperUnit(wiring.Component):
    def __init__(self, cfg, core: int):
        self.cfg = cfg
        self.core = core
        self.kw = (cfg.max_key + 7) // 8
        # a descriptor is read as one 256-bit word, or (desc_bram) as four 64-bit words from
        # a block RAM two DP16KD wide, three cycles more per map operation
        self.desc_words = cfg.desc_words
        super().__init__({
            "helper": In(HelperSignature),
            "bus": Out(DataBusSignature),
            "desc_addr": Out(range(cfg.max_maps * self.desc_words)),
            "desc_data": In(256 // self.desc_words),
            "nmaps": In(8),
            "map_len": In(29),
            "cpu_r0": In(64),
            "ktime": In(64),
            "seed_we": In(1),
            "seed": In(32),
            # per packet
            "new_packet": In(1),
            "pkt_len": In(16),
            "data": Out(32),
            "data_end": Out(32),
            "data_meta": Out(32),
            "tail_pending": Out(1),
            "tail_prog": Out(16),
            "tail_clear": In(1),
            "tailcalls": Out(8),
            "redirect": Out(32),
            # trace_printk: a record for the engine's trace FIFO (the engine adds the frame's
            # seq); tr_ack when it was written or dropped (FIFO full)
            "tr_req": Out(1),
            "tr_rec": Out(layouts.TRACE_REC),
            "tr_ack": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        h, bus = self.helper, self.bus
        KW = self.kw
        # what is built (hdl/config.py): a helper not built traps as an unknown one
        # (TRAP_HELPER), a map operation on a type not built as a bad map (TRAP_HELPER_FAULT)
        hs = cfg.helper_set()
        ts = cfg.map_type_set()
        lookup, update, delete = H_LOOKUP in hs, H_UPDATE in hs, H_DELETE in hs
        mapops = lookup or update or delete
        tail, rmap = H_TAIL_CALL in hs, H_REDIRECT_MAP in hs
        arrays = [t for t in (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY) if t in ts]
        hashes = [t for t in HASH_TYPES if t in ts] if mapops else []
        # HASH_OF_MAPS: a hash probe whose found value is an inner map handle (lookup only)
        hom = lookup and BPF_MAP_TYPE_HASH_OF_MAPS in ts
        probed = hashes + ([BPF_MAP_TYPE_HASH_OF_MAPS] if hom else [])
        lru_hash = any(t in hashes for t in (BPF_MAP_TYPE_LRU_HASH,
                                             BPF_MAP_TYPE_LRU_PERCPU_HASH))
        percpu_hash = any(t in hashes for t in (BPF_MAP_TYPE_PERCPU_HASH,
                                                BPF_MAP_TYPE_LRU_PERCPU_HASH))
        lpm = lookup and BPF_MAP_TYPE_LPM_TRIE in ts
        adj_meta = H_ADJUST_META in hs      # (without it data_meta == data: no metadata)
        copy = (update and (arrays or hashes)) or H_ADJUST_TAIL in hs

        # ------------------------------------------------------------- packet pointers
        # kept as offsets in the packet buffer (PW bits; PKT_BASE is aligned far beyond it)
        PW = cfg.pkt_bytes.bit_length()
        assert memmap.PKT_BASE % (1 << PW) == 0
        data, data_end, data_meta = Signal(PW), Signal(PW), Signal(PW)
        m.d.comb += [self.data.eq(memmap.PKT_BASE | data),
                     self.data_end.eq(memmap.PKT_BASE | data_end),
                     self.data_meta.eq(memmap.PKT_BASE | data_meta)]
        hard_end = cfg.pkt_bytes - TAILROOM
        tcount = Signal(8)
        m.d.comb += self.tailcalls.eq(tcount)
        with m.If(self.new_packet):
            start = memmap.PKT_HEADROOM
            m.d.sync += [data.eq(start), data_meta.eq(start), data_end.eq(start + self.pkt_len),
                         tcount.eq(0), self.redirect.eq(0), self.tail_pending.eq(0)]
        with m.If(self.tail_clear):
            m.d.sync += self.tail_pending.eq(0)

        rng = Signal(32, init=0x2545F491)
        with m.If(self.seed_we):
            m.d.sync += rng.eq(self.seed)

        # ------------------------------------------------------------- working registers
        op = Signal(8)              # (a helper id: every supported one is below 256)
        a1, a2, a3, a4, a5 = (Signal(64, name=f"a{i}") for i in range(1, 6))
        # r0: 32 low bits and where the high 32 come from (zero, ones, res_hi, cpu_r0)
        res = Signal(32)
        res_hi = Signal(32)
        res_hk = Signal(2)
        trap = Signal(4)
        ex = Signal()
        mapn = Signal(range(cfg.max_maps))
        d = Signal(layouts.MAP_DESC)     # the map's descriptor (bpfpga/records.py MAP_DESC)
        dtype = d.type
        ksz = d.key_size
        vsz = d.value_size
        maxe = d.max_entries
        base = d.base
        stride = d.stride
        kstride = d.key_stride
        cpustride = d.cpu_stride
        kbase = d.key_base
        meta = d.meta
        mask = d.mask
        # the key, one 64-bit word per entry, in LUT RAM (read and written at ki only); its
        # low 32 bits also in k0 (an array index, an LPM prefix length)
        kmem = Memory(shape=64, depth=max(2, KW), init=[])
        m.submodules.kmem = kmem
        k_rd = kmem.read_port(domain="comb")
        k_wr = kmem.write_port()
        k0 = Signal(32)
        ki = Signal(range(KW + 1))
        hacc = Signal(64)
        SW = max(8, cfg.map_bytes.bit_length())  # a slot index (no map has more slots)
        s = Signal(SW)              # slot (the hash probe, an array index, the LPM scan)
        probes = Signal(SW)
        found = Signal()
        free = Signal(SW)
        free_ok = Signal()
        st = Signal(8)
        cnt = Signal(SW)            # a map's entry count (at most its slots)
        tmp = Signal(64)
        imode = Signal(2)           # insert: 0 new, 1 new + evict, 2 replace in place
        ret = Signal(3)
        cp_src = Signal(32)
        cp_dst = Signal(32)
        cp_len = Signal(16)
        cp_zero = Signal()
        lpm_p = Signal(12)
        lpm_ok = Signal()
        best_ok = Signal()
        best_p = Signal(12)
        best_i = Signal(SW)
        cpu_i = Signal(8)
        lock = Signal()
        m.d.comb += bus.lock.eq(lock)
        m.d.comb += [k_rd.addr.eq(ki), k_wr.addr.eq(ki)]

        kwords = (ksz + 7) >> 3
        idx32 = k0
        MAPB = memmap.MAP_BASE

        # x < max_entries for a u32 x: every map's entries fit in map memory, so max_entries
        # is below 2**SW and so is any x it admits
        def below_maxe(x):
            return (x[SW:32] == 0) & (x[0:SW] < maxe[0:SW])

        # One address unit for the slot s: its value (of core va_cpu: this core unless a
        # state says otherwise), its key word ki, its state byte. Every map state addresses
        # through s, so there is one multiplier-adder of each kind, not one per state.
        va_cpu = Signal(range(cfg.cores + 1))
        m.d.comb += va_cpu.eq(self.core)
        va = Signal(32)
        ka = Signal(32)
        sa = Signal(32)
        ma = Signal(32)
        # (offsets in map memory at the width its DualBankRAM decodes, hdl/bus.py: it wraps
        # beyond, and every slot of a map lies below map_bytes)
        MW = max(SW, 4 + (cfg.map_bytes // 8 - 1).bit_length())
        assert MAPB % (1 << MW) == 0
        m.d.comb += [va.eq(MAPB | (base + s * stride + cpustride * va_cpu)[:MW]),
                     ka.eq(MAPB | (kbase + s * kstride + (ki << 3))[:MW]),
                     sa.eq(MAPB | (meta + 8 + s)[:MW]),
                     ma.eq(MAPB | meta[0:MW])]
        cnt_new = Signal(SW)
        m.d.comb += cnt_new.eq(cnt + Mux(op == H_DELETE, (1 << SW) - 1, 1))

        def value_addr(cpu=None):
            if cpu is not None:
                m.d.comb += va_cpu.eq(cpu)
            return va

        # One window check (is [addr, addr + n) readable?), its operands chosen by the state
        # that asks: a state asks at most once. addr is 32 bits plus `hz` (the upper word is
        # zero); n < 2**16 wherever it is asked (sizes checked before, or a 16-bit size).
        wo_a = Signal(32)
        wo_hz = Signal()
        wo_n = Signal(16)
        wo_ok = Signal()
        wo_end = Signal(29)
        wo_nib = wo_a[28:32]
        m.d.comb += [
            wo_end.eq(wo_a[0:28] + wo_n),
            wo_ok.eq(wo_hz & (
                ((wo_nib == memmap.STACK_BASE >> 28) & (wo_end <= memmap.STACK_SIZE))
                | ((wo_nib == memmap.CTX_BASE >> 28) & (wo_end <= 24))
                | ((wo_nib == memmap.MAP_BASE >> 28) & (wo_end <= self.map_len))
                # (packet offsets are PW bits: PW-bit compares and zero tests above them)
                | ((wo_nib == memmap.PKT_BASE >> 28) & (wo_a[PW:28] == 0)
                   & (wo_a[0:PW] >= data_meta) & (wo_end[PW:29] == 0)
                   & (wo_end[0:PW] <= data_end))))]

        def win_ok(addr, n, hz=None):
            m.d.comb += [wo_a.eq(addr[0:32]), wo_n.eq(n),
                         wo_hz.eq((addr[32:64] == 0) if hz is None else hz)]
            return wo_ok

        # a handle is MAP_HANDLE_BASE + 256 n, n < nmaps (< 256): with the base aligned to
        # 2**16, bit fields, no subtraction and no 32-bit compare
        assert memmap.MAP_HANDLE_BASE % (1 << 16) == 0 and memmap.MAP_HANDLE_STRIDE == 256

        def handle_ok(v):
            return ((v[32:64] == 0) & (v[16:32] == memmap.MAP_HANDLE_BASE >> 16)
                    & (v[0:8] == 0) & (v[8:16] < self.nmaps)), v[8:8 + len(mapn)]

        # (the upper half of wdata matters to 8-byte writes only: a key word or a copied
        # chunk; it is driven outside the states, the states drive the lower half)
        def access(addr, size, we=0, wdata=0):
            m.d.comb += [bus.valid.eq(1), bus.addr.eq(addr), bus.size.eq(size), bus.we.eq(we),
                         bus.wdata[0:32].eq(Value.cast(wdata)[0:32])]
            return bus.ready

        def set_res(value, hi=None):
            if isinstance(value, int):
                value &= M64
                assert value >> 32 in (0, M64 >> 32)
                m.d.sync += [res.eq(value & 0xFFFF_FFFF), res_hk.eq(1 if value >> 63 else 0)]
            elif hi is None:
                m.d.sync += [res.eq(value), res_hk.eq(0)]
            elif hi is self.cpu_r0:
                m.d.sync += [res.eq(value), res_hk.eq(3)]
            else:
                m.d.sync += [res.eq(value), res_hi.eq(hi), res_hk.eq(2)]

        def finish(value, hi=None):
            set_res(value, hi)
            m.next = "ACK"

        # update: the program's value (at r3) into the slot's, then on to `back` (r0 = 0)
        def copy_value_in(back):
            m.d.sync += [cp_src.eq(a3), cp_dst.eq(value_addr()), cp_len.eq(vsz),
                         cp_zero.eq(0), ret.eq(back)]
            set_res(0)
            m.next = "CP_RD"

        def fault(code):
            m.d.sync += trap.eq(code)
            m.next = "ACK"

        # byte mask of key word ki (bytes beyond the key read as zero)
        # (ki is the only word index asked for: one mask, eight byte compares)
        km_nb = Signal(9)
        km = Signal(64)
        m.d.comb += [km_nb.eq(ksz - (ki << 3)),
                     km.eq(Cat(*[Mux(km_nb[3:9] != 0, 0xFF, Mux(km_nb[0:3] > b, 0xFF, 0))
                                 for b in range(8)]))]

        def kmask(w):
            assert w is ki
            return km

        # copy chunk size for cp_len remaining
        chunk = Signal(2)
        with m.If(cp_len >= 8):
            m.d.comb += chunk.eq(3)
        with m.Elif(cp_len >= 4):
            m.d.comb += chunk.eq(2)
        with m.Elif(cp_len >= 2):
            m.d.comb += chunk.eq(1)
        with m.Else():
            m.d.comb += chunk.eq(0)
        chunk_n = Signal(4)
        m.d.comb += chunk_n.eq(1 << chunk)
        # cp_src / cp_dst are also the pointers of the key read (step 8), csum_diff's words
        # (4) and trace_printk's format and %s bytes (1): one incrementer each, one bus
        # address source each, for all of them
        cp_step = Signal(4)
        m.d.comb += cp_step.eq(chunk_n)
        cp_src_next = cp_src + cp_step
        cp_dst_next = cp_dst + cp_step
        cp_len_next = cp_len - cp_step

        # hash of the key words read so far
        hstep_t = Signal(64)
        hstep = Signal(64)
        rword = Signal(64)
        m.d.comb += [hstep_t.eq(hacc ^ rword),
                     hstep.eq(hstep_t.rotate_left(29) ^ (hstep_t + (hstep_t >> 11))[:64])]
        hfin = hdl_hash_final(m, hacc)

        # LPM: byte masks of the compared key word from the stored prefix length
        # (bits covered in lane l: q - 8*l, q = plen + 32 - 64*word, the 4-byte prefix-length
        # field first; only plen <= lpm_p <= 2008 matters, other entries do not match anyway)
        def lpm_mask(word, plen):
            q = Signal(signed(14))
            m.d.comb += q.eq(plen[0:12] + 32 - (word << 6))
            qh = q[3:14].as_signed()
            lanes = []
            for lane in range(8):
                mb = Mux(qh > lane, 0xFF, Mux(qh == lane, (Const(0xFF00, 16) >> q[0:3])[0:8], 0))
                if lane < 4:
                    mb = Mux(word == 0, 0, mb)
                lanes.append(mb)
            return Cat(*lanes)

        ktime_r = self.ktime

        # trace_printk: parse the format as the kernel checks it, count the text's length
        tp_kt = Signal(64)           # ktime at the call
        tp_ch = Signal(8)
        tp_st = Signal(3)
        tp_n = Signal(2)             # conversions done
        tp_len = Signal(32)          # text length so far
        tp_w = Signal(32)            # field width
        tp_fl = Signal(3)            # flags: 0 '-', 1 '+', 2 ' '
        tp_l = Signal(2)             # 'l' count
        tp_re = Signal()             # the byte after %p is itself still to be parsed
        tp_v = Signal(64)            # number: magnitude
        tp_p = Signal(68)            # number: the next power of the base (10**20 < 2**67)
        tp_hex = Signal()
        tp_nd = Signal(5)            # digits so far
        tp_x = Signal(2)             # characters besides the digits (sign, "0x")
        tp_cnt = Signal(8)           # characters of the conversion (before padding)
        tp_sphz = Signal()           # %s: the pointer's upper word is zero
        targ = Array([a3, a4, a5, a5])[tp_n]
        # the number of a conversion: loaded by TP_CH (num_ld; %p: the raw value, %d/%i:
        # the magnitude, else the 32- or 64-bit value), a power of the base a TP_NUM cycle
        num_ld, num_ptr, num_sgn, num_hex = Signal(), Signal(), Signal(), Signal()
        num_step = Signal()
        t_arg32 = Mux(tp_l != 0, targ, targ[0:32])
        t_neg = Mux(tp_l != 0, targ[63], targ[31])
        t_negv = Signal(64)
        m.d.comb += t_negv.eq(-t_arg32)           # one negation for 32 and 64 bits
        t_mag = Mux(tp_l != 0, t_negv, t_negv[0:32])
        with m.If(num_ld):
            m.d.sync += [tp_v.eq(Mux(num_ptr, targ, Mux(num_sgn & t_neg, t_mag, t_arg32))),
                         tp_p.eq(Mux(num_ptr | num_hex, 16, 10)), tp_hex.eq(num_ptr | num_hex),
                         tp_nd.eq(1),
                         tp_x.eq(Mux(num_ptr, 2, Mux(num_sgn, t_neg | tp_fl[1] | tp_fl[2], 0)))]
        with m.Elif(num_step):
            m.d.sync += [tp_nd.eq(tp_nd + 1),
                         tp_p.eq(Mux(tp_hex, tp_p << 4, (tp_p << 3) + (tp_p << 1)))]
        # (the lane adds the frame's seq)
        tr = self.tr_rec
        m.d.comb += [tr.fmt.eq(a1[0:32]), tr.fmt_size.eq(a2[0:13]), tr.core.eq(self.core),
                     tr.len.eq(tp_len), tr.ktime.eq(tp_kt), tr.arg0.eq(a3), tr.arg1.eq(a4),
                     tr.arg2.eq(a5)]

        res_hi_out = Signal(32)
        with m.Switch(res_hk):
            with m.Case(1):
                m.d.comb += res_hi_out.eq(0xFFFF_FFFF)
            with m.Case(2):
                m.d.comb += res_hi_out.eq(res_hi)
            with m.Case(3):
                m.d.comb += res_hi_out.eq(self.cpu_r0[32:64])

        with m.FSM(name="helper") as fsm:
            with m.State("IDLE"):
                m.d.sync += [trap.eq(0), ex.eq(0), lock.eq(0)]
                with m.If(h.req):
                    m.d.sync += [op.eq(h.id), a1.eq(h.arg1), a2.eq(h.arg2), a3.eq(h.arg3),
                                 a4.eq(h.arg4), a5.eq(h.arg5)]
                    with m.Switch(h.id):
                        # helpers on a map (its handle in r1, tail_call's in r2): its
                        # descriptor first, the map locked for the whole operation
                        for ids, handle in (((H_LOOKUP, H_UPDATE, H_DELETE, H_REDIRECT_MAP),
                                             h.arg1), ((H_TAIL_CALL,), h.arg2)):
                            if ids := [x for x in ids if x in hs]:
                                with m.Case(*ids):
                                    ok, n = handle_ok(handle)
                                    with m.If(ok):
                                        m.d.sync += [mapn.eq(n), lock.eq(1)]
                                        m.next = "DESC0"
                                    with m.Else():
                                        fault(traps.TRAP_HELPER_FAULT)
                        if ids := [x for x in (H_KTIME, H_KTIME_BOOT) if x in hs]:
                            with m.Case(*ids):
                                finish(ktime_r[0:32], ktime_r[32:64])
                        if H_PRANDOM in hs:
                            with m.Case(H_PRANDOM):
                                x1 = rng ^ (rng << 13)[:32]
                                x2 = x1 ^ (x1 >> 17)
                                x3 = x2 ^ (x2 << 5)[:32]
                                m.d.sync += rng.eq(x3)
                                finish(x3)
                        if H_SMP_ID in hs:
                            with m.Case(H_SMP_ID):
                                finish(self.core)
                        if H_REDIRECT in hs:
                            with m.Case(H_REDIRECT):
                                with m.If(h.arg2 != 0):
                                    finish(0)
                                with m.Else():
                                    m.d.sync += self.redirect.eq(h.arg1[0:32])
                                    finish(4)
                        # (the rest start in their first state)
                        for hid, first in ((H_CSUM_DIFF, "CS0"), (H_ADJUST_HEAD, "AH0"),
                                           (H_ADJUST_META, "AM0"), (H_ADJUST_TAIL, "AT0"),
                                           (H_TRACE, "TP0")):
                            if hid in hs:
                                with m.Case(hid):
                                    if hid == H_TRACE:
                                        m.d.sync += tp_kt.eq(ktime_r)
                                    m.next = first
                        with m.Default():
                            fault(traps.TRAP_HELPER)

            with m.State("ACK"):
                m.d.comb += [h.ack.eq(1), h.r0.eq(Cat(res, res_hi_out)), h.trap.eq(trap),
                             h.exit.eq(ex)]
                m.d.sync += lock.eq(0)
                m.next = "IDLE"

            # --------------------------------------------------------- descriptors
            DW = self.desc_words
            dk = Signal(range(DW), name="desc_k")     # the descriptor word being read
            m.d.comb += self.desc_addr.eq(Cat(dk, mapn) if DW > 1 else mapn)
            if mapops or tail or rmap:
                # (the read port is synchronous: the word asked for in one cycle is on
                # desc_data in the next)
                with m.State("DESC0"):
                    if DW > 1:
                        m.d.sync += dk.eq(1)
                    m.next = "DESC1"
                with m.State("DESC1"):
                    if DW == 1:
                        m.d.sync += [d.eq(self.desc_data), ki.eq(0),
                                     hacc.eq(layouts.MAP_DESC(self.desc_data).key_size)]
                        m.next = "DISPATCH"
                    else:
                        # word dk - 1 arrives (dk wraps to 0 as the last one is asked for)
                        m.d.sync += d.as_value().word_select((dk - 1)[0:len(dk)], 256 // DW).eq(
                            self.desc_data)
                        with m.If(dk == 0):
                            m.d.sync += [ki.eq(0), hacc.eq(d.key_size)]
                            m.next = "DISPATCH"
                        with m.Else():
                            m.d.sync += dk.eq(dk + 1)
                with m.State("DISPATCH"):
                    with m.Switch(op):
                        if tail:
                            with m.Case(H_TAIL_CALL):
                                with m.If(dtype != BPF_MAP_TYPE_PROG_ARRAY):
                                    fault(traps.TRAP_HELPER_FAULT)
                                with m.Elif(~below_maxe(a3) | (tcount >= MAX_TAIL_CALLS)):
                                    finish(self.cpu_r0[0:32], self.cpu_r0)
                                with m.Else():
                                    m.d.sync += s.eq(a3[0:32])
                                    m.next = "TC1"
                        if rmap:
                            with m.Case(H_REDIRECT_MAP):
                                # as the kernel's __bpf_xdp_redirect_map: other flags
                                # abort; BROADCAST redirects whether the key exists or not
                                # (to no single port: redirect 0, the host ring)
                                devmap = dtype == BPF_MAP_TYPE_DEVMAP
                                dev_ok = Const(REDIRECT_ACTION_MASK | REDIRECT_MAP_FLAGS[
                                    BPF_MAP_TYPE_DEVMAP], 64)
                                with m.If((a3 & ~Mux(devmap, dev_ok, REDIRECT_ACTION_MASK))
                                          != 0):
                                    finish(0)
                                with m.Elif(devmap & a3[BPF_F_BROADCAST.bit_length() - 1]):
                                    m.d.sync += self.redirect.eq(0)
                                    finish(4)
                                with m.Elif(~devmap | ~below_maxe(a2)):
                                    finish(a3[0:2])
                                with m.Else():
                                    m.d.sync += s.eq(a2[0:32])
                                    m.next = "RM1"
                        if mapops:
                            with m.Default():
                                with m.If(~win_ok(a2, ksz)):
                                    fault(traps.TRAP_MEM)
                                with m.Else():
                                    m.d.sync += cp_src.eq(a2[0:32])
                                    m.next = "RDKEY"

            # --------------------------------------------------------- tail call
            if tail:
                with m.State("TC1"):
                    with m.If(access(value_addr(0), 3)):
                        with m.If(bus.rdata == 0):
                            finish(self.cpu_r0[0:32], self.cpu_r0)
                        with m.Else():
                            m.d.sync += [self.tail_prog.eq(bus.rdata), self.tail_pending.eq(1),
                                         tcount.eq(tcount + 1), ex.eq(1)]
                            finish(self.cpu_r0[0:32], self.cpu_r0)

            # --------------------------------------------------------- redirect_map (DEVMAP)
            if rmap:
                with m.State("RM1"):
                    with m.If(access(sa, 0)):
                        with m.If(bus.rdata[0:8] == C.SLOT_VALID):
                            m.next = "RM2"
                        with m.Else():
                            finish(a3[0:2])
                with m.State("RM2"):
                    with m.If(access(value_addr(0), 2)):
                        m.d.sync += self.redirect.eq(bus.rdata[0:32])
                        finish(4)

            # --------------------------------------------------------- key
            if mapops:
                with m.State("RDKEY"):
                    m.d.comb += cp_step.eq(8)
                    with m.If(access(cp_src, 3)):
                        mk = kmask(ki)
                        m.d.comb += rword.eq(bus.rdata & mk)
                        m.d.comb += [k_wr.en.eq(1), k_wr.data.eq(rword)]
                        m.d.sync += [hacc.eq(hstep), ki.eq(ki + 1), cp_src.eq(cp_src_next)]
                        with m.If(ki == 0):
                            # an array index (hash maps: KEYED sets the home slot)
                            m.d.sync += [s.eq(rword[0:32]), k0.eq(rword[0:32])]
                        with m.If(ki + 1 >= kwords):
                            m.next = "KEYED"
                with m.State("KEYED"):
                    win_ok(a3, vsz)
                    m.d.sync += [s.eq(hfin & mask), probes.eq(0), found.eq(0), free_ok.eq(0),
                                 ki.eq(0)]
                    with m.Switch(dtype):
                        if arrays:
                            with m.Case(*arrays):
                                with m.Switch(op):
                                    with m.Case(H_LOOKUP):
                                        with m.If(below_maxe(idx32)):
                                            finish(value_addr())
                                        with m.Else():
                                            finish(0)
                                    if update:
                                        with m.Case(H_UPDATE):
                                            with m.If((a4[3:64] != 0) | (a4[0:2] == 3)):
                                                finish(_neg(EINVAL))
                                            with m.Elif(~below_maxe(idx32)):
                                                finish(_neg(E2BIG))
                                            with m.Elif(a4[0]):
                                                finish(_neg(EEXIST))
                                            with m.Elif(~wo_ok):
                                                fault(traps.TRAP_MEM)
                                            with m.Else():
                                                copy_value_in(RET_ACK)
                                    with m.Default():
                                        finish(_neg(EINVAL))
                        # slot maps a lookup reads in a state of their own
                        for t, first in ((BPF_MAP_TYPE_ARRAY_OF_MAPS, "AOM"),
                                         (BPF_MAP_TYPE_DEVMAP, "DEVL")):
                            if t not in ts:
                                continue
                            with m.Case(t):
                                with m.If(op != H_LOOKUP):
                                    finish(_neg(EINVAL))
                                with m.Elif(below_maxe(idx32)):
                                    if lookup:
                                        m.d.sync += s.eq(idx32)
                                        m.next = first
                                with m.Else():
                                    finish(0)
                        if BPF_MAP_TYPE_PROG_ARRAY in ts:
                            with m.Case(BPF_MAP_TYPE_PROG_ARRAY):
                                with m.If(op == H_LOOKUP):
                                    finish(0)
                                with m.Else():
                                    finish(_neg(EINVAL))
                        if hom:
                            with m.Case(BPF_MAP_TYPE_HASH_OF_MAPS):
                                with m.If(op != H_LOOKUP):
                                    finish(_neg(EINVAL))
                                with m.Else():
                                    m.next = "P_ST"
                        if hashes:
                            with m.Case(*hashes):
                                with m.If((op == H_UPDATE) & (((a4 & ~Const(7, 64)) != 0)
                                                              | (a4[0:2] == 3))):
                                    finish(_neg(EINVAL))
                                with m.Else():
                                    m.next = "P_ST"
                        if lpm:
                            with m.Case(BPF_MAP_TYPE_LPM_TRIE):
                                with m.If(op == H_LOOKUP):
                                    m.d.sync += [s.eq(0), best_ok.eq(0)]
                                    m.next = "LPM_CNT"
                                with m.Else():
                                    fault(traps.TRAP_HELPER_FAULT)
                        with m.Default():
                            fault(traps.TRAP_HELPER_FAULT)

            if lookup and (BPF_MAP_TYPE_ARRAY_OF_MAPS in ts or hom):
                with m.State("AOM"):
                    with m.If(access(value_addr(0), 3)):
                        finish(bus.rdata[0:32], bus.rdata[32:64])
            if lookup and BPF_MAP_TYPE_DEVMAP in ts:
                with m.State("DEVL"):
                    va0 = value_addr(0)     # (not under the bus's ready: no comb loop)
                    with m.If(access(sa, 0)):
                        finish(Mux(bus.rdata[0:8] == C.SLOT_VALID, va0, 0))

            # --------------------------------------------------------- hash probe
            if probed:
                with m.State("P_ST"):
                    with m.If(access(sa, 0)):
                        v = bus.rdata[0:8]
                        m.d.sync += ki.eq(0)
                        with m.If(v == C.SLOT_VALID):
                            m.next = "P_KEY"
                        with m.Elif(v == C.SLOT_EMPTY):
                            with m.If(~free_ok):
                                m.d.sync += [free.eq(s), free_ok.eq(1)]
                            m.next = "P_END"
                        with m.Else():
                            with m.If(~free_ok):
                                m.d.sync += [free.eq(s), free_ok.eq(1)]
                            m.next = "P_NEXT"
                with m.State("P_KEY"):
                    with m.If(access(ka, 3)):
                        mk = kmask(ki)
                        with m.If((bus.rdata & mk) != k_rd.data):
                            m.next = "P_NEXT"
                        with m.Elif(ki + 1 >= kwords):
                            m.d.sync += found.eq(1)
                            m.next = "P_END"
                        with m.Else():
                            m.d.sync += ki.eq(ki + 1)
                with m.State("P_NEXT"):
                    m.d.sync += [probes.eq(probes + 1), s.eq((s + 1) & mask)]
                    with m.If(probes >= mask[0:SW]):
                        m.next = "P_END"
                    with m.Else():
                        m.next = "P_ST"
                with m.State("P_END"):
                    win_ok(a3, vsz)
                    percpu = (dtype == BPF_MAP_TYPE_PERCPU_HASH) | (
                        dtype == BPF_MAP_TYPE_LRU_PERCPU_HASH)
                    lru = (dtype == BPF_MAP_TYPE_LRU_HASH) | (dtype == BPF_MAP_TYPE_LRU_PERCPU_HASH)
                    with m.Switch(op):
                        with m.Case(H_LOOKUP):
                            if hom:
                                # the found slot's value is the inner map's handle
                                with m.If(found & (dtype == BPF_MAP_TYPE_HASH_OF_MAPS)):
                                    m.next = "AOM"
                                with m.Else():
                                    finish(Mux(found, value_addr(), 0))
                            else:
                                finish(Mux(found, value_addr(), 0))
                        if delete and hashes:
                            with m.Case(H_DELETE):
                                with m.If(found):
                                    set_res(0)
                                    m.next = "DEL_ST"
                                with m.Else():
                                    finish(_neg(ENOENT))
                        if update and hashes:
                            with m.Case(H_UPDATE):
                                with m.If(found & (a4[0:2] == 1)):
                                    finish(_neg(EEXIST))
                                with m.Elif(found):
                                    with m.If(~wo_ok):
                                        fault(traps.TRAP_MEM)
                                    with m.Else():
                                        copy_value_in(RET_ACK)
                                with m.Elif(a4[0:2] == 2):
                                    finish(_neg(ENOENT))
                                with m.Elif(~wo_ok):
                                    fault(traps.TRAP_MEM)
                                with m.Else():
                                    m.next = "CNT_RD"
                        with m.Default():
                            finish(0)
            # insert a new key: the entry count decides between insert, evict and E2BIG
            if hashes and update:
                with m.State("CNT_RD"):
                    with m.If(access(ma, 2)):
                        m.d.sync += cnt.eq(bus.rdata[0:32])
                        lru = (dtype == BPF_MAP_TYPE_LRU_HASH) | (
                            dtype == BPF_MAP_TYPE_LRU_PERCPU_HASH)
                        with m.If(~below_maxe(bus.rdata)):
                            with m.If(~lru):
                                finish(_neg(E2BIG))
                            with m.Elif(free_ok):
                                # insert at the free slot, then evict another entry (count same)
                                m.d.sync += [s.eq(free), ki.eq(0), probes.eq(0), imode.eq(1)]
                                m.next = "INS_KEY"
                            with m.Else():
                                # every slot is taken: replace the entry at the key's home slot
                                m.d.sync += [s.eq(hfin & mask), ki.eq(0), imode.eq(2)]
                                m.next = "INS_KEY"
                        with m.Else():
                            m.d.sync += [s.eq(free), ki.eq(0), imode.eq(0)]
                            m.next = "INS_KEY"
                with m.State("INS_KEY"):
                    with m.If(access(ka, 3, 1, k_rd.data)):
                        m.d.sync += ki.eq(ki + 1)
                        with m.If(ki + 1 >= kwords):
                            m.d.sync += cpu_i.eq(0)
                            percpu = (dtype == BPF_MAP_TYPE_PERCPU_HASH) | (
                                dtype == BPF_MAP_TYPE_LRU_PERCPU_HASH)
                            with m.If(percpu if percpu_hash else 0):
                                if percpu_hash:
                                    m.next = "INS_ZERO"
                            with m.Else():
                                m.d.sync += [cp_src.eq(a3), cp_dst.eq(value_addr()),
                                             cp_len.eq(vsz), cp_zero.eq(0), ret.eq(RET_INS_STATE)]
                                m.next = "CP_RD"
            # a new per-CPU entry: every core's value zeroed, this core's written
            if percpu_hash and update:
                with m.State("INS_ZERO"):
                    with m.If(cpu_i == cfg.cores):
                        m.d.sync += [cp_src.eq(a3), cp_dst.eq(value_addr()), cp_len.eq(vsz),
                                     cp_zero.eq(0), ret.eq(RET_INS_STATE)]
                        m.next = "CP_RD"
                    with m.Else():
                        m.d.sync += [cp_dst.eq(value_addr(cpu_i)),
                                     cp_len.eq(vsz), cp_zero.eq(1), ret.eq(RET_INS_VAL),
                                     cpu_i.eq(cpu_i + 1)]
                        m.next = "CP_WR"
            if hashes and update:
                with m.State("INS_ST"):
                    with m.If(access(sa, 0, 1, C.SLOT_VALID)):
                        with m.If(imode == 0):
                            m.next = "CNT_WR"
                        with m.Elif(imode == 1):
                            m.d.sync += [free.eq(s), s.eq((s + 1) & mask), probes.eq(0)]
                            m.next = "EV_ST"
                        with m.Else():
                            finish(0)
                with m.State("CNT_WR"):
                    with m.If(access(ma, 2, 1, cnt_new)):
                        finish(0)
            # eviction (LRU maps when full): the next valid slot after the new entry
            if lru_hash and update:
                with m.State("EV_ST"):
                    with m.If(access(sa, 0)):
                        with m.If((bus.rdata[0:8] == C.SLOT_VALID) & (s != free)):
                            m.next = "EV_DEL"
                        with m.Elif(probes >= mask[0:SW]):
                            finish(0)
                        with m.Else():
                            m.d.sync += [s.eq((s + 1) & mask), probes.eq(probes + 1)]
                with m.State("EV_DEL"):
                    with m.If(access(sa, 0, 1, C.SLOT_DELETED)):
                        finish(0)
            if hashes and delete:
                with m.State("DEL_ST"):
                    with m.If(access(sa, 0, 1, C.SLOT_DELETED)):
                        m.next = "DEL_CNT"
                with m.State("DEL_CNT"):
                    with m.If(access(ma, 2)):
                        m.d.sync += cnt.eq(bus.rdata[0:32])
                        m.next = "DEL_CNT2"
                with m.State("DEL_CNT2"):
                    with m.If(access(ma, 2, 1, cnt_new)):
                        finish(0)

            # --------------------------------------------------------- LPM trie (lookups)
            if lpm:
                with m.State("LPM_CNT"):
                    with m.If(access(ma, 2)):
                        m.d.sync += [cnt.eq(bus.rdata[0:32]), ki.eq(0), lpm_ok.eq(1)]
                        dbits = ((ksz - 4) << 3)[:12]
                        m.d.sync += lpm_p.eq(Mux((k0[12:32] != 0) | (k0[0:12] > dbits), dbits,
                                                 k0[0:12]))
                        m.next = "LPM_W"
                with m.State("LPM_W"):
                    with m.If(s >= cnt):
                        m.d.sync += s.eq(best_i)
                        m.next = "LPM_END"
                    with m.Else():
                        with m.If(access(ka, 3)):
                            w = bus.rdata
                            p = Mux(ki == 0, w[0:32], tmp[0:32])
                            bm = lpm_mask(ki, p)        # 64-bit mask, one byte per lane
                            with m.If(ki == 0):
                                m.d.sync += tmp.eq(w)
                            ok = (lpm_ok & (((w ^ k_rd.data) & bm) == 0) & (p[12:32] == 0)
                                  & (p[0:12] <= lpm_p))
                            with m.If(ki + 1 >= kwords):
                                with m.If(ok & (~best_ok | (p[0:12] > best_p))):
                                    m.d.sync += [best_ok.eq(1), best_p.eq(p[0:12]), best_i.eq(s)]
                                m.d.sync += [ki.eq(0), s.eq(s + 1), lpm_ok.eq(1)]
                            with m.Else():
                                m.d.sync += [ki.eq(ki + 1), lpm_ok.eq(ok)]

                with m.State("LPM_END"):
                    finish(Mux(best_ok, value_addr(0), 0))

            # --------------------------------------------------------- copy / zero routine
            if copy:
                with m.State("CP_RD"):
                    with m.If(cp_len == 0):
                        m.next = "RET"
                    with m.Elif(cp_zero):
                        m.next = "CP_WR"
                    with m.Else():
                        with m.If(access(cp_src, chunk)):
                            m.d.sync += tmp.eq(bus.rdata)
                            m.next = "CP_WR"
                with m.State("CP_WR"):
                    with m.If(cp_len == 0):
                        m.next = "RET"
                    with m.Else():
                        with m.If(access(cp_dst, chunk, 1, Mux(cp_zero, 0, tmp))):
                            m.d.sync += [cp_src.eq(cp_src_next), cp_dst.eq(cp_dst_next),
                                         cp_len.eq(cp_len_next)]
                            m.next = "CP_RD"
                with m.State("RET"):
                    with m.Switch(ret):
                        with m.Case(RET_ACK):
                            m.next = "ACK"
                        if percpu_hash and update:
                            with m.Case(RET_INS_VAL):
                                m.next = "INS_ZERO"
                        if hashes and update:
                            with m.Case(RET_INS_STATE):
                                m.next = "INS_ST"
                        with m.Case(RET_MM_DONE):
                            m.next = "ACK"
                        with m.Default():
                            m.next = "ACK"

            # --------------------------------------------------------- the sub-units
            # (hdl/helpers/: each declares its signals beside its states and reaches the bus,
            # the window check, the copy routine and the result through the unit's services)
            u = HelperContext(
                m=m, hs=hs, PW=PW, a1=a1, a2=a2, a3=a3, a4=a4, a5=a5, bus=bus, tmp=tmp,
                win_ok=win_ok, wo_ok=wo_ok, access=access, finish=finish, fault=fault,
                set_res=set_res, neg=_neg, EINVAL=EINVAL, EACCES=EACCES,
                cp_src=cp_src, cp_len=cp_len, cp_step=cp_step, cp_src_next=cp_src_next,
                cp_len_next=cp_len_next, cp_dst=cp_dst, cp_zero=cp_zero, ret=ret,
                RET_ACK=RET_ACK, data=data, data_meta=data_meta, data_end=data_end,
                data_end_port=self.data_end, hard_end=hard_end,
                H_ADJUST_HEAD=H_ADJUST_HEAD, H_ADJUST_META=H_ADJUST_META,
                H_ADJUST_TAIL=H_ADJUST_TAIL)
            if H_CSUM_DIFF in hs:
                csum_diff.add_states(u)
            adjust.add_states(u)

            # --------------------------------------------------------- trace_printk
            if H_TRACE in hs:       # (trace_depth 0: no trace unit, no format parser)
                fmt_sz = a2[0:32]
                with m.State("TP0"):
                    win_ok(a1, fmt_sz)
                    with m.If((fmt_sz == 0) | (fmt_sz > 4096)):
                        finish(_neg(EINVAL))
                    with m.Elif(~wo_ok):
                        fault(traps.TRAP_MEM)
                    with m.Else():
                        m.d.sync += [cp_src.eq(a1[0:32]), cp_len.eq(fmt_sz), tp_n.eq(0),
                                     tp_len.eq(0), tp_st.eq(TP_LIT),
                                     tp_fl.eq(0), tp_w.eq(0), tp_l.eq(0), tp_re.eq(0)]
                        m.next = "TP_RD"
                with m.State("TP_RD"):            # (cp_src: the next byte, cp_len: bytes left)
                    m.d.comb += cp_step.eq(1)
                    with m.If(cp_len == 0):
                        finish(_neg(EINVAL))            # no NUL within fmt_size
                    with m.Else():
                        with m.If(access(cp_src, 0)):
                            m.d.sync += [tp_ch.eq(bus.rdata[0:8]), cp_src.eq(cp_src_next),
                                         cp_len.eq(cp_len_next)]
                            m.next = "TP_CH"
                with m.State("TP_CH"):
                    ch = tp_ch
                    is_space = (ch == 0x20) | ((ch >= 9) & (ch <= 13))
                    printable = ((ch >= 0x20) & (ch <= 0x7E)) | is_space
                    is_digit = (ch >= ord("0")) & (ch <= ord("9"))
                    alnum = is_digit | ((ch | 0x20) >= ord("a")) & ((ch | 0x20) <= ord("z"))
                    conv_ok = (tp_st == TP_PCT) | (tp_st == TP_FLAGS) | (tp_st == TP_WIDTH)
                    arg = targ
                    with m.If(tp_st == TP_PTR):
                        # the byte after %p: 'x' is %px, NUL, space or punctuation a plain %p
                        with m.If(ch == ord("x")):
                            m.d.sync += tp_cnt.eq(16)
                            m.next = "TP_PAD"
                        with m.Elif((ch == 0) | is_space | (printable & ~alnum)):
                            m.d.comb += [num_ld.eq(1), num_ptr.eq(1)]
                            m.d.sync += tp_re.eq(1)
                            m.next = "TP_NUM"
                        with m.Else():
                            finish(_neg(EINVAL))
                    with m.Elif(ch == 0):
                        with m.If(tp_st == TP_LIT):
                            m.next = "TP_WR"
                        with m.Else():
                            finish(_neg(EINVAL))
                    with m.Elif(~printable):
                        finish(_neg(EINVAL))
                    with m.Elif(tp_st == TP_LIT):
                        with m.If(ch == ord("%")):
                            m.d.sync += tp_st.eq(TP_PCT)
                        with m.Else():
                            m.d.sync += tp_len.eq(tp_len + 1)
                        m.next = "TP_RD"
                    with m.Elif((tp_st == TP_PCT) & (ch == ord("%"))):
                        m.d.sync += [tp_len.eq(tp_len + 1), tp_st.eq(TP_LIT)]
                        m.next = "TP_RD"
                    with m.Elif((tp_st == TP_PCT) & (tp_n == 3)):
                        finish(_neg(EINVAL))            # a fourth conversion
                    with m.Elif(((tp_st == TP_PCT) | (tp_st == TP_FLAGS))
                                & ((ch == ord("0")) | (ch == ord("+")) | (ch == ord("-"))
                                   | (ch == ord(" ")))):
                        with m.If(ch == ord("-")):
                            m.d.sync += tp_fl[0].eq(1)
                        with m.If(ch == ord("+")):
                            m.d.sync += tp_fl[1].eq(1)
                        with m.If(ch == ord(" ")):
                            m.d.sync += tp_fl[2].eq(1)
                        m.d.sync += tp_st.eq(TP_FLAGS)
                        m.next = "TP_RD"
                    with m.Elif(((tp_st == TP_PCT) | (tp_st == TP_FLAGS)) & is_digit
                                & (ch != ord("0"))):
                        m.d.sync += [tp_w.eq(ch - ord("0")), tp_st.eq(TP_WIDTH)]
                        m.next = "TP_RD"
                    with m.Elif((tp_st == TP_WIDTH) & is_digit):
                        m.d.sync += tp_w.eq(((tp_w << 3) + (tp_w << 1) + (ch - ord("0")))[0:32])
                        m.next = "TP_RD"
                    with m.Elif(conv_ok & (ch == ord("p"))):
                        m.d.sync += tp_st.eq(TP_PTR)
                        m.next = "TP_RD"
                    with m.Elif(conv_ok & (ch == ord("c"))):
                        m.d.sync += tp_cnt.eq(1)
                        m.next = "TP_PAD"
                    with m.Elif(conv_ok & (ch == ord("s"))):
                        m.d.sync += [cp_dst.eq(arg[0:32]), tp_sphz.eq(arg[32:64] == 0),
                                     tp_cnt.eq(0)]
                        m.next = "TP_STR"
                    with m.Elif((conv_ok | (tp_st == TP_LONG)) & (ch == ord("l")) & (tp_l != 2)):
                        m.d.sync += [tp_l.eq(tp_l + 1), tp_st.eq(TP_LONG)]
                        m.next = "TP_RD"
                    with m.Elif((conv_ok | (tp_st == TP_LONG))
                                & ((ch == ord("d")) | (ch == ord("i")))):
                        m.d.comb += [num_ld.eq(1), num_sgn.eq(1)]
                        m.next = "TP_NUM"
                    with m.Elif((conv_ok | (tp_st == TP_LONG))
                                & ((ch == ord("u")) | (ch == ord("x")) | (ch == ord("X")))):
                        m.d.comb += [num_ld.eq(1), num_hex.eq(ch != ord("u"))]
                        m.next = "TP_NUM"
                    with m.Else():
                        finish(_neg(EINVAL))
                # digits of tp_v: one power of the base a cycle (at most 20)
                with m.State("TP_NUM"):
                    with m.If((tp_p <= tp_v) & (tp_nd != 20)):
                        m.d.comb += num_step.eq(1)
                    with m.Else():
                        m.d.sync += tp_cnt.eq(tp_nd + tp_x)
                        m.next = "TP_PAD"
                # %s: the string's length (up to STR_MAX bytes; unreadable: empty, as the kernel)
                with m.State("TP_STR"):           # (cp_dst: the next byte of the string)
                    m.d.comb += cp_step.eq(1)
                    with m.If((tp_cnt == 255) | ~win_ok(cp_dst, 1, tp_sphz)):
                        with m.If(tp_cnt != 255):
                            m.d.sync += tp_cnt.eq(0)
                        m.next = "TP_PAD"
                    with m.Else():
                        with m.If(access(cp_dst, 0)):
                            with m.If(bus.rdata[0:8] == 0):
                                m.next = "TP_PAD"
                            with m.Else():
                                m.d.sync += [tp_cnt.eq(tp_cnt + 1), cp_dst.eq(cp_dst_next)]
                with m.State("TP_PAD"):
                    m.d.sync += [tp_len.eq(tp_len + Mux(tp_w > tp_cnt, tp_w, tp_cnt)),
                                 tp_n.eq(tp_n + 1), tp_st.eq(TP_LIT), tp_fl.eq(0), tp_w.eq(0),
                                 tp_l.eq(0), tp_re.eq(0)]
                    with m.If(tp_re):
                        m.next = "TP_CH"            # the byte after a plain %p
                    with m.Else():
                        m.next = "TP_RD"
                # the format is good: hand the record to the trace FIFO (written or counted lost)
                with m.State("TP_WR"):
                    m.d.comb += self.tr_req.eq(1)
                    with m.If(self.tr_ack):
                        finish(tp_len)

        self.states = tuple(fsm.encoding)      # (what was built: tests look)
        ins_key = fsm.ongoing("INS_KEY") if hashes and update else 0
        m.d.comb += bus.wdata[32:64].eq(Mux(ins_key, k_rd.data[32:64],
                                            Mux(cp_zero, 0, tmp[32:64])))
        return m
