"""`bpfpga kernel features [-j]`: what the running kernel allows an XDP program (every
helper of the uapi header, every map type), probed as `bpftool feature probe` does."""
from __future__ import annotations

import json

import click


@click.group("kernel")
def kernel_group():
    """The `kernel` target: the running Linux kernel."""


@kernel_group.command("features")
@click.option("-j", "--json", "as_json", is_flag=True)
@click.option("--refused", is_flag=True, help="only what the kernel refuses")
def features_cmd(as_json, refused):
    """Helpers an XDP program may call and map types the kernel creates, each allowed or
    refused with the kernel's reason."""
    import os

    from bpfpga.host.features import probe_all
    feats = [f for f in probe_all() if not refused or f.allowed is not True]
    if as_json:
        click.echo(json.dumps({"kernel": os.uname().release, "program_type": "xdp",
                               "helpers": [f.as_dict() for f in feats if f.kind == "helper"],
                               "map_types": [f.as_dict() for f in feats if f.kind == "map"]},
                              indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    con = Console()
    for kind, title in (("helper", "helpers for XDP programs"), ("map", "map types")):
        t = Table(title=f"{title} on Linux {os.uname().release}")
        for c in ("id", "name", "allowed", "reason"):
            t.add_column(c, justify="right" if c == "id" else "left")
        rows = [f for f in feats if f.kind == kind]
        for f in rows:
            t.add_row(str(f.id), f.name, {True: "yes", False: "no", None: "?"}[f.allowed],
                      f.reason)
        con.print(t)
        n = sum(f.allowed is True for f in rows)
        click.echo(f"{n} of {len(rows)} {kind}s allowed")


def register(group: click.Group) -> None:
    group.add_command(kernel_group)
