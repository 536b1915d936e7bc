"""The project's exception types. A user-facing error is one line that names what is wrong."""
from __future__ import annotations


class BpfpgaError(Exception):
    """Base of every error meant for a user; the CLI prints it as one line and exits 1."""


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
