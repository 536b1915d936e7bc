"""gateware/ebauth.py in Migen's simulator: the Etherbone verifier passes exactly the requests
the host seals (host/transport.py eb_seal) and refuses unauthenticated, tampered, wrongly
keyed and replayed ones before Etherbone sees a word of them; its answers open with the host's
eb_open. The MAC core against bpfpga/auth.py's SipHash-2-4 on messages of every length."""
import random

import pytest

pytest.importorskip("migen")
pytest.importorskip("liteeth")

from migen import run_simulation  # noqa: E402
from migen.sim import passive  # noqa: E402

from bpfpga import auth  # noqa: E402
from bpfpga.gateware.ebauth import EtherboneAuth, SipHash  # noqa: E402
from bpfpga.host.transport import eb_open, eb_packet, eb_seal  # noqa: E402

KEY = bytes(range(16))


def _words(b: bytes) -> list[int]:
    assert len(b) % 4 == 0
    return [int.from_bytes(b[i:i + 4], "little") for i in range(0, len(b), 4)]


def _bytes(ws) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in ws)


def test_siphash_core_matches_the_reference():
    rng = random.Random(1)
    msgs = [bytes(rng.randrange(256) for _ in range(4 * n)) for n in range(0, 9)]
    dut = SipHash(KEY)
    got = []

    def bench():
        for msg in msgs:
            yield dut.init.eq(1)
            yield
            yield dut.init.eq(0)
            for w in _words(msg):
                yield dut.w.eq(w)
                yield dut.w_valid.eq(1)
                yield
            yield dut.w_valid.eq(0)
            yield dut.nbytes.eq(len(msg))
            yield dut.fin.eq(1)
            for _ in range(20):
                yield
                if (yield dut.done):
                    break
            yield dut.fin.eq(0)
            got.append((yield dut.hash))
    run_simulation(dut, bench())
    assert got == [auth.siphash24(KEY, m) for m in msgs]


def _run(requests, answers=(), key=KEY):
    """Drive UDP payloads into the verifier (one word a cycle, gaps between packets) and
    Etherbone answers into its answer side; returns (packets Etherbone got, answer payloads,
    accepted, refused)."""
    dut = EtherboneAuth(key, depth=64)
    out, ans, cur, acur = [], [], [], []
    res = {}

    def drive():
        for pkt in requests:
            ws = _words(pkt)
            for i, w in enumerate(ws):
                yield dut.net_sink.valid.eq(1)
                yield dut.net_sink.data.eq(w)
                yield dut.net_sink.last.eq(i == len(ws) - 1)
                yield dut.net_sink.length.eq(len(pkt))
                yield
            yield dut.net_sink.valid.eq(0)
            for _ in range(20):                 # an inter-frame gap and the headers
                yield
        for _ in range(200):
            yield
        for pkt in answers:
            ws = _words(pkt)
            i = 0
            yield dut.eb_sink.length.eq(len(pkt))
            while i < len(ws):
                yield dut.eb_sink.valid.eq(1)
                yield dut.eb_sink.data.eq(ws[i])
                yield dut.eb_sink.last.eq(i == len(ws) - 1)
                yield
                if (yield dut.eb_sink.ready):
                    i += 1
            yield dut.eb_sink.valid.eq(0)
            for _ in range(30):
                yield
        res["accepted"] = yield dut.accepted
        res["refused"] = yield dut.refused

    def take():
        yield dut.eb_source.ready.eq(1)
        yield dut.net_source.ready.eq(1)
        while True:
            yield
            if (yield dut.eb_source.valid):
                cur.append((yield dut.eb_source.data))
                if (yield dut.eb_source.last):
                    out.append(_bytes(cur))
                    cur.clear()
            if (yield dut.net_source.valid):
                acur.append((yield dut.net_source.data))
                if (yield dut.net_source.last):
                    assert (yield dut.net_source.length) == 4 * len(acur)
                    ans.append(_bytes(acur))
                    acur.clear()
    run_simulation(dut, [drive(), passive(take)()])
    return out, ans, res["accepted"], res["refused"]


WRITE = eb_packet(writes=(0x40, [0x11223344, 0x55667788]))
READ = eb_packet(reads=(0, [0x40, 0x44]))


def test_sealed_requests_pass_and_everything_else_is_refused():
    s1 = eb_seal(KEY, 100, WRITE)
    tampered = bytearray(eb_seal(KEY, 101, WRITE))
    tampered[20] ^= 0x04                                  # one bit of the write's data
    reqs = [
        WRITE,                                            # plain Etherbone: no seal
        s1,                                               # genuine
        bytes(tampered),
        eb_seal(bytes(16), 102, WRITE),                   # another key
        s1,                                               # replayed (seq 100 again)
        eb_seal(KEY, 50, WRITE),                          # older than the last accepted
        eb_seal(KEY, 1 << 63 | 200, WRITE),               # an answer's seq
        eb_seal(KEY, 103, READ),                          # genuine
    ]
    out, _, acc, ref = _run(reqs)
    assert out == [WRITE, READ]
    assert (acc, ref) == (2, 6)


def test_a_request_too_long_for_the_buffer_is_refused():
    big = eb_packet(writes=(0, list(range(70))))          # 64-word buffer
    out, _, acc, ref = _run([eb_seal(KEY, 1, big), eb_seal(KEY, 2, WRITE)])
    assert out == [WRITE] and (acc, ref) == (1, 1)


def test_answers_are_sealed_with_the_requests_seq():
    answer = eb_packet(writes=(0, [0xCAFEBABE, 0x01020304]))
    out, ans, acc, _ = _run([eb_seal(KEY, 777, READ)], answers=[answer])
    assert out == [READ] and acc == 1
    assert len(ans) == 1
    assert eb_open(KEY, ans[0]) == (777 | auth.ANSWER, answer)
    assert eb_open(bytes(16), ans[0]) is None
