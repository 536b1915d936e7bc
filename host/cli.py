"""The `bpfpga` command line. Each area keeps its commands in its own module (host/cmd_*.py),
registered in COMMAND_MODULES; this file holds the group and the error handling."""
from __future__ import annotations

import importlib
import sys

import click

from bpfpga.errors import BpfpgaError

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


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BpfpgaError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except BrokenPipeError:
            sys.exit(0)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bpfpga")
def main():
    """bpfpga: offload XDP programs to FPGAs."""


for _m in COMMAND_MODULES:
    importlib.import_module(_m).register(main)
