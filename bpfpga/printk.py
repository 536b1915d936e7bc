"""bpf_trace_printk's format language, as the kernel checks and prints it (one definition for
the reference machine, the hardware's host side and the tests).

The kernel (kernel/bpf/helpers.c ``bpf_bprintf_prepare``, then ``bstr_printf``) accepts, up to
the first NUL within ``fmt_size``: printable ASCII and white space; ``%%``; at most three
conversions, each ``%`` [flags ``0 + - space``] [width ``[1-9][0-9]*``] then ``c``, ``s``,
``p`` or [``l`` | ``ll``] one of ``d i u x X``. Anything else makes the helper return
-EINVAL and print nothing. The helper returns the length of the text (no NUL counted).

Differences from the kernel, documented in docs/xdp.md: plain ``%p`` prints ``0x`` and the
raw value in hex (the kernel prints a hashed pointer); of the ``%p`` extensions only ``%px``
is taken (``%pK``, ``%ps``, ``%pS``, ``%pks``, ``%pus``, ``%pI4``... give -EINVAL); ``%s``
strings stop after ``STR_MAX`` bytes.

The hardware (hdl/helpers_hw.py, trace_printk) implements the same checks and length, and
tests/test_trace.py holds them to the kernel's.
"""
from __future__ import annotations

from typing import Callable

MAX_ARGS = 3
STR_MAX = 255           # %s: bytes read at most
_SPACE = b" \t\n\v\f\r"


def _printable(c: int) -> bool:
    return 0x20 <= c <= 0x7E or c in _SPACE


def bprintf(fmt: bytes, args: list[int], read_str: Callable[[int], bytes]) -> str | None:
    """The text bpf_trace_printk(fmt, len(fmt), *args) prints, or None where the kernel
    returns -EINVAL. ``read_str(addr)`` gives the bytes at addr up to a NUL (at most
    STR_MAX), b"" where the address cannot be read (the kernel prints an empty string)."""
    end = fmt.find(b"\0")
    if end < 0:
        return None
    f = fmt[:end]
    out: list[str] = []
    n = 0
    i = 0
    while i < len(f):
        c = f[i]
        if not _printable(c):
            return None
        if c != 0x25:                               # '%'
            out.append(chr(c))
            i += 1
            continue
        if i + 1 < len(f) and f[i + 1] == 0x25:
            out.append("%")
            i += 2
            continue
        if n >= MAX_ARGS:
            return None
        i += 1
        flags = set()
        while i < len(f) and chr(f[i]) in "0+- ":
            flags.add(chr(f[i]))
            i += 1
        width = 0
        if i < len(f) and 0x31 <= f[i] <= 0x39:
            while i < len(f) and 0x30 <= f[i] <= 0x39:
                width = width * 10 + f[i] - 0x30
                i += 1
        conv = chr(f[i]) if i < len(f) else ""
        v = args[n] & (2**64 - 1)
        sign = ""
        zero_ok = True
        if conv == "c":
            body = chr(v & 0xFF)
            zero_ok = False
        elif conv == "s":
            body = read_str(v)[:STR_MAX].decode("latin-1")
            zero_ok = False
        elif conv == "p":
            nxt = f[i + 1] if i + 1 < len(f) else 0
            if nxt == ord("x"):
                body = f"{v:016x}"
                i += 1
            elif nxt == 0 or nxt in _SPACE or (0x21 <= nxt <= 0x7E and not chr(nxt).isalnum()):
                body = f"0x{v:x}"
            else:
                return None
        else:
            lng = 0
            while lng < 2 and conv == "l":
                lng += 1
                i += 1
                conv = chr(f[i]) if i < len(f) else ""
            if conv not in ("d", "i", "u", "x", "X"):
                return None
            bits = 64 if lng else 32
            v &= (1 << bits) - 1
            if conv in "di":
                if v >> (bits - 1):
                    v = (1 << bits) - v
                    sign = "-"
                elif "+" in flags:
                    sign = "+"
                elif " " in flags:
                    sign = " "
            body = f"{v:x}" if conv == "x" else f"{v:X}" if conv == "X" else str(v)
        if "-" in flags:
            text = (sign + body).ljust(width)
        elif "0" in flags and zero_ok:
            text = sign + body.rjust(width - len(sign), "0")
        else:
            text = (sign + body).rjust(width)
        out.append(text)
        n += 1
        i += 1
    return "".join(out)
