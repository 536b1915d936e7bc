"""The raw bpf() syscall through ctypes: no libbpf at run time.

Each command fills a zeroed ``union bpf_attr`` buffer at the offsets of the kernel's uapi
(``include/uapi/linux/bpf.h``); the kernel checks that every byte after the fields a command
uses is zero, so a buffer larger than this code knows about is harmless. Errors come back as
:class:`BpfError` (an OSError with the errno), which the kernel target turns into
user-facing TargetErrors.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import struct

from bpfpga.errors import TargetError

# enum bpf_cmd
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_FREEZE = 22

# enum bpf_prog_type
BPF_PROG_TYPE_XDP = 6

# map update flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

# prog_flags
BPF_F_XDP_HAS_FRAGS = 1 << 5

BPF_OBJ_NAME_LEN = 16
ATTR_SIZE = 160            # >= every field used here; the tail is zero as the kernel wants

_SYSCALL_NR = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280,
               "loongarch64": 280, "i386": 357, "i686": 357, "armv7l": 386, "armv6l": 386,
               "ppc64le": 361, "ppc64": 361, "s390x": 351, "mips64": 5315}


class BpfError(OSError):
    """A bpf() command failed; ``errno`` says why, ``log`` holds the verifier log if any."""

    def __init__(self, err: int, what: str, log: str = ""):
        super().__init__(err, f"{what}: {os.strerror(err)}")
        self.what = what
        self.log = log


_libc = None


def _syscall():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


def syscall_nr() -> int:
    m = platform.machine().lower()
    if m not in _SYSCALL_NR:
        raise TargetError(f"the bpf() syscall is unavailable: unknown syscall number on {m}")
    return _SYSCALL_NR[m]


def bpf(cmd: int, attr: ctypes.Array, what: str) -> int:
    """Call bpf(cmd, attr, sizeof attr); return the (non-negative) result or raise BpfError."""
    r = _syscall()(ctypes.c_long(syscall_nr()), ctypes.c_long(cmd), attr,
                   ctypes.c_long(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise BpfError(e, what)
    return r


def _attr() -> ctypes.Array:
    return ctypes.create_string_buffer(ATTR_SIZE)


def _addr(buf) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def sanitize_name(name: str) -> bytes:
    """The kernel takes object names of up to 15 characters of [A-Za-z0-9_.]."""
    out = "".join(c if (c.isascii() and (c.isalnum() or c in "_.")) else "_" for c in name)
    return out[:BPF_OBJ_NAME_LEN - 1].encode()


def round8(n: int) -> int:
    return (n + 7) & ~7


def n_possible_cpus() -> int:
    """The number of slots of a per-CPU map value as the syscall reads and writes it."""
    from bpfpga.hostinfo import possible_cpus
    return possible_cpus()


# --- commands --------------------------------------------------------------------------------
def map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
               map_flags: int = 0, inner_map_fd: int = 0, name: str = "") -> int:
    a = _attr()
    struct.pack_into("<6I", a, 0, map_type, key_size, value_size, max_entries, map_flags,
                     inner_map_fd)
    nm = sanitize_name(name)
    a[28:28 + len(nm)] = nm
    return bpf(BPF_MAP_CREATE, a, f"creating map '{name}'")


def _elem(cmd: int, fd: int, key, value, flags: int, what: str) -> None:
    a = _attr()
    struct.pack_into("<IIQQQ", a, 0, fd, 0, _addr(key), _addr(value), flags)
    bpf(cmd, a, what)


def map_lookup(fd: int, key: bytes, value_len: int) -> bytes | None:
    """The value under ``key`` (value_len bytes), or None when there is none (ENOENT)."""
    k = ctypes.create_string_buffer(bytes(key), max(len(key), 1))
    v = ctypes.create_string_buffer(value_len)
    try:
        _elem(BPF_MAP_LOOKUP_ELEM, fd, k, v, 0, "map lookup")
    except BpfError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return v.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    k = ctypes.create_string_buffer(bytes(key), max(len(key), 1))
    v = ctypes.create_string_buffer(bytes(value), max(len(value), 1))
    _elem(BPF_MAP_UPDATE_ELEM, fd, k, v, flags, "map update")


def map_delete(fd: int, key: bytes) -> bool:
    """Delete ``key``; False when it was not there."""
    k = ctypes.create_string_buffer(bytes(key), max(len(key), 1))
    try:
        _elem(BPF_MAP_DELETE_ELEM, fd, k, None, 0, "map delete")
    except BpfError as e:
        if e.errno == _errno.ENOENT:
            return False
        raise
    return True


def map_get_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after ``key`` (the first key when None), or None at the end."""
    k = ctypes.create_string_buffer(bytes(key), key_size) if key is not None else None
    nk = ctypes.create_string_buffer(key_size)
    try:
        _elem(BPF_MAP_GET_NEXT_KEY, fd, k, nk, 0, "map get_next_key")
    except BpfError as e:
        if e.errno == _errno.ENOENT:
            return None
        raise
    return nk.raw


def map_freeze(fd: int) -> None:
    a = _attr()
    struct.pack_into("<I", a, 0, fd)
    bpf(BPF_MAP_FREEZE, a, "map freeze")


def prog_load(insns: bytes, license: str = "GPL", name: str = "",
              prog_type: int = BPF_PROG_TYPE_XDP, prog_flags: int = 0,
              log_level: int = 0, log_size: int = 0) -> tuple[int, str]:
    """Load a program; return (fd, verifier log). On failure BpfError carries the log."""
    code = ctypes.create_string_buffer(bytes(insns), max(len(insns), 1))
    lic = ctypes.create_string_buffer(license.encode() + b"\0")
    log = ctypes.create_string_buffer(log_size) if log_level and log_size else None
    a = _attr()
    struct.pack_into("<IIQQIIQII", a, 0, prog_type, len(insns) // 8, _addr(code), _addr(lic),
                     log_level if log else 0, log_size if log else 0, _addr(log), 0,
                     prog_flags)
    nm = sanitize_name(name)
    a[48:48 + len(nm)] = nm
    try:
        fd = bpf(BPF_PROG_LOAD, a, f"loading program '{name}'")
    except BpfError as e:
        e.log = log.value.decode(errors="replace") if log else ""
        raise
    return fd, (log.value.decode(errors="replace") if log else "")


# struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
XDP_MD = struct.Struct("<6I")


def prog_test_run(fd: int, data: bytes, repeat: int = 1, out_size: int | None = None,
                  ctx: bytes | None = None) -> tuple[int, bytes, int]:
    """One BPF_PROG_TEST_RUN: (retval, data_out, duration in ns per run)."""
    din = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
    if out_size is None:
        out_size = len(data) + 4096
    dout = ctypes.create_string_buffer(out_size)
    cin = ctypes.create_string_buffer(bytes(ctx), len(ctx)) if ctx is not None else None
    a = _attr()
    struct.pack_into("<IIIIQQIIIIQQ", a, 0, fd, 0, len(data), out_size, _addr(din),
                     _addr(dout), repeat, 0, len(ctx) if ctx is not None else 0, 0,
                     _addr(cin), 0)
    bpf(BPF_PROG_TEST_RUN, a, "BPF_PROG_TEST_RUN")
    retval, size_out = struct.unpack_from("<4xI4xI", a, 0)
    duration, = struct.unpack_from("<I", a, 36)
    return retval, dout.raw[:size_out], duration


def obj_info(fd: int, size: int = 256) -> bytes:
    """BPF_OBJ_GET_INFO_BY_FD: the raw info struct (bpf_prog_info / bpf_map_info)."""
    info = ctypes.create_string_buffer(size)
    a = _attr()
    struct.pack_into("<IIQ", a, 0, fd, size, _addr(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, a, "get object info")
    return info.raw


def map_id(fd: int) -> int:
    """The id of a map (bpf_map_info.id, after its u32 type)."""
    return struct.unpack_from("<I", obj_info(fd, 96), 4)[0]


def prog_id(fd: int) -> int:
    """The id of a program (bpf_prog_info.id, after its u32 type)."""
    return struct.unpack_from("<I", obj_info(fd, 256), 4)[0]
