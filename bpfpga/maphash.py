"""The hash the engine's helper unit gives a map key (hdl/maps_hw.py builds it in gates), for
the host, which reads and writes hash maps in map memory itself (host/device.py). Pure Python.
"""
from __future__ import annotations

M32 = 0xFFFF_FFFF
M64 = (1 << 64) - 1


def _rotl64(x: int, n: int) -> int:
    return ((x << n) | (x >> (64 - n))) & M64


def hash_step(h: int, w: int) -> int:
    """One 64-bit key word into the running hash (cheap in gates: rotate, xor, one adder)."""
    t = (h ^ w) & M64
    return (_rotl64(t, 29) ^ ((t + (t >> 11)) & M64)) & M64


def hash_final(h: int) -> int:
    x = (h ^ (h >> 32)) & M32
    x ^= x >> 15
    x = (x + (x << 5)) & M32
    x ^= x >> 13
    return x


def key_hash(key: bytes) -> int:
    """The hash of a map key as the hardware computes it: the key size seeds it, then every
    8-byte little-endian word (the last zero-padded)."""
    h = len(key)
    for i in range(0, len(key), 8):
        h = hash_step(h, int.from_bytes(key[i:i + 8].ljust(8, b"\0"), "little"))
    return hash_final(h)
