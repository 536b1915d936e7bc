"""Transports to a Wishbone control port, compatible with LiteX's host bridges, so LiteX's own
`litex_server` / `RemoteClient` can talk to our gateware and our host code to LiteX's.

- UART bridge (LiteX ``UARTBone``): a device path (``/dev/ttyUSB1``, ``/dev/ttyUSB1@115200``)
  or any pyserial URL (``socket://127.0.0.1:PORT`` for the simulated board). Commands:
  ``0x01`` write / ``0x02`` read, a length byte (words), a 32-bit big-endian *word* address,
  then big-endian 32-bit words. No framing: a lost byte shifts the stream, so after a timeout
  the client waits for the bridge's idle reset (LiteX resets its parser after 100 ms without
  bytes), drops what is buffered, and retries. Reads are retried; writes are not (the
  integrity of what a write stored is checked above this layer, against a checksum the
  hardware computes).
- Etherbone over UDP (``udp://HOST[:PORT]``, port 1234 by default): one packet per request,
  byte addresses, as LiteEth's Etherbone core and LiteX's RemoteClient use.

Both give ``read(word_addr, n) -> list[int]`` and ``write(word_addr, words)``.

Authentication (bpfpga/auth.py): with a key (``key=``, $BPFPGA_KEY, or the key file a
simulated board wrote for its ``socket://`` URL) the UART-bridge bytes travel in records that
carry a SipHash-2-4 tag, a sequence number and the board's per-connection nonce
(:class:`AuthPort`), and Etherbone packets carry a tag and a sequence number, answers
included: an answer that does not authenticate, or comes from another address than the
board's, is not taken.
"""
from __future__ import annotations

import contextlib
import random
import socket
import struct
import time

from bpfpga import auth
from bpfpga.errors import TargetError

MAX_BURST = 255
UART_IDLE_RESET = 0.15        # > LiteX UARTBone's 100 ms parser timeout
ETHERBONE_PORT = 1234
EB_MAGIC = 0x4E6F



def read_until_silence(port, n: int, url: str) -> bytes:
    """Up to n bytes from a serial-like port, as long as they keep coming (each read ends at
    the port's timeout of silence); a failing port is a one-line TargetError."""
    got = b""
    while len(got) < n:
        try:
            chunk = port.read(n - len(got))
        except OSError as e:
            raise TargetError(f"{url}: the link is broken ({e})") from None
        if not chunk:
            break
        got += chunk
    return got

class Transport:
    url = "?"

    def read(self, addr: int, n: int, retry: bool = True) -> list[int]:
        raise NotImplementedError

    def write(self, addr: int, words) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class AuthPort:
    """A pyserial-like port that carries the UART-bridge bytes in authenticated records
    (bpfpga/auth.py) over ``port``: what is written goes out as one request record (or, inside
    :meth:`batch`, everything written in it as one: the board runs one record's commands with
    no other client's between them); what is read is the payload of answer records whose tag,
    nonce and seq check. A record that does not authenticate is an error, never data."""

    def __init__(self, port, key: bytes, url: str = "?"):
        self.port, self.key, self.url = port, key, url
        self.seq = 0
        self.min_seq = 1
        self.plain = bytearray()
        self.pending: bytearray | None = None
        # the client speaks first (pyserial's socket:// drains what arrived before open()
        # returned), the board answers with its nonce
        self.port.write(auth.HELLO)
        hello = self._exact(len(auth.HELLO) + auth.NONCE_BYTES)
        if hello is None or not hello.startswith(auth.HELLO):
            raise TargetError(f"{url}: the board did not open an authenticated session (no "
                              f"bpfpga sim-board there, or one of another version)")
        self.nonce = hello[len(auth.HELLO):]

    def _exact(self, n: int) -> bytes | None:
        """n bytes, or None on silence before the first; a record cut short is an error."""
        got = read_until_silence(self.port, n, self.url)
        if not got:
            return None
        if len(got) < n:
            raise TargetError(f"{self.url}: an answer record cut short ({len(got)} of "
                              f"{n} bytes); the board dropped the session?")
        return got

    def write(self, data: bytes) -> int:
        if self.pending is not None:
            self.pending += data
        else:
            self._send(bytes(data))
        return len(data)

    def _send(self, data: bytes) -> None:
        for i in range(0, len(data), auth.MAX_REQUEST):
            self.seq += 1
            self.port.write(auth.record(self.key, self.nonce, self.seq,
                                        data[i:i + auth.MAX_REQUEST]))

    @contextlib.contextmanager
    def batch(self):
        outer = self.pending is None
        if outer:
            self.pending = bytearray()
        try:
            yield
        finally:
            if outer:
                data, self.pending = bytes(self.pending), None
                if data:
                    self._send(data)

    def read(self, n: int) -> bytes:
        while not self.plain:
            head = self._exact(auth.REC_HEAD)
            if head is None:
                break
            length, seq = auth.record_head(head)
            if length > (1 << 26):
                raise TargetError(f"{self.url}: a record of {length} bytes: not the board")
            body = self._exact(length + auth.TAG_BYTES) or b""
            if len(body) < length + auth.TAG_BYTES or not auth.check(
                    self.key, seq, body[:length], body[length:], self.nonce):
                raise TargetError(f"{self.url}: an answer that does not authenticate (wrong "
                                  f"key, or not the board's)")
            req = seq & ~auth.ANSWER
            if not seq & auth.ANSWER or req > self.seq:
                raise TargetError(f"{self.url}: an answer to no request (seq {req})")
            if req >= self.min_seq:         # else an answer to a request before a reset
                self.plain += body[:length]
        out = bytes(self.plain[:n])
        del self.plain[:n]
        return out

    def reset_input_buffer(self) -> None:
        # answers to the requests sent so far are of no use now; later ones are
        self.plain.clear()
        self.min_seq = self.seq + 1

    @property
    def timeout(self):
        return self.port.timeout

    @timeout.setter
    def timeout(self, value) -> None:
        self.port.timeout = value

    def close(self) -> None:
        self.port.close()

    def __getattr__(self, name):
        return getattr(self.port, name)


class UartBridge(Transport):
    def __init__(self, url: str, timeout: float = 2.0, retries: int = 3, port=None,
                 key: str | bytes | None = None):
        self.url = url
        self.timeout = timeout
        self.retries = retries
        if port is not None:
            self.port = port
            return
        import serial
        target, baud = url, 115200
        if "@" in url and not url.startswith(("socket://", "rfc2217://", "loop://")):
            target, b = url.rsplit("@", 1)
            baud = int(b)
        k = auth.key_for(url, key)
        try:
            self.port = serial.serial_for_url(target, baudrate=baud, timeout=timeout)
        except (serial.SerialException, OSError, ValueError) as e:
            raise TargetError(f"cannot open {url}: {e}") from None
        if k is not None:
            try:
                self.port = AuthPort(self.port, k, url)
            except BaseException:
                self.port.close()
                raise

    def _needs_key(self) -> TargetError:
        return TargetError(f"{self.url}: the board requires authentication and no key was "
                           f"found: give --key or $BPFPGA_KEY, or run as the user who "
                           f"started it (its key file is in {auth.key_dir()})")

    @contextlib.contextmanager
    def atomic(self):
        """Writes inside run on the board with no other client's command between them (one
        authenticated record); on a plain UART, one host owns the bridge anyway."""
        batch = getattr(self.port, "batch", None)
        with batch() if batch is not None else contextlib.nullcontext():
            yield

    def _send(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except OSError as e:
            raise TargetError(f"{self.url}: the link is broken ({e})") from None

    def write(self, addr: int, words) -> None:
        words = [w & 0xFFFFFFFF for w in words]
        out = bytearray()
        for i in range(0, len(words), MAX_BURST):
            chunk = words[i:i + MAX_BURST]
            out += struct.pack(">BBI", 0x01, len(chunk), addr + i)
            out += struct.pack(f">{len(chunk)}I", *chunk)
        self._send(bytes(out))

    def _resync(self) -> None:
        # the bridge's parser resets after an idle gap; bytes of the failed answer that are
        # still on their way (a slow or loaded board) are drained until the link is quiet, so
        # they cannot shift the next answer
        time.sleep(UART_IDLE_RESET)
        old = getattr(self.port, "timeout", None)
        try:
            if old is not None:
                self.port.timeout = max(UART_IDLE_RESET, min(self.timeout, 1.0))
            for _ in range(1000):
                if not self.port.read(4096):
                    break
        except (OSError, ValueError):
            pass
        finally:
            if old is not None:
                try:
                    self.port.timeout = old
                except (OSError, ValueError):
                    pass
        try:
            self.port.reset_input_buffer()
        except OSError:
            pass

    # (word address, value) of a register that never changes (the Device sets its IDENT): read
    # after every request, it frames the answer; bytes of an answer to no request of ours (a
    # garbled write the bridge parsed as a read) would otherwise shift every later answer
    canary: tuple[int, int] | None = None
    _answered = False

    def read(self, addr: int, n: int, retry: bool = True) -> list[int]:
        if n <= 0:
            return []
        req = bytearray()
        for i in range(0, n, MAX_BURST):
            req += struct.pack(">BBI", 0x02, min(MAX_BURST, n - i), addr + i)
        if self.canary is not None:
            req += struct.pack(">BBI", 0x02, 1, self.canary[0])
        want = n + (self.canary is not None)
        tries = self.retries if retry else 1
        got = b""
        for _ in range(tries):
            # bytes waiting now answer no request of ours (writes get no answer): a garbled
            # write parsed by the bridge as a read; they would shift every later answer
            try:
                self.port.reset_input_buffer()
            except OSError:
                pass
            self._send(bytes(req))
            got = self._read_answer(4 * want)
            if not self._answered and got[:4] == auth.REFUSED[:4] and \
                    self.url.startswith("socket://"):
                # a simulated board refusing a client without the key (its first answer)
                got += self._read_answer(len(auth.REFUSED) - 4)
                if got.startswith(auth.REFUSED):
                    raise self._needs_key()
            self._answered = True
            if len(got) == 4 * want:
                words = list(struct.unpack(f">{want}I", got))
                if self.canary is None or words[-1] == self.canary[1]:
                    return words[:n]
            self._resync()
        if got.startswith(auth.REFUSED):
            raise self._needs_key()
        if len(got) == 4 * want:
            raise TargetError(f"{self.url}: the board's answers are out of step (the framing "
                              f"register read back 0x{struct.unpack('>I', got[-4:])[0]:08x}, "
                              f"not 0x{self.canary[1]:08x}, after {tries} tries); is the "
                              f"link noisy or another program talking to the board?")
        raise TargetError(f"{self.url}: no answer from the board ({len(got)} of {4 * want} bytes "
                          f"after {tries} tries, each ended by {self.timeout} s of silence); is "
                          f"it powered, flashed and connected?")

    def _read_answer(self, nbytes: int) -> bytes:
        # the timeout is for silence, not for the whole answer: a long burst over a slow link
        # (a loaded simulated board, a low baud rate) keeps coming as long as bytes arrive
        return read_until_silence(self.port, nbytes, self.url)

    def close(self) -> None:
        try:
            self.port.close()
        except OSError:
            pass


def eb_packet(writes: tuple[int, list[int]] | None = None,
              reads: tuple[int, list[int]] | None = None, probe: bool = False) -> bytes:
    """One Etherbone packet with one record: writes = (base byte address, words), reads =
    (return base address, byte addresses to read)."""
    flags = 0x10 | (0x01 if probe else 0)            # version 1, probe flag
    hdr = struct.pack(">HBBI", EB_MAGIC, flags, 0x44, 0)
    if probe:
        return hdr
    wc = len(writes[1]) if writes else 0
    rc = len(reads[1]) if reads else 0
    rec = struct.pack(">BBBB", 0, 0x0F, wc, rc)
    body = b""
    if wc:
        body += struct.pack(f">I{wc}I", writes[0], *[w & 0xFFFFFFFF for w in writes[1]])
    if rc:
        body += struct.pack(f">I{rc}I", reads[0], *reads[1])
    return hdr + rec + body


def eb_parse(data: bytes) -> list[tuple[int, int, int, list[int], list[int]]]:
    """Records of an Etherbone packet: (wcount, rcount, base, write words, read addresses)."""
    if len(data) < 8:
        raise ValueError("short Etherbone packet")
    magic, flags, sizes, _ = struct.unpack_from(">HBBI", data, 0)
    if magic != EB_MAGIC:
        raise ValueError(f"bad Etherbone magic 0x{magic:04x}")
    out = []
    o = 8
    while o + 4 <= len(data):
        _, _, wc, rc = struct.unpack_from(">BBBB", data, o)
        o += 4
        wbase = 0
        words: list[int] = []
        raddrs: list[int] = []
        rbase = 0
        if wc:
            wbase, *words = struct.unpack_from(f">I{wc}I", data, o)
            o += 4 * (wc + 1)
        if rc:
            rbase, *raddrs = struct.unpack_from(f">I{rc}I", data, o)
            o += 4 * (rc + 1)
        out.append((wc, rc, wbase if wc else rbase, list(words), list(raddrs)))
    return out


def udp_address(url: str) -> tuple[str, int]:
    """``udp://HOST[:PORT]`` as a resolved IPv4 socket address (a TargetError names what is
    wrong with it)."""
    host, sep, port = url[len("udp://"):].partition(":")
    if not host:
        raise TargetError(f"{url}: no host (expected udp://HOST[:PORT])")
    if sep and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise TargetError(f"{url}: port '{port}' is not a number 1..65535")
    try:
        info = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise TargetError(f"{url}: cannot resolve host '{host}' "
                          f"({getattr(e, 'strerror', None) or e})") from None
    return info[0][4][0], int(port) if sep else ETHERBONE_PORT


def eb_seal(key: bytes, seq: int, packet: bytes) -> bytes:
    """An authenticated Etherbone UDP payload: seq (8 bytes, big-endian) | the Etherbone
    packet | the SipHash-2-4 tag of the bytes before it (gateware/ebauth.py checks it)."""
    body = (seq & auth.SEQ_MASK).to_bytes(8, "big") + packet
    return body + auth.tag(key, seq, packet)


def eb_open(key: bytes, data: bytes) -> tuple[int, bytes] | None:
    """(seq, Etherbone packet) of an authenticated payload whose tag checks, else None."""
    if len(data) < 8 + auth.TAG_BYTES:
        return None
    seq = int.from_bytes(data[:8], "big")
    packet = data[8:-auth.TAG_BYTES]
    if not auth.check(key, seq, packet, data[-auth.TAG_BYTES:]):
        return None
    return seq, packet


class Etherbone(Transport):
    """Etherbone over UDP. Answers are taken only from the board's own address and port;
    with a key every request is sealed (:func:`eb_seal`, seq = the host's clock in ns, never
    repeated) and an answer is taken only with its request's seq (bit 63 set) and a tag that
    checks: a forged or replayed answer is dropped, as one from another address is."""

    def __init__(self, url: str, timeout: float = 1.0, retries: int = 3,
                 key: str | bytes | None = None):
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.addr = udp_address(url)
        self.key = auth.key_for(url, key)
        self.seq = 0
        self.dropped = 0          # answers not taken (another source, no or a bad tag)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)

    def _next_seq(self) -> int:
        self.seq = max(time.time_ns(), self.seq + 1) & ~auth.ANSWER
        return self.seq

    def _send(self, packet: bytes) -> int:
        seq = self._next_seq()
        try:
            self.sock.sendto(eb_seal(self.key, seq, packet) if self.key else packet,
                             self.addr)
        except OSError as e:
            raise TargetError(f"{self.url}: cannot send to the board ({e.strerror or e})") \
                from None
        return seq

    def write(self, addr: int, words) -> None:
        words = list(words)
        for i in range(0, len(words), MAX_BURST):
            chunk = words[i:i + MAX_BURST]
            self._send(eb_packet(writes=(4 * (addr + i), chunk)))

    def _answer(self, seq: int, deadline: float) -> bytes | None:
        """The Etherbone packet answering request ``seq``, or None at the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(65536)
            except socket.timeout:
                return None
            if src != self.addr:
                self.dropped += 1
                continue
            if self.key is None:
                return data
            opened = eb_open(self.key, data)
            if opened is None or opened[0] != seq | auth.ANSWER:
                self.dropped += 1
                continue
            return opened[1]

    def read(self, addr: int, n: int, retry: bool = True) -> list[int]:
        out: list[int] = []
        for i in range(0, n, MAX_BURST):
            cnt = min(MAX_BURST, n - i)
            pkt = eb_packet(reads=(0, [4 * (addr + i + j) for j in range(cnt)]))
            for attempt in range(self.retries if retry else 1):
                seq = self._send(pkt)
                data = self._answer(seq, time.monotonic() + self.timeout)
                if data is None:
                    continue
                try:
                    recs = eb_parse(data)
                except (ValueError, struct.error):
                    continue
                if recs and recs[0][0] == cnt:
                    out += recs[0][3]
                    break
            else:
                raise TargetError(f"{self.url}: no Etherbone answer from the board after "
                                  f"{self.retries} tries of {self.timeout} s"
                                  + (f" ({self.dropped} answer(s) dropped: another source "
                                     f"or a tag that does not check)" if self.dropped else ""))
        return out

    def close(self) -> None:
        self.sock.close()


class FaultyPort:
    """A pyserial-like port that drops and corrupts bytes on the way out and back, for tests
    of what the host does when the link is bad. Deterministic (seeded)."""

    def __init__(self, port, drop: float = 0.0, corrupt: float = 0.0, seed: int = 1,
                 tx: bool = True, rx: bool = True):
        self.port = port
        self.drop = drop
        self.corrupt = corrupt
        self.rng = random.Random(seed)
        self.tx, self.rx = tx, rx
        self.dropped = 0
        self.corrupted = 0

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            r = self.rng.random()
            if r < self.drop:
                self.dropped += 1
                continue
            if r < self.drop + self.corrupt:
                self.corrupted += 1
                b ^= 1 << self.rng.randrange(8)
            out.append(b)
        return bytes(out)

    def write(self, data: bytes) -> int:
        self.port.write(self._mangle(data) if self.tx else data)
        return len(data)

    def read(self, n: int) -> bytes:
        data = self.port.read(n)
        return self._mangle(data) if self.rx else data

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()

    @property
    def timeout(self):
        return self.port.timeout

    @timeout.setter
    def timeout(self, value) -> None:
        self.port.timeout = value

    def __getattr__(self, name):
        return getattr(self.port, name)


def open_transport(url: str, timeout: float = 2.0, retries: int = 3,
                   key: str | bytes | None = None) -> Transport:
    if url.startswith("udp://"):
        return Etherbone(url, timeout=min(timeout, 1.0), retries=retries, key=key)
    return UartBridge(url, timeout=timeout, retries=retries, key=key)
