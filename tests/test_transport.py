"""Transports: the LiteX UART-bridge protocol over a TCP socket (as the simulated board
serves it) and Etherbone over UDP, each against a small in-test bridge with a word memory,
plus a bad link: timeouts, resynchronisation, one-line errors."""
import socket
import struct
import threading
import time

import pytest

from bpfpga.errors import TargetError
from bpfpga.host.transport import (Etherbone, FaultyPort, UartBridge, eb_packet, eb_parse,
                                   open_transport)


class UartBoneServer(threading.Thread):
    """The bridge's side of the protocol, with LiteX's idle reset of the parser."""

    def __init__(self, idle_reset=0.1):
        super().__init__(daemon=True)
        self.mem = {}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.idle_reset = idle_reset
        self.resets = 0

    def run(self):
        conn, _ = self.sock.accept()
        conn.settimeout(self.idle_reset)
        buf = b""
        while True:
            try:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            except socket.timeout:
                if buf:
                    self.resets += 1
                buf = b""
                continue
            while len(buf) >= 6:
                cmd, n, addr = struct.unpack_from(">BBI", buf)
                if cmd == 1:
                    if len(buf) < 6 + 4 * n:
                        break
                    for i, w in enumerate(struct.unpack_from(f">{n}I", buf, 6)):
                        self.mem[addr + i] = w
                    buf = buf[6 + 4 * n:]
                elif cmd == 2:
                    conn.sendall(struct.pack(f">{n}I", *[self.mem.get(addr + i, 0)
                                                         for i in range(n)]))
                    buf = buf[6:]
                else:
                    buf = buf[1:]


def test_uart_bridge_roundtrip_over_socket():
    srv = UartBoneServer()
    srv.start()
    t = open_transport(f"socket://127.0.0.1:{srv.port}", timeout=1.0)
    words = list(range(1000, 1600))
    t.write(0x100, words)
    assert t.read(0x100, 600) == words
    t.write(7, [0xDEADBEEF])
    assert t.read(7, 1) == [0xDEADBEEF]
    t.close()


def test_uart_bridge_recovers_from_lost_bytes_on_reads():
    srv = UartBoneServer()
    srv.start()
    import serial
    raw = serial.serial_for_url(f"socket://127.0.0.1:{srv.port}", timeout=0.3)
    raw.write(struct.pack(">BBII", 1, 1, 5, 42))
    bad = FaultyPort(raw, drop=0.5, seed=3, rx=False)
    t = UartBridge("faulty", timeout=0.3, retries=1, port=bad)
    with pytest.raises(TargetError, match="no answer"):
        for _ in range(20):
            t.read(5, 1)
    # the link heals: after the idle reset the bridge parses commands again
    bad.drop = 0.0
    t.retries = 3
    assert t.read(5, 1) == [42]
    assert srv.resets >= 1


class _SlowPort:
    """A link that answers in small pieces, each within the timeout, the whole answer taking
    several timeouts (a loaded simulated board, a low baud rate)."""

    def __init__(self, answer: bytes, piece: int, gap: float):
        self.answer, self.piece, self.gap = answer, piece, gap
        self.reads = 0

    def write(self, data):
        return len(data)

    def reset_input_buffer(self):
        pass

    def read(self, n):
        self.reads += 1
        time.sleep(self.gap)
        out, self.answer = self.answer[:min(n, self.piece)], self.answer[min(n, self.piece):]
        return out

    def close(self):
        pass


def test_uart_bridge_timeout_is_for_silence_not_for_a_long_answer():
    words = list(range(64))
    port = _SlowPort(struct.pack(">64I", *words), piece=16, gap=0.05)
    t = UartBridge("slow", timeout=0.1, retries=1, port=port)
    t0 = time.time()
    assert t.read(0, 64) == words          # 16 pieces, 0.8 s in all: 8 timeouts' worth
    assert time.time() - t0 > 0.1 and port.reads >= 16
    # a link that stops half way is still a clear error, not a hang
    port = _SlowPort(struct.pack(">64I", *words)[:100], piece=16, gap=0.05)
    t = UartBridge("slow", timeout=0.1, retries=1, port=port)
    with pytest.raises(TargetError, match=r"no answer from the board \(100 of 256 bytes"):
        t.read(0, 64)


def test_lost_board_is_a_clear_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)                      # accepts, never answers
    port = s.getsockname()[1]
    t = open_transport(f"socket://127.0.0.1:{port}", timeout=0.2, retries=2)
    t0 = time.time()
    with pytest.raises(TargetError, match="no answer from the board"):
        t.read(0, 4)
    assert time.time() - t0 < 5
    with pytest.raises(TargetError, match="cannot open"):
        open_transport("socket://127.0.0.1:1", timeout=0.2)
    with pytest.raises(TargetError, match="cannot open"):
        open_transport("/dev/does-not-exist", timeout=0.2)


class EtherboneServer(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.mem = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            data, peer = self.sock.recvfrom(65536)
            for wc, rc, base, words, raddrs in eb_parse(data):
                for i, w in enumerate(words):
                    self.mem[(base // 4) + i] = w
                if rc:
                    vals = [self.mem.get(a // 4, 0) for a in raddrs]
                    self.sock.sendto(eb_packet(writes=(base, vals)), peer)


def test_etherbone_roundtrip():
    srv = EtherboneServer()
    srv.start()
    t = open_transport(f"udp://127.0.0.1:{srv.port}", timeout=0.5)
    assert isinstance(t, Etherbone)
    t.write(0x40, [1, 2, 3, 0xFFFFFFFF])
    assert t.read(0x40, 4) == [1, 2, 3, 0xFFFFFFFF]
    t.write(0x1000, list(range(700)))
    assert t.read(0x1000, 700) == list(range(700))


def test_etherbone_packet_layout():
    p = eb_packet(writes=(0x10, [0x11223344]))
    assert p[:4] == b"\x4e\x6f\x10\x44"
    assert p[8:12] == b"\x00\x0f\x01\x00"
    assert p[12:] == b"\x00\x00\x00\x10\x11\x22\x33\x44"
    with pytest.raises(ValueError, match="magic"):
        eb_parse(b"\x00" * 12)


def test_etherbone_silence_is_a_clear_error():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    t = Etherbone(f"udp://127.0.0.1:{s.getsockname()[1]}", timeout=0.1, retries=2)
    with pytest.raises(TargetError, match="no Etherbone answer"):
        t.read(0, 1)
