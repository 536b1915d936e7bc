"""Who may drive a control port: a keyed MAC over every request and every answer.

One MAC for every authenticated link: SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
short-input PRF", 2012) with a 128-bit key, written here from the paper and checked against its
test vectors (tests/test_auth.py); the gateware verifier (gateware/ebauth.py) computes the
same function. The message a tag covers is ``nonce || seq (8 bytes, big-endian) || payload``:

- ``seq`` numbers the requests. A request's seq has bit 63 clear and must be greater than the
  last one the board accepted (the replay window: a request replayed, or one older than the
  last accepted, is refused); the answer carries the request's seq with bit 63 set, so an
  answer cannot pass for a request nor an answer to another request.
- ``nonce`` binds a stream session to one connection: the simulated board sends 16 fresh
  random bytes on every connection (a record replayed into another connection fails its
  tag). Etherbone over UDP has no session; its nonce is empty and its seq the host's clock in
  nanoseconds (never smaller than the last one it sent), so the window survives restarts of
  the host.

Keys: 16 bytes, given as 32 hex digits (``--key``, $BPFPGA_KEY) or in a key file (the hex on
one line) readable by its owner only (mode 0600); `bpfpga sim-board` writes one per board it
serves (:func:`simboard_key_path`) and the CLI reads it for that board's URL.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from bpfpga.errors import BpfpgaError

KEY_BYTES = 16
TAG_BYTES = 8
ANSWER = 1 << 63              # set in an answer's seq
SEQ_MASK = (1 << 64) - 1
_M = SEQ_MASK


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _M
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _M
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _M
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _M
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash24(key: bytes, msg: bytes) -> int:
    """SipHash-2-4 of ``msg`` under the 16-byte ``key``, as a 64-bit integer (its byte
    encoding is little-endian: :func:`tag`)."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a SipHash key is {KEY_BYTES} bytes, not {len(key)}")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    end = len(msg) - len(msg) % 8
    for i in range(0, end + 8, 8):
        if i < end:
            m = int.from_bytes(msg[i:i + 8], "little")
        else:                 # the last block: the bytes left and the length's low byte
            m = int.from_bytes(msg[end:], "little") | (len(msg) & 0xFF) << 56
        v3 ^= m
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def tag(key: bytes, seq: int, payload: bytes, nonce: bytes = b"") -> bytes:
    """The 8-byte tag of one request (seq < 2^63) or answer (seq | ANSWER)."""
    return siphash24(key, nonce + (seq & SEQ_MASK).to_bytes(8, "big") + payload) \
        .to_bytes(TAG_BYTES, "little")


def check(key: bytes, seq: int, payload: bytes, got: bytes, nonce: bytes = b"") -> bool:
    return secrets.compare_digest(tag(key, seq, payload, nonce), bytes(got))


# ---------------------------------------------------------------------------- keys
def parse_key(text: str, what: str = "key") -> bytes:
    """A key from 32 hex digits, or from the file they are in (which must not be readable by
    others than its owner)."""
    s = text.strip()
    if len(s) == 2 * KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in s):
        return bytes.fromhex(s)
    return read_key_file(Path(s), what)


def read_key_file(path: Path, what: str = "key") -> bytes:
    try:
        st = path.stat()
        text = path.read_text()
    except OSError as e:
        raise BpfpgaError(f"{what} {path}: cannot read it ({e.strerror})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BpfpgaError(f"{what} {path}: readable by others (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    s = text.strip()
    try:
        key = bytes.fromhex(s)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise BpfpgaError(f"{what} {path}: not a key ({2 * KEY_BYTES} hex digits)")
    return key


def write_key_file(path: Path, key: bytes | None = None) -> bytes:
    """Create ``path`` (mode 0600, its directory 0700 if made here) holding ``key`` (a new
    random one by default); returns the key."""
    key = key if key is not None else secrets.token_bytes(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (key.hex() + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return key


def key_dir() -> Path:
    """Where the simulated boards' key files live: $BPFPGA_KEY_DIR, else
    $XDG_RUNTIME_DIR/bpfpga, else ~/.local/state/bpfpga/keys."""
    d = os.environ.get("BPFPGA_KEY_DIR")
    if d:
        return Path(d)
    run = os.environ.get("XDG_RUNTIME_DIR")
    if run and Path(run).is_dir():
        return Path(run) / "bpfpga"
    return Path.home() / ".local" / "state" / "bpfpga" / "keys"


def simboard_key_path(host: str, port: int) -> Path:
    return key_dir() / f"sim-board-{host}-{port}.key"


def key_for(url: str, key: str | bytes | None = None) -> bytes | None:
    """The key to drive the device at ``url`` with: ``key`` (bytes, hex or a file), else
    $BPFPGA_KEY, else the key file a simulated board wrote for this socket:// URL, else None
    (an unauthenticated link: a UART)."""
    if isinstance(key, bytes):
        return key
    if key:
        return parse_key(key, "--key")
    env = os.environ.get("BPFPGA_KEY")
    if env:
        return parse_key(env, "$BPFPGA_KEY")
    if url.startswith("socket://"):
        host, _, port = url[len("socket://"):].rpartition(":")
        if port.isdigit():
            p = simboard_key_path(host, int(port))
            if p.exists():
                return read_key_file(p, "the simulated board's key file")
    return None


# ---------------------------------------------------------------------------- stream records
# The simulated board's authenticated stream (sim/simboard.py, host/transport.py AuthPort):
# on every connection the client sends HELLO and the board answers HELLO + a 16-byte nonce
# (a client that starts otherwise gets REFUSED and is dropped); then each side sends records
#   length u32 (big-endian, of the payload) | seq u64 (big-endian) | payload | tag (8 bytes)
# whose tag covers nonce || seq || payload. A request's payload is LiteX UART-bridge commands
# (the board runs every complete command of one record under its lock, and only those); an
# answer's is the bridge's answer bytes to that record's reads.
HELLO = b"BPFA\x01"
REFUSED = b"BPFA\x00"
NONCE_BYTES = 16
REC_HEAD = 12
MAX_REQUEST = 1 << 16         # bytes of payload a board takes in one request record


def record(key: bytes, nonce: bytes, seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + (seq & SEQ_MASK).to_bytes(8, "big") + \
        payload + tag(key, seq, payload, nonce)


def record_head(head: bytes) -> tuple[int, int]:
    """(payload length, seq) of a record's first REC_HEAD bytes."""
    return int.from_bytes(head[:4], "big"), int.from_bytes(head[4:12], "big")
