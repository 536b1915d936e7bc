"""The Etherbone verifier: every request authenticated before any of it reaches the bus, every
answer sealed (issue 19 part 3; the format is host/transport.py ``eb_seal``, the MAC
bpfpga/auth.py's SipHash-2-4).

It sits between LiteEth's UDP port and LiteEth's Etherbone (:class:`EtherboneAuth`), on
32-bit words in wire order (byte 0 of the payload in ``data[0:8]``, as LiteEth's MAC and
UDP streams carry it). A request's UDP payload is ``seq (8 bytes, big-endian) | Etherbone
packet | tag (8 bytes)``, the tag SipHash-2-4 under the board's key of everything before it.
The request is written into a buffer as it comes and is released to Etherbone only when its
tag checks, its seq (bit 63 clear) is above the last one accepted, and it fitted; otherwise it
is rolled back, never seen by Etherbone, and counted (``refused``). An answer leaves as
``seq | 2^63 | Etherbone answer | tag``. The MAC keeps up with one word a cycle: a 64-bit
block's two SipRounds run in the cycle its second word comes and the next.

What it does not do: the replay window starts again at 0 when the board is reset (a request
recorded before a reset replays until the host's next one moves the window; the host's seq is
its clock in ns); a packet whose first word comes while the previous one is still being
checked (a few cycles, shorter than an Ethernet inter-frame gap and the headers) is refused.
"""
from __future__ import annotations

from migen import *
from litex.gen import LiteXModule
from litex.soc.interconnect import stream

from liteeth.common import eth_udp_user_description

_M = (1 << 64) - 1
IV = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)


def _rotl(x, b):
    return Cat(x[64 - b:], x[:64 - b])


def _bswap(x):
    return Cat(x[24:32], x[16:24], x[8:16], x[0:8])


class SipRound(Module):
    """One SipRound, combinational: (v0..v3) -> (o0..o3)."""

    def __init__(self):
        self.v = v = [Signal(64, name=f"v{i}") for i in range(4)]
        self.o = [Signal(64, name=f"o{i}") for i in range(4)]
        a0, b1, a2, b3, c0, c2 = (Signal(64) for _ in range(6))
        self.comb += [
            a0.eq(v[0] + v[1]),
            b1.eq(_rotl(v[1], 13) ^ a0),
            a2.eq(v[2] + v[3]),
            b3.eq(_rotl(v[3], 16) ^ a2),
            c0.eq(_rotl(a0, 32) + b3),
            c2.eq(a2 + b1),
            self.o[0].eq(c0),
            self.o[1].eq(_rotl(b1, 17) ^ c2),
            self.o[2].eq(_rotl(c2, 32)),
            self.o[3].eq(_rotl(b3, 21) ^ c0),
        ]


class SipHash(Module):
    """SipHash-2-4 over a message of 32-bit words (little-endian byte loading: a block is
    word 2i | word 2i+1 << 32), one word a cycle. ``init`` starts a message; ``w``/``w_valid``
    feed it; ``fin`` (with ``nbytes``, the message's length) pads, finalizes and raises
    ``done`` with ``hash`` until the next ``init``."""

    def __init__(self, key: bytes):
        k0 = int.from_bytes(key[:8], "little")
        k1 = int.from_bytes(key[8:], "little")
        iv = [k0 ^ IV[0], k1 ^ IV[1], k0 ^ IV[2], k1 ^ IV[3]]
        self.init = Signal()
        self.w = Signal(32)
        self.w_valid = Signal()
        self.fin = Signal()
        self.nbytes = Signal(16)
        self.done = Signal()
        self.hash = Signal(64)

        self.submodules.rnd = rnd = SipRound()
        v = [Signal(64, reset=iv[i]) for i in range(4)]
        lo = Signal(32)
        odd = Signal()              # lo holds a block's first word
        r2 = Signal()               # the second round of block m2 is due
        m, m2 = Signal(64), Signal(64)
        # fin: 0 none; 1 the final block is due; 2 its second round is; 3..6 the four
        # d-rounds (v2 ^= 0xff into the first); 7 done
        fin = Signal(3)
        do_block = Signal()         # round 1 of block m this cycle (v3 ^ m into it)
        self.comb += [
            self.hash.eq(v[0] ^ v[1] ^ v[2] ^ v[3]),
            self.done.eq(fin == 7),
            If(fin == 1,
                m.eq(Cat(Mux(odd, lo, 0), Replicate(0, 24), self.nbytes[:8])),
            ).Else(
                m.eq(Cat(lo, self.w)),
            ),
            do_block.eq(~r2 & (((fin == 0) & self.w_valid & odd) | (fin == 1))),
            rnd.v[0].eq(v[0]), rnd.v[1].eq(v[1]),
            rnd.v[2].eq(Mux(fin == 3, v[2] ^ 0xFF, v[2])),
            rnd.v[3].eq(Mux(do_block, v[3] ^ m, v[3])),
        ]
        self.sync += [
            If(self.init,
                [v[i].eq(iv[i]) for i in range(4)],
                odd.eq(0), r2.eq(0), fin.eq(0),
            ).Elif(r2,
                # the block's second round, and v0 ^= m; a next block's first word may come
                v[0].eq(rnd.o[0] ^ m2), v[1].eq(rnd.o[1]), v[2].eq(rnd.o[2]),
                v[3].eq(rnd.o[3]),
                r2.eq(0),
                If(fin == 2, fin.eq(3)),
                If(self.w_valid & ~odd & (fin == 0), lo.eq(self.w), odd.eq(1)),
                If(self.fin & (fin == 0), fin.eq(1)),
            ).Elif(do_block,
                [v[i].eq(rnd.o[i]) for i in range(4)],
                m2.eq(m), r2.eq(1), odd.eq(0),
                If(fin == 1, fin.eq(2)),
            ).Elif((fin >= 3) & (fin <= 6),
                [v[i].eq(rnd.o[i]) for i in range(4)],
                fin.eq(fin + 1),
            ).Else(
                If(self.w_valid & (fin == 0), lo.eq(self.w), odd.eq(1)),
                If(self.fin & (fin == 0), fin.eq(1)),
            ),
        ]


class EtherboneAuth(LiteXModule):
    """``net_sink`` (requests from the UDP port) / ``net_source`` (answers to it) on the network
    side, ``eb_source`` / ``eb_sink`` towards LiteEth's Etherbone; ``accepted`` and
    ``refused`` count requests. ``depth``: buffered request words (a request that does not fit
    is refused)."""

    def __init__(self, key: bytes, depth: int = 512):
        desc = eth_udp_user_description(32)
        self.net_sink = sink = stream.Endpoint(desc)
        self.net_source = nsrc = stream.Endpoint(desc)
        self.eb_source = esrc = stream.Endpoint(desc)
        self.eb_sink = esink = stream.Endpoint(desc)
        self.accepted = Signal(32)
        self.refused = Signal(32)
        self.last_seq = last_seq = Signal(64)

        # ---------------------------------------------------------------- requests
        aw = log2_int(depth)
        mem = Memory(33, depth)
        wp, rp = mem.get_port(write_capable=True), mem.get_port(has_re=True)
        self.specials += mem, wp, rp
        wr, commit, rd = Signal(aw + 1), Signal(aw + 1), Signal(aw + 1)
        self.submodules.hq = hq = SipHash(key)
        params = stream.SyncFIFO([("ip_address", 32), ("src_port", 16), ("dst_port", 16),
                                  ("length", 16), ("seq", 64)], 4)
        self.submodules.params = params
        idx = Signal(12)            # words of this packet so far
        seq = Signal(64)
        d1, d2 = Signal(32), Signal(32)
        p_ip, p_sp, p_dp, p_len = Signal(32), Signal(16), Signal(16), Signal(16)
        overflow = Signal()
        nwords = Signal(12)         # message words fed (seq + Etherbone packet)
        checking = Signal()         # the packet ended; its tag is being computed
        dropping = Signal()         # a packet that came while checking: dropped whole
        in_pkt = Signal()
        full = Signal()
        pop = Signal()              # the oldest delayed word leaves for the buffer
        self.comb += [
            sink.ready.eq(1),
            full.eq((wr - rd) == depth),
            pop.eq(sink.valid & ~dropping & ~checking & (idx >= 4)),
            wp.adr.eq(wr[:aw]),
            wp.dat_w.eq(Cat(d2, sink.last)),
            wp.we.eq(pop & ~full & ~overflow),
            hq.w.eq(Mux(idx < 2, sink.data, d2)),
            hq.w_valid.eq(sink.valid & ~dropping & ~checking & ((idx < 2) | (idx >= 4))),
            hq.nbytes.eq(nwords << 2),
            hq.fin.eq(checking),
            hq.init.eq(checking & hq.done),     # fresh for the next packet
        ]
        tag_ok = Signal()
        self.comb += tag_ok.eq(hq.hash == Cat(d2, d1))
        self.sync += [
            If(sink.valid,
                in_pkt.eq(~sink.last),
                If(~in_pkt & checking, dropping.eq(~sink.last),
                   self.refused.eq(self.refused + 1)),
                If(dropping & sink.last, dropping.eq(0)),
            ),
            If(sink.valid & ~dropping & ~checking,
                idx.eq(idx + 1),
                If(~in_pkt,
                    p_ip.eq(sink.ip_address), p_sp.eq(sink.src_port),
                    p_dp.eq(sink.dst_port), p_len.eq(sink.length),
                    overflow.eq(0), nwords.eq(1), idx.eq(1),
                    seq[32:64].eq(_bswap(sink.data)),
                ),
                If(idx == 1, seq[0:32].eq(_bswap(sink.data)), nwords.eq(2)),
                If(idx >= 2, d1.eq(sink.data), d2.eq(d1)),
                If(pop,
                    nwords.eq(nwords + 1),
                    If(full | overflow, overflow.eq(1)).Else(wr.eq(wr + 1)),
                ),
                If(sink.last, checking.eq(1), idx.eq(0)),
            ),
            params.sink.valid.eq(0),
            If(checking & hq.done,
                checking.eq(0),
                If(tag_ok & ~overflow & ~seq[63] & (seq > last_seq) & (nwords >= 4) &
                   params.sink.ready,
                    commit.eq(wr), last_seq.eq(seq),
                    self.accepted.eq(self.accepted + 1),
                    params.sink.valid.eq(1),
                ).Else(
                    wr.eq(commit), self.refused.eq(self.refused + 1),
                ),
            ),
        ]
        self.comb += [
            params.sink.ip_address.eq(p_ip), params.sink.src_port.eq(p_sp),
            params.sink.dst_port.eq(p_dp), params.sink.length.eq(p_len - 16),
            params.sink.seq.eq(seq),
        ]
        # release: a synchronous read port (block RAM) behind a one-word output register
        ov = Signal()
        take = Signal()
        self.comb += [
            rp.adr.eq(rd[:aw]),
            take.eq((rd != commit) & (~ov | esrc.ready)),
            rp.re.eq(take),
            esrc.valid.eq(ov & params.source.valid),
            esrc.data.eq(rp.dat_r[:32]),
            esrc.last.eq(rp.dat_r[32]),
            esrc.last_be.eq(Mux(rp.dat_r[32], 0b1000, 0)),
            esrc.ip_address.eq(params.source.ip_address),
            esrc.src_port.eq(params.source.src_port),
            esrc.dst_port.eq(params.source.dst_port),
            esrc.length.eq(params.source.length),
            params.source.ready.eq(esrc.valid & esrc.ready & esrc.last),
        ]
        cur_seq = Signal(64)
        self.sync += [
            If(take, rd.eq(rd + 1), ov.eq(1)).Elif(esrc.valid & esrc.ready, ov.eq(0)),
            If(params.source.valid, cur_seq.eq(params.source.seq)),
        ]

        # ---------------------------------------------------------------- answers
        self.submodules.ha = ha = SipHash(key)
        aseq = Signal(64)
        a_words = Signal(12)
        a_ip, a_sp, a_dp, a_len = Signal(32), Signal(16), Signal(16), Signal(16)
        self.submodules.fsm = fsm = FSM(reset_state="IDLE")
        out_w = Signal(32)
        self.comb += [
            nsrc.data.eq(out_w),
            nsrc.ip_address.eq(a_ip), nsrc.src_port.eq(a_sp), nsrc.dst_port.eq(a_dp),
            nsrc.length.eq(a_len + 16),
            ha.nbytes.eq(a_words << 2),
        ]
        fsm.act("IDLE",
            ha.init.eq(1),
            If(esink.valid, NextValue(aseq, cur_seq | (1 << 63)),
               NextValue(a_ip, esink.ip_address), NextValue(a_sp, esink.src_port),
               NextValue(a_dp, esink.dst_port), NextValue(a_len, esink.length),
               NextValue(a_words, 0), NextState("SEQ0")))
        for name, word, nxt in (("SEQ0", _bswap(aseq[32:64]), "SEQ1"),
                                ("SEQ1", _bswap(aseq[0:32]), "BODY")):
            fsm.act(name,
                out_w.eq(word), nsrc.valid.eq(1),
                If(nsrc.ready, ha.w_valid.eq(1), ha.w.eq(word),
                   NextValue(a_words, a_words + 1), NextState(nxt)))
        fsm.act("BODY",
            out_w.eq(esink.data), nsrc.valid.eq(esink.valid), esink.ready.eq(nsrc.ready),
            If(esink.valid & nsrc.ready,
                ha.w_valid.eq(1), ha.w.eq(esink.data), NextValue(a_words, a_words + 1),
                If(esink.last, NextState("FIN"))))
        fsm.act("FIN", ha.fin.eq(1), If(ha.done, NextState("TAG0")))
        fsm.act("TAG0", out_w.eq(ha.hash[:32]), nsrc.valid.eq(1),
                If(nsrc.ready, NextState("TAG1")))
        fsm.act("TAG1", out_w.eq(ha.hash[32:]), nsrc.valid.eq(1), nsrc.last.eq(1),
                nsrc.last_be.eq(0b1000), If(nsrc.ready, NextState("IDLE")))
