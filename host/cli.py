"""The `bpfpga` command line. Each area keeps its commands in its own module (host/cmd_*.py),
registered in COMMAND_MODULES; this file holds the group and the error handling."""
from __future__ import annotations

import importlib
import os
import sys

import click

from bpfpga.errors import BpfpgaError, escape

# modules that define click commands; each has `register(group)`
COMMAND_MODULES = [
    "bpfpga.host.cmd_tools",      # asm, conformance, demo
    "bpfpga.host.cmd_disasm",
    "bpfpga.host.cmd_xdp",        # run, diff
    "bpfpga.host.cmd_prog",       # prog show
    "bpfpga.host.cmd_board",      # board list, build, flash
    "bpfpga.host.cmd_device",     # device info, prog load, map *, stats, trace, sim-board
    "bpfpga.host.cmd_kernel",     # kernel features
]


def fail(message: object, status: int = 1):
    """The one way the CLI reports an error: ``error: MESSAGE`` as one escaped line on
    stderr, then exit ``status``."""
    click.echo(f"error: {escape(message)}", err=True)
    sys.exit(status)


def _usage_line(e: click.UsageError) -> str:
    """click's usage error (usage, hint and message on several lines) as one line."""
    path = e.ctx.command_path if e.ctx is not None else "bpfpga"
    return f"{path}: {e.format_message()} (see '{path} --help')"


class Group(click.Group):
    """Every error leaves as one line: the project's errors, click's usage errors and, as the
    last line of defence, any other exception (a bug: BPFPGA_TRACEBACK=1 shows its
    traceback instead)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            fail(_usage_line(e), e.exit_code)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BpfpgaError as e:
            fail(e)
        except BrokenPipeError:
            sys.exit(0)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as e:
            fail(_usage_line(e), e.exit_code)
        except click.ClickException as e:
            fail(e.format_message(), e.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - a traceback is a bug; say so on one line
            if os.environ.get("BPFPGA_TRACEBACK"):
                raise
            fail(f"internal error ({type(e).__name__}: {e}); this is a bug in bpfpga, please "
                 f"report it (BPFPGA_TRACEBACK=1 shows the traceback)")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bpfpga")
def main():
    """bpfpga: offload XDP programs to FPGAs."""


for _m in COMMAND_MODULES:
    importlib.import_module(_m).register(main)
