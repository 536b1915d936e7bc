"""gateware/ethport.py in Migen's simulator: the port's MAC filter on the host-link port."""
from __future__ import annotations

import random

import pytest

migen = pytest.importorskip("migen")

from bpfpga.gateware.ethport import MacDropFilter  # noqa: E402

MAC = 0x10E2D5000000            # the Colorlight's management address (boards/)


def words(frame: bytes):
    """A frame as the MAC hands it over: 32-bit words, the first byte in data[0:8]."""
    out = []
    for i in range(0, len(frame), 4):
        chunk = frame[i:i + 4]
        out.append((int.from_bytes(chunk.ljust(4, b"\0"), "little"),
                    (1 << (len(chunk) - 1)) if i + 4 >= len(frame) else 0,
                    i + 4 >= len(frame)))
    return out


def run(frames, gap_p=0.0, seed=1):
    dut = MacDropFilter(MAC)
    rng = random.Random(seed)
    beats = [w for f in frames for w in words(f)]
    got, cur = [], bytearray()
    stalls = []

    def source():
        for data, last_be, last in beats:
            while gap_p and rng.random() < gap_p:
                yield dut.sink.valid.eq(0)
                yield
            yield dut.sink.valid.eq(1)
            yield dut.sink.data.eq(data)
            yield dut.sink.last_be.eq(last_be)
            yield dut.sink.last.eq(last)
            yield
            while not (yield dut.sink.ready):
                stalls.append(1)
                yield
        yield dut.sink.valid.eq(0)

    def sink():
        yield dut.source.ready.eq(1)        # the frame gate: always ready
        for _ in range(20 * len(beats) + 50):
            yield
            if (yield dut.source.valid):
                data = yield dut.source.data
                last = yield dut.source.last
                last_be = yield dut.source.last_be
                n = last_be.bit_length() if last else 4
                cur.extend(data.to_bytes(4, "little")[:n])
                if last:
                    got.append(bytes(cur))
                    cur.clear()

    counted = []

    def count():
        for _ in range(20 * len(beats) + 60):
            yield
        counted.append((yield dut.dropped))
    migen.run_simulation(dut, [source(), sink(), count()])
    run.dropped = counted[0]
    return got, stalls


def frame(dst: int, n: int, tag: int) -> bytes:
    return dst.to_bytes(6, "big") + bytes([0x02, 0, 0, 0, 0, 1, 0x08, 0x00]) + \
        bytes((tag + i) & 0xFF for i in range(n - 14))


def test_drops_exactly_the_frames_to_the_management_address():
    near = [MAC ^ 1, MAC ^ (1 << 8), MAC ^ (1 << 16), MAC ^ (1 << 40), 0xFFFFFFFFFFFF]
    frames = [frame(MAC, 60, 0), frame(near[0], 61, 1), frame(MAC, 64, 2),
              frame(near[1], 62, 3), frame(near[2], 63, 4), frame(near[3], 60, 5),
              frame(near[4], 60, 6), b"\x10\xe2\xd5", frame(MAC, 1514, 7),
              b"\x10\xe2\xd5\x00\x00", frame(0x020000000001, 100, 8)]
    want = [f for f in frames if not (len(f) >= 6 and f[:6] == MAC.to_bytes(6, "big"))]
    assert len(want) == len(frames) - 3
    for gap_p, seed in ((0.0, 1), (0.3, 2), (0.7, 3)):
        got, stalls = run(frames, gap_p, seed)
        assert got == want, gap_p
        assert not stalls           # it never holds the MAC back
        assert run.dropped == 3     # and counts what it kept from the engine


def test_rejects_other_widths():
    with pytest.raises(ValueError, match="32"):
        MacDropFilter(MAC, dw=8)
