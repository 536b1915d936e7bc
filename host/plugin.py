"""`bpfpga-conformance-plugin`: the conformance suite's plugin protocol.

argv: the memory as hex (only when the test has memory), then plugin options
(--target ref|rtl|kernel, --debug). stdin: the program as hex. stdout: r0 in hex.
"""
from __future__ import annotations

import re
import sys


def _hex(text: str, what: str) -> bytes:
    digits = re.sub(r"\s+", "", text)
    if len(digits) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", digits):
        raise ValueError(f"{what} is not hex")
    return bytes.fromhex(digits)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    mem = b""
    target = "ref"
    debug = False
    try:
        if args and not args[0].startswith("-"):
            mem = _hex(args.pop(0), "memory argument")
        while args:
            a = args.pop(0)
            if a == "--target" and args:
                target = args.pop(0)
            elif a.startswith("--target="):
                target = a.split("=", 1)[1]
            elif a == "--debug":
                debug = True
            else:
                raise ValueError(f"unknown option {a!r}")
        prog = _hex(sys.stdin.read(), "program on stdin")
        if not prog:
            raise ValueError("empty program on stdin")
        from bpfpga.errors import BpfpgaError
        from bpfpga.host.cmd_tools import _runner
        try:
            res = _runner(target, False)([(prog, mem)])[0]
        except BpfpgaError as e:
            raise ValueError(str(e)) from None
        if getattr(res, "trap", 0):
            print(f"bpfpga: trap {res.trap} at pc {res.trap_pc}: "
                  f"{getattr(res, 'trap_detail', '')}", file=sys.stderr)
            return 1
        if debug:
            print(f"bpfpga: {getattr(res, 'insns', '?')} instructions", file=sys.stderr)
        print(f"{res.r0:x}")
        return 0
    except (ValueError, Exception) as e:  # the protocol wants a message, not a traceback
        print(f"bpfpga-conformance-plugin: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
