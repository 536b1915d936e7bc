"""The control port: the Wishbone slave the host drives (register map: docs/registers.md)."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bpfpga import memmap
from bpfpga.hdl import control as C
from bpfpga.hdl import layouts
from bpfpga.hdl.bus import DataBusSignature

from .signatures import HostPortSignature, WishboneSignature


class ControlPort(wiring.Component):
    """Registers, the write guard, the host's map-memory accesses (``mem``) and map clearing,
    and one ``HostPortSignature`` per memory region the host reads or writes (``desc``,
    ``stage``, ``inj``, ``out``, ``trace``); the program loader's requests (``ld_*``) and
    the counter bank's read (``cnt_*``). Each access is acknowledged two cycles after the
    request (map memory: when the arbiter answers, plus one)."""

    def __init__(self, cfg):
        self.cfg = cfg
        pw = (cfg.pm_depth - 1).bit_length()
        super().__init__({
            "wb": In(WishboneSignature),
            "enable": Out(1), "capture": Out(1),
            "budget": Out(32, init=memmap.INSN_BUDGET), "map_len": Out(29), "nmaps": Out(8),
            "ktime": Out(64, init=1_000_000_000),
            "seed_we": Out(1), "seed": Out(32),
            "cnt_clear": Out(1), "cnt_rd": Out(1), "cnt_idx": Out(6), "cnt_rdata": In(32),
            "ld_arg": Out(32), "ld_check": Out(1), "ld_commit": Out(1), "ld_key": Out(1),
            "prog_len": In(pw + 1), "crc": In(32), "commits": In(32), "prog_crc": In(32),
            "refused": In(8),
            "idle": In(1), "commit_busy": In(1), "check_busy": In(1), "lanes": In(cfg.cores),
            "inj_wr": Out(16), "inj_rd": In(16), "out_wr": In(16), "out_rd": Out(16),
            "trace_wr": In(16), "trace_rd": Out(16),
            "mem": Out(DataBusSignature),
            "desc": Out(HostPortSignature(32)), "stage": Out(HostPortSignature(64)),
            "inj": Out(HostPortSignature(64)), "out": Out(HostPortSignature(64)),
            "trace": Out(HostPortSignature(64)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        N, P = cfg.cores, cfg.ports
        pw = (cfg.pm_depth - 1).bit_length()
        m.d.sync += self.ktime.eq(self.ktime + cfg.ns_per_cycle)
        wb = self.wb
        adr = Signal(C.ADR_BITS)
        wdat = Signal(32)
        rdat = Signal(32)
        region = Signal(4)
        off = Signal(16)
        rsel = Signal(4)
        roff = Signal(16)
        m.d.comb += [region.eq(wb.adr[16:20]), off.eq(wb.adr[0:16])]
        # the regions' ports see address and data all the time; only their write enables are
        # decoded (a write port's data gated by the region decode was an AND per bit)
        ports = {C.MAPDESC: self.desc, C.PM_STAGE: self.stage, C.INJ_RING: self.inj,
                 C.OUT_RING: self.out, C.TRACE: self.trace}
        for p in ports.values():
            m.d.comb += [p.addr.eq(off), p.wdata.eq(wb.dat_w)]
        m.d.comb += self.ld_arg.eq(wb.dat_w)
        hm = self.mem
        clr_busy = Signal()
        clr_n = Signal(32)
        clr_a = Signal(32)
        with m.If(clr_busy):
            m.d.comb += [hm.valid.eq(1), hm.addr.eq(memmap.MAP_BASE + clr_a),
                         hm.size.eq(3), hm.we.eq(1), hm.wdata.eq(0)]
            with m.If(hm.ready):
                m.d.sync += clr_a.eq(clr_a + 8)
                with m.If(clr_a + 8 >= clr_n):
                    m.d.sync += clr_busy.eq(0)
        # the write guard: a write lands only inside the window the host opened just before
        # it (R_WIN, then R_WIN_CHECK = ~R_WIN), in order, each word once; anything else is
        # refused, counted and closes the window, so a write whose address was garbled on
        # the link changes nothing
        win_pend = Signal(32)
        win_next = Signal(C.ADR_BITS)
        win_left = Signal(range(C.WIN_MAX + 1))
        wr_ok = Signal(16)
        wr_bad = Signal(8)
        is_win = Signal()
        allowed = Signal()
        m.d.comb += [is_win.eq((region == C.REGS >> 16) &
                               ((off == C.R_WIN) | (off == C.R_WIN_CHECK))),
                     allowed.eq(~is_win & (win_left != 0) & (wb.adr == win_next))]
        status = Signal(layouts.STATUS)
        m.d.comb += [status.idle.eq(self.idle), status.commit_busy.eq(self.commit_busy),
                     status.check_busy.eq(self.check_busy), status.mapclr_busy.eq(clr_busy),
                     status.lanes.eq(self.lanes)]
        info = layouts.INFO.const({"cores": N, "ports": P, "log2_pm_depth": pw,
                                   "max_maps": cfg.max_maps})
        regs_r = {C.R_IDENT: C.IDENT, C.R_VERSION: C.VERSION, C.R_INFO: info.as_value(),
                  C.R_MAP_BYTES: cfg.map_bytes, C.R_PKT_BYTES: cfg.pkt_bytes,
                  C.R_INJ_WORDS: cfg.inj_words, C.R_OUT_WORDS: cfg.out_words,
                  C.R_NS_PER_CYCLE: cfg.ns_per_cycle,
                  C.R_CTRL: Cat(self.enable, self.capture), C.R_STATUS: status.as_value(),
                  C.R_PROG_LEN: self.prog_len, C.R_BUDGET: self.budget,
                  C.R_MAP_LEN: self.map_len, C.R_NMAPS: self.nmaps, C.R_CRC: self.crc,
                  C.R_COMMITS: self.commits,
                  C.R_INJ_WR: self.inj_wr, C.R_INJ_RD: self.inj_rd,
                  C.R_OUT_WR: self.out_wr, C.R_OUT_RD: self.out_rd,
                  C.R_KTIME_LO: self.ktime[0:32], C.R_KTIME_HI: self.ktime[32:64],
                  C.R_TRACE_DEPTH: cfg.trace_depth, C.R_TRACE_WR: self.trace_wr,
                  C.R_TRACE_RD: self.trace_rd,
                  C.R_GUARD: Cat(wr_ok, wr_bad, self.refused), C.R_PROG_CRC: self.prog_crc,
                  C.R_MAP_TYPES: cfg.map_type_mask(),
                  **{C.R_HELPERS0 + k: w for k, w in enumerate(cfg.helper_masks())}}
        mapdat = Signal(32)
        m.d.comb += self.cnt_idx.eq(off[0:6])
        # the register read mux is registered at the request (IDLE), so the acknowledge
        # cycle has only the region mux between flip-flops / block RAM and dat_r; registers
        # read as zero above the 64 register offsets
        reg_q = Signal(32)
        reg_now = Signal(32)
        with m.Switch(off[0:6]):
            for k, v in regs_r.items():
                with m.Case(k):
                    m.d.comb += reg_now.eq(v)
        m.d.sync += reg_q.eq(Mux(off[6:] == 0, reg_now, 0))
        with m.FSM(name="wb"):
            with m.State("IDLE"):
                m.d.comb += self.cnt_rd.eq(wb.cyc & wb.stb & ~wb.we &
                                           (region == C.COUNTERS >> 16))
                with m.If(wb.cyc & wb.stb):
                    m.d.sync += [rsel.eq(region), roff.eq(off), adr.eq(wb.adr),
                                 wdat.eq(wb.dat_w)]
                    with m.If(wb.we & is_win):
                        with m.If(off == C.R_WIN):
                            m.d.sync += [win_pend.eq(wb.dat_w), win_left.eq(0)]
                        with m.Elif((wb.dat_w == ~win_pend) &
                                    (win_pend[28:32] == C.WIN_TAG)):
                            m.d.sync += [win_next.eq(win_pend[0:20]),
                                         win_left.eq(win_pend[20:28] + 1), win_pend.eq(0)]
                        with m.Else():
                            m.d.sync += [win_left.eq(0), win_pend.eq(0), wr_bad.eq(wr_bad + 1)]
                    with m.Elif(wb.we & allowed):
                        m.d.sync += [win_next.eq(win_next + 1), win_left.eq(win_left - 1),
                                     wr_ok.eq(wr_ok + 1)]
                    with m.Elif(wb.we):
                        m.d.sync += [win_left.eq(0), wr_bad.eq(wr_bad + 1)]
                    with m.If(wb.adr[19] & (~wb.we | allowed)):
                        m.next = "MAP"
                    with m.Else():
                        m.next = "ACK"
                        with m.If(wb.we & allowed):
                            with m.Switch(region):
                                with m.Case(C.REGS >> 16):
                                    self._reg_write(m, off, wb.dat_w, clr_n, clr_a, clr_busy)
                                for base, p in ports.items():
                                    if base in (C.MAPDESC, C.PM_STAGE, C.INJ_RING):
                                        with m.Case(base >> 16):
                                            m.d.comb += p.we.eq(1)
            with m.State("MAP"):
                m.d.comb += [hm.valid.eq(1), hm.addr.eq(memmap.MAP_BASE + (adr[0:19] << 2)),
                             hm.size.eq(2), hm.we.eq(wb.we), hm.wdata.eq(wdat)]
                with m.If(hm.ready):
                    m.d.sync += mapdat.eq(hm.rdata[0:32])
                    m.next = "MAPACK"
            with m.State("MAPACK"):
                m.d.comb += [wb.ack.eq(1), wb.dat_r.eq(mapdat)]
                m.next = "IDLE"
            with m.State("ACK"):
                m.d.comb += wb.ack.eq(1)
                with m.Switch(rsel):
                    with m.Case(C.REGS >> 16):
                        m.d.comb += rdat.eq(reg_q)
                    with m.Case(C.COUNTERS >> 16):
                        m.d.comb += rdat.eq(self.cnt_rdata)
                    with m.Case(C.MAPDESC >> 16):
                        m.d.comb += rdat.eq(self.desc.rdata)
                    for base in (C.PM_STAGE, C.INJ_RING, C.OUT_RING) + \
                            ((C.TRACE,) if cfg.trace_depth else ()):
                        with m.Case(base >> 16):
                            m.d.comb += rdat.eq(ports[base].rdata.word_select(roff[0], 32))
                m.d.comb += wb.dat_r.eq(rdat)
                m.next = "IDLE"
        return m

    def _reg_write(self, m, off, dat, clr_n, clr_a, clr_busy):
        with m.Switch(off):
            with m.Case(C.R_CTRL):
                m.d.sync += [self.enable.eq(dat[0]), self.capture.eq(dat[1])]
                m.d.comb += self.cnt_clear.eq(dat[2])
            with m.Case(C.R_BUDGET):
                m.d.sync += self.budget.eq(dat)
            with m.Case(C.R_MAP_LEN):
                m.d.sync += self.map_len.eq(dat)
            with m.Case(C.R_NMAPS):
                m.d.sync += self.nmaps.eq(dat)
            with m.Case(C.R_CHECK):
                m.d.comb += self.ld_check.eq(1)
            with m.Case(C.R_COMMIT):
                m.d.comb += self.ld_commit.eq(1)
            with m.Case(C.R_COMMIT_KEY):
                m.d.comb += self.ld_key.eq(1)
            with m.Case(C.R_INJ_WR):
                m.d.sync += self.inj_wr.eq(dat)
            with m.Case(C.R_OUT_RD):
                m.d.sync += self.out_rd.eq(dat)
            with m.Case(C.R_TRACE_RD):
                m.d.sync += self.trace_rd.eq(dat)
            with m.Case(C.R_MAPCLR):
                m.d.sync += [clr_n.eq(dat), clr_a.eq(0), clr_busy.eq(dat != 0)]
            with m.Case(C.R_SEED):
                m.d.comb += [self.seed_we.eq(1), self.seed.eq(dat)]
