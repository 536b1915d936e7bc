"""Who may drive a control port (issue 19 part 3): the MAC (bpfpga/auth.py) against the
SipHash paper's vectors; the host's Etherbone takes answers only from the board's address and
only with a tag that checks; the simulated board refuses an unauthenticated client, a wrong
key and a replayed request, writes its key file for its owner only, and a slow writer cannot
lock another client out."""
import os
import socket
import stat
import struct
import threading
import time

import pytest

from bpfpga import auth
from bpfpga.errors import BpfpgaError, TargetError
from bpfpga.host.transport import Etherbone, eb_open, eb_packet, eb_parse, eb_seal

KEY = bytes(range(16))


def test_siphash_paper_vectors():
    # SipHash paper, appendix A: key 00..0f, message 00..0e
    assert auth.siphash24(KEY, bytes(range(15))) == 0xA129CA6149BE45E5
    # the reference implementation's vectors (key 00..0f, message 00..len-1): len 0 and 8
    assert auth.siphash24(KEY, b"").to_bytes(8, "little").hex() == "310e0edd47db6f72"
    assert auth.siphash24(KEY, bytes(range(8))) == 0x93F5F5799A932462


def test_tag_binds_seq_direction_nonce_and_payload():
    t = auth.tag(KEY, 5, b"abcd", b"n" * 16)
    assert auth.check(KEY, 5, b"abcd", t, b"n" * 16)
    assert not auth.check(KEY, 6, b"abcd", t, b"n" * 16)
    assert not auth.check(KEY, 5 | auth.ANSWER, b"abcd", t, b"n" * 16)
    assert not auth.check(KEY, 5, b"abce", t, b"n" * 16)
    assert not auth.check(KEY, 5, b"abcd", t, b"m" * 16)
    assert not auth.check(bytes(16), 5, b"abcd", t, b"n" * 16)


def test_key_files_are_the_owners(tmp_path, monkeypatch):
    p = tmp_path / "k" / "board.key"
    key = auth.write_key_file(p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert auth.parse_key(str(p)) == key and auth.parse_key(key.hex()) == key
    os.chmod(p, 0o644)
    with pytest.raises(BpfpgaError, match="readable by others"):
        auth.parse_key(str(p))
    monkeypatch.setenv("BPFPGA_KEY_DIR", str(tmp_path / "dir"))
    monkeypatch.delenv("BPFPGA_KEY", raising=False)
    assert auth.key_for("socket://127.0.0.1:9") is None
    k2 = auth.write_key_file(auth.simboard_key_path("127.0.0.1", 9))
    assert auth.key_for("socket://127.0.0.1:9") == k2
    monkeypatch.setenv("BPFPGA_KEY", KEY.hex())
    assert auth.key_for("socket://127.0.0.1:9") == KEY


# ---------------------------------------------------------------------------- Etherbone
class SealedBoard(threading.Thread):
    """A Python Etherbone board that takes sealed requests only (the rule gateware/ebauth.py
    implements), seq above the last taken; `forger` also answers every read from another
    socket, first, with a wrong value."""

    def __init__(self, key=KEY, forge_from_other=False, forge_tag=False):
        super().__init__(daemon=True)
        self.key, self.mem, self.last, self.refused = key, {}, -1, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.other.bind(("127.0.0.1", 0))
        self.forge_from_other, self.forge_tag = forge_from_other, forge_tag

    def run(self):
        while True:
            data, peer = self.sock.recvfrom(65536)
            opened = eb_open(self.key, data)
            if opened is None or opened[0] <= self.last or opened[0] & auth.ANSWER:
                self.refused += 1
                continue
            seq, pkt = opened
            self.last = seq
            for wc, rc, base, words, raddrs in eb_parse(pkt):
                for i, w in enumerate(words):
                    self.mem[base // 4 + i] = w
                if rc:
                    vals = [self.mem.get(a // 4, 0) for a in raddrs]
                    ans = eb_packet(writes=(base, vals))
                    bad = eb_packet(writes=(base, [0xBAD] * len(vals)))
                    if self.forge_from_other:
                        self.other.sendto(eb_seal(self.key, seq | auth.ANSWER, bad), peer)
                    if self.forge_tag:
                        forged = bytearray(eb_seal(self.key, seq | auth.ANSWER, bad))
                        forged[-1] ^= 1
                        self.sock.sendto(bytes(forged), peer)
                    self.sock.sendto(eb_seal(self.key, seq | auth.ANSWER, ans), peer)


def test_etherbone_sealed_roundtrip_and_refusals():
    b = SealedBoard()
    b.start()
    t = Etherbone(f"udp://127.0.0.1:{b.port}", timeout=0.5, key=KEY)
    t.write(0x40, [1, 2, 3])
    assert t.read(0x40, 3) == [1, 2, 3]
    assert b.refused == 0
    # without the key, or with another, nothing is written and nothing read
    for k in (None, bytes(16)):
        u = Etherbone(f"udp://127.0.0.1:{b.port}", timeout=0.2, retries=1, key=k)
        u.write(0x40, [9, 9, 9])
        with pytest.raises(TargetError, match="no Etherbone answer"):
            u.read(0x40, 1)
    assert b.mem[0x40] == 1 and b.refused == 4
    # a replayed request (same bytes) is refused by the seq window
    real, sent = t.sock, []

    class Recorder:
        def sendto(self, data, addr):
            sent.append(data)
            return real.sendto(data, addr)

        def __getattr__(self, name):
            return getattr(real, name)
    t.sock = Recorder()
    t.write(0x41, [7])
    t.write(0x41, [8])
    t.sock = real
    real.sendto(sent[0], t.addr)                # the write of 7 again
    time.sleep(0.1)
    assert t.read(0x41, 1) == [8] and b.refused == 5


@pytest.mark.parametrize("how", ["other_source", "bad_tag"])
def test_etherbone_forged_answers_are_dropped(how):
    b = SealedBoard(forge_from_other=how == "other_source", forge_tag=how == "bad_tag")
    b.start()
    t = Etherbone(f"udp://127.0.0.1:{b.port}", timeout=0.5, key=KEY)
    t.write(0x10, [0x1234])
    assert t.read(0x10, 1) == [0x1234]
    assert t.dropped == 1


def test_etherbone_unkeyed_takes_answers_from_the_board_only():
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))

    def serve():
        data, peer = srv.recvfrom(65536)
        other.sendto(eb_packet(writes=(0, [0xBAD])), peer)      # the forged reply first
        time.sleep(0.05)
        srv.sendto(eb_packet(writes=(0, [0x600D])), peer)
    threading.Thread(target=serve, daemon=True).start()
    t = Etherbone(f"udp://127.0.0.1:{srv.getsockname()[1]}", timeout=1.0, retries=1, key=None)
    assert t.read(0, 1) == [0x600D] and t.dropped == 1


# ---------------------------------------------------------------------------- sim-board
@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from bpfpga.sim.simboard import SimBoard
    os.environ.pop("BPFPGA_KEY", None)
    b = SimBoard(log=lambda m: None)
    th = threading.Thread(target=b.serve, daemon=True)
    th.start()
    yield b
    b.close()
    th.join(5)
    assert not b.key_file or not b.key_file.exists()


def _raw(board):
    s = socket.create_connection(board.addr)
    s.settimeout(2)
    s.sendall(auth.HELLO)
    hello = b""
    while len(hello) < len(auth.HELLO) + auth.NONCE_BYTES:
        hello += s.recv(64)
    return s, hello[len(auth.HELLO):]


def _budget_write(board, v):
    """Bridge commands that set BUDGET through a write window (what Device.write sends)."""
    from bpfpga.hdl import control as C
    a = C.REGS + C.R_BUDGET
    win = (C.WIN_TAG << 28) | a
    return struct.pack(">BBIII", 1, 2, C.REGS + C.R_WIN, win, ~win & 0xFFFFFFFF) + \
        struct.pack(">BBII", 1, 1, a, v)


def _closed(s):
    """The board dropped the connection (within the socket's 2 s timeout)."""
    try:
        while s.recv(64):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_simboard_key_file_and_cli_key(board):
    from bpfpga.hdl import control as C
    from bpfpga.host.device import Device
    assert stat.S_IMODE(board.key_file.stat().st_mode) == 0o600
    dev = Device(board.url, timeout=10)          # the key found by the URL
    assert dev.reg(C.R_IDENT) == C.IDENT
    dev.close()


def test_simboard_refuses_unauthenticated_and_wrong_key(board):
    from bpfpga.hdl import control as C
    from bpfpga.host.device import Device
    dev = Device(board.url, timeout=10)
    dev.set_reg(C.R_BUDGET, 1000)
    refused0 = board.refused
    # a plain UART-bridge client (the old protocol): a read gets no answer, a write no effect
    s, _ = _raw(board)
    s.sendall(_budget_write(board, 77) + struct.pack(">BBI", 2, 1, C.REGS + C.R_IDENT))
    assert _closed(s)
    # the host without the key: a one-line error that says so
    with pytest.raises(TargetError, match="requires authentication"):
        _no_key_device(board).read(C.REGS + C.R_IDENT, 1)
    # a record under another key
    s, nonce = _raw(board)
    s.sendall(auth.record(bytes(16), nonce, 1, _budget_write(board, 78)))
    assert _closed(s)
    assert dev.reg(C.R_BUDGET) == 1000
    assert board.refused >= refused0 + 2
    dev.close()


def _no_key_device(board):
    from bpfpga.host.transport import UartBridge
    key_dir = os.environ.get("BPFPGA_KEY_DIR")
    os.environ["BPFPGA_KEY_DIR"] = "/nonexistent"     # another user: no key file found
    try:
        return UartBridge(board.url, timeout=0.5, retries=1)
    finally:
        if key_dir is None:
            os.environ.pop("BPFPGA_KEY_DIR")
        else:
            os.environ["BPFPGA_KEY_DIR"] = key_dir


def test_simboard_refuses_a_replayed_request(board):
    from bpfpga.hdl import control as C
    from bpfpga.host.device import Device
    dev = Device(board.url, timeout=10)
    s, nonce = _raw(board)
    rec = auth.record(board.key, nonce, 1, _budget_write(board, 4321))
    s.sendall(rec)
    deadline = time.time() + 10
    while dev.reg(C.R_BUDGET) != 4321 and time.time() < deadline:
        time.sleep(0.05)
    assert dev.reg(C.R_BUDGET) == 4321            # the genuine request ran
    dev.set_reg(C.R_BUDGET, 1000)
    s.sendall(rec)                                 # the same record again, same session
    assert _closed(s)
    s2, _ = _raw(board)                            # ... and in a new session (new nonce)
    s2.sendall(rec)
    assert _closed(s2)
    assert dev.reg(C.R_BUDGET) == 1000
    dev.close()


def test_simboard_slow_writer_does_not_lock_out_another(board):
    from bpfpga.hdl import control as C
    from bpfpga.host.device import Device
    s, nonce = _raw(board)
    rec = auth.record(board.key, nonce, 1, _budget_write(board, 999))
    stop = threading.Event()

    def slow():                                    # one byte every 50 ms
        try:
            for b in rec:
                if stop.is_set():
                    return
                s.sendall(bytes([b]))
                time.sleep(0.05)
        except OSError:
            pass
    th = threading.Thread(target=slow, daemon=True)
    th.start()
    time.sleep(0.3)                                # the slow request is under way
    dev = Device(board.url, timeout=10)
    t0 = time.time()
    for _ in range(5):
        dev.set_reg(C.R_BUDGET, 1000, verify=True)
        assert dev.reg(C.R_IDENT) == C.IDENT
    took = time.time() - t0
    assert took < 3, took
    time.sleep(1.2)                                # past the per-request deadline
    assert _closed(s)
    stop.set()
    assert dev.reg(C.R_BUDGET) == 1000            # the stalled request never ran
    dev.close()
