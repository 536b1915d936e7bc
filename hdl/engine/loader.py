"""The program loader: the staging memory, its CRC check and the keyed commit into the cores."""
from __future__ import annotations

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bpfpga.hdl.maps_hw import hdl_crc_update

from .signatures import HostPortSignature, serve_host_port


class ProgramLoader(wiring.Component):
    """Staging (``host``: slot s = words 2 s, 2 s + 1) of ``depth`` program slots. ``check``
    (with ``n`` on ``arg``): CRC-32 of staging [0, n) into ``crc`` (``check_busy`` meanwhile).
    ``key`` sets the key of the next commit; ``commit`` (n): the same CRC, and if it equals
    the key and n fits, once no core runs (``running``), staging [0, n) is copied into every
    core on ``pm_*`` (``commit_busy`` from the request on, ``copying`` from the verified key
    on: no packet starts meanwhile) and becomes the image (``prog_len``,
    ``prog_crc``, ``commits``); else refused (``refused``). A key is good for one commit, so
    a write garbled into R_COMMIT, or a staging word changed after the host's check, commits
    nothing."""

    def __init__(self, depth: int):
        self.depth = depth
        pw = (depth - 1).bit_length()
        super().__init__({
            "host": In(HostPortSignature(64)),
            "arg": In(32), "check": In(1), "commit": In(1), "key": In(1),
            "running": In(1),
            "pm_we": Out(1), "pm_addr": Out(pw), "pm_data": Out(64),
            "prog_len": Out(pw + 1), "prog_crc": Out(32), "crc": Out(32), "commits": Out(32),
            "refused": Out(8), "check_busy": Out(1), "commit_busy": Out(1), "copying": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pw = (self.depth - 1).bit_length()
        stage = Memory(shape=unsigned(64), depth=self.depth, init=[])
        m.submodules.stage = stage
        stage_wp = stage.write_port(granularity=32)
        stage_rp = stage.read_port()
        stage_rp_wb = stage.read_port()
        serve_host_port(m, self.host, stage_wp, stage_rp_wb)
        crc = self.crc
        ck_n = Signal(pw + 1)
        ck_i = Signal(pw + 1)
        ck_busy = self.check_busy
        ck_v = Signal()
        ck_h = Signal()                  # the slot's high half is next into the CRC
        ck_hold = Signal()               # keep the slot on the read port for its high half
        m.d.comb += [stage_rp.addr.eq(ck_i), stage_rp.en.eq(~ck_hold)]
        cm_req = Signal()
        cm_n = Signal(pw + 1)
        cm_v = Signal()
        commit_key = Signal(32)
        key_valid = Signal()
        cm_key = Signal(32)
        cm_ok = Signal()                 # key present and n within the program memory
        ck_cm = Signal()                 # the running check is a commit's
        cm_bad = self.refused
        copying = self.copying
        m.d.comb += self.commit_busy.eq(copying | cm_req)
        # 32 bits a cycle (two per slot): half the XOR network of a 64-bit update, and a
        # check of the whole program memory still takes only 2 * depth cycles
        new_crc = hdl_crc_update(m, crc, Mux(ck_h, stage_rp.data[32:], stage_rp.data[:32]))
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(ck_busy):
                    m.d.sync += [ck_i.eq(0), ck_v.eq(0), ck_h.eq(0), crc.eq(0xFFFFFFFF),
                                 ck_cm.eq(0)]
                    m.next = "CHECK"
                with m.Elif(cm_req):
                    m.d.sync += [ck_i.eq(0), ck_v.eq(0), ck_h.eq(0), crc.eq(0xFFFFFFFF),
                                 ck_cm.eq(1), ck_n.eq(cm_n)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                # slot i is presented, slot i-1 is read out: its low half, then (the read
                # port held) its high half
                with m.If(ck_v):
                    m.d.sync += [crc.eq(new_crc), ck_h.eq(~ck_h)]
                    m.d.comb += ck_hold.eq(~ck_h)
                with m.If(~ck_v | ck_h):
                    with m.If(ck_i < ck_n):
                        m.d.sync += [ck_i.eq(ck_i + 1), ck_v.eq(1)]
                    with m.Else():
                        m.next = "CHECK_END"
            with m.State("CHECK_END"):
                m.d.sync += crc.eq(~crc)
                with m.If(ck_cm):
                    m.next = "VERIFY"
                with m.Else():
                    m.d.sync += ck_busy.eq(0)
                    m.next = "IDLE"
            with m.State("VERIFY"):
                with m.If(~cm_ok | (crc != cm_key)):
                    m.d.sync += [cm_bad.eq(cm_bad + 1), cm_req.eq(0)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += copying.eq(1)
                    with m.If(~self.running):
                        m.d.sync += [ck_i.eq(0), cm_v.eq(0)]
                        m.next = "COPY"
            with m.State("COPY"):
                m.d.comb += copying.eq(1)
                with m.If(cm_v):
                    m.d.comb += [self.pm_we.eq(1), self.pm_addr.eq(ck_i - 1),
                                 self.pm_data.eq(stage_rp.data)]
                with m.If(ck_i < cm_n):
                    m.d.sync += [ck_i.eq(ck_i + 1), cm_v.eq(1)]
                with m.Else():
                    m.d.sync += [self.prog_len.eq(cm_n), self.commits.eq(self.commits + 1),
                                 cm_req.eq(0), self.prog_crc.eq(cm_key)]
                    m.next = "IDLE"
        # the host's requests (after the FSM: in a cycle with both, the host's write wins)
        with m.If(self.check & ~cm_req):       # not under a commit
            m.d.sync += [ck_n.eq(self.arg), ck_busy.eq(1)]
        with m.If(self.commit):
            m.d.sync += key_valid.eq(0)
            with m.If(~cm_req):
                m.d.sync += [cm_n.eq(self.arg), cm_req.eq(1), cm_key.eq(commit_key),
                             cm_ok.eq(key_valid & (self.arg <= self.depth))]
            with m.Else():
                m.d.sync += cm_bad.eq(cm_bad + 1)
        with m.If(self.key):
            m.d.sync += [commit_key.eq(self.arg), key_valid.eq(1)]
        return m
