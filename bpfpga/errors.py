"""The project's exception types. A user-facing error is one line that names what is wrong."""
from __future__ import annotations


def escape(text: object, markup: bool = False) -> str:
    """``text`` made safe for a terminal, on one line: every control character and every other
    non-printable character (newlines, ESC, DEL, C1 controls, bidi overrides...) becomes
    ``\\xNN`` (``\\uNNNN`` above 0xff). Text from an object, a file or a device is untrusted:
    a section name must not forge an ``error:`` line or retitle the terminal. With ``markup``,
    square brackets are also escaped for rich's markup (for text printed through rich)."""
    s = str(text)
    if not s.isprintable():
        s = "".join(c if c.isprintable() else
                    (f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}")
                    for c in s)
    if markup and "[" in s:
        from rich.markup import escape as markup_escape   # lazily: only the CLI prints rich
        s = markup_escape(s)
    return s


class BpfpgaError(Exception):
    """Base of every error meant for a user; the CLI prints it as one line and exits 1. Its
    text is always one line of printable characters (:func:`escape`), whatever went into it."""

    def __str__(self) -> str:
        return escape(super().__str__())


class AsmError(BpfpgaError):
    def __init__(self, message: str, line: int | None = None, file: str | None = None):
        where = ""
        if file:
            where += f"{file}:"
        if line is not None:
            where += f"{line}:"
        super().__init__(f"{where} {message}" if where else message)
        self.line = line
        self.file = file
        self.reason = message


class LoadError(BpfpgaError):
    """A program or object that cannot be loaded (malformed, unsupported, reserved fields)."""


class VerifyError(LoadError):
    """A program the static checks reject (what the kernel's verifier would also reject)."""


class TargetError(BpfpgaError):
    """A target that cannot run (bpf() unavailable, Verilator missing, board lost)."""


class Fault(BpfpgaError):
    """A run-time trap: the program is ended (XDP_ABORTED in XDP context)."""

    def __init__(self, reason: int, pc: int, detail: str = ""):
        from bpfpga.traps import TRAP_NAMES  # local: keeps this module import-free at load
        self.reason = reason
        self.pc = pc
        self.detail = detail
        super().__init__(f"trap {TRAP_NAMES.get(reason, reason)} at pc {pc}"
                         + (f": {detail}" if detail else ""))
