"""Classic pcap files (the format tcpdump and scapy write): read and write raw frames."""
from __future__ import annotations

import struct
from pathlib import Path

from bpfpga.errors import BpfpgaError

LINKTYPE_ETHERNET = 1


def read(path: str | Path) -> list[bytes]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise BpfpgaError(f"{p}: cannot read: {e.strerror}") from None
    if len(data) < 24:
        raise BpfpgaError(f"{p}: not a pcap file (too short)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        raise BpfpgaError(f"{p}: pcapng is not supported; convert with "
                          f"`editcap -F pcap IN OUT`")
    else:
        raise BpfpgaError(f"{p}: not a pcap file (magic {magic.hex()})")
    linktype = struct.unpack_from(e + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise BpfpgaError(f"{p}: link type {linktype} is not Ethernet")
    out = []
    o = 24
    while o < len(data):
        if o + 16 > len(data):
            raise BpfpgaError(f"{p}: truncated record header at byte {o}")
        _, _, incl, _ = struct.unpack_from(e + "IIII", data, o)
        o += 16
        if o + incl > len(data):
            raise BpfpgaError(f"{p}: truncated packet {len(out)} at byte {o}")
        out.append(data[o:o + incl])
        o += incl
    return out


def write(path: str | Path, frames: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i, 0, len(fr), len(fr)))
            f.write(fr)
