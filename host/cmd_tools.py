"""asm, conformance, demo."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bpfpga.errors import BpfpgaError


def _read_source(path: str) -> tuple[str, int]:
    """Assembler text of FILE: a .s file, or the asm section of a .data file."""
    from bpfpga.compiler import datafile
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BpfpgaError(f"{path}: cannot read: {e}") from None
    if p.suffix == ".data" or any(l.startswith("-- ") for l in text.splitlines()):
        df = datafile.parse_text(text, path)
        if df.asm is None:
            if df.raw is not None:
                return None, df.raw
            raise BpfpgaError(f"{path}: no asm section")
        return df.asm, df.asm_line0
    return text, 0


@click.command("asm")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--hex", "as_hex", is_flag=True, help="print the program as one line of hex")
@click.option("-o", "out", type=click.Path(dir_okay=False), help="write the raw program here")
@click.option("--no-check", is_flag=True, help="skip the static checks (uninitialized "
              "registers, jump targets, r10 writes)")
def asm_cmd(file, as_hex, out, no_check):
    """Assemble a .s file, or the asm section of a conformance .data file."""
    from bpfpga.compiler.asm import assemble
    from bpfpga.compiler.check import check
    text, line0 = _read_source(file)
    prog = line0 if text is None else assemble(text, file=file, line0=line0)
    if not no_check:
        try:
            check(prog, (1, 2, 10))
        except BpfpgaError as e:
            raise BpfpgaError(f"{file}: {_with_line(e, text, line0)}") from None
    if out:
        Path(out).write_bytes(prog)
    if as_hex or not out:
        click.echo(prog.hex())


def _with_line(e: BpfpgaError, text, line0) -> str:
    """Map 'instruction N' in a check error onto the source line, where we can."""
    import re
    msg = str(e)
    m = re.match(r"instruction ([0-9]+): (.*)", msg)
    if not m or text is None:
        return msg
    pc = int(m.group(1))
    from bpfpga.compiler.asm import assemble_insns
    slot = 0
    lines = [i for i, l in enumerate(text.splitlines(), 1)
             if l.split("#", 1)[0].strip() and not l.split("#", 1)[0].strip().endswith(":")]
    for n, ins in enumerate(assemble_insns(text)):
        if slot == pc and n < len(lines):
            return f"line {line0 + lines[n]}: {m.group(2)}"
        slot += ins.slots
    return msg


def _runner(target: str, cycles: bool):
    if target == "ref":
        from bpfpga.sim.conformance import ref_runner
        return ref_runner
    if target == "rtl":
        try:
            from bpfpga.sim.rtl import rtl_runner
        except ImportError as e:
            raise BpfpgaError(f"the rtl target is not available: {e}") from None
        return rtl_runner
    if target == "kernel":
        from bpfpga.host.kernel import conformance_runner
        return conformance_runner
    raise BpfpgaError(f"unknown target '{target}'")


@click.command("conformance")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--target", type=click.Choice(["ref", "rtl", "kernel"]), default="ref",
              show_default=True)
@click.option("-k", "pattern", help="only tests whose file name matches this regex")
@click.option("--cycles", is_flag=True, help="show cycles (rtl) or instructions per test")
@click.option("-j", "--json", "as_json", is_flag=True, help="JSON output")
@click.option("--suite", envvar="BPFPGA_CONFORMANCE", type=click.Path(file_okay=False),
              help="conformance suite root (default: $BPFPGA_CONFORMANCE or "
                   "../shared/conformance/bpf_conformance)")
def conformance_cmd(directory, target, pattern, cycles, as_json, suite):
    """Run every .data file of DIRECTORY (default: the suite's tests/) on a target."""
    from bpfpga.sim.conformance import default_suite, run_dir
    if directory is None:
        directory = str(Path(suite) / "tests") if suite else str(default_suite() / "tests")
    outs = run_dir(directory, _runner(target, cycles), pattern)
    passed = sum(o.passed for o in outs)
    failed = len(outs) - passed
    if as_json:
        click.echo(json.dumps({"target": target, "passed": passed, "failed": failed,
                               "tests": [o.__dict__ for o in outs]}, indent=1))
    else:
        for o in outs:
            if cycles:
                extra = f"cycles={o.cycles}" if o.cycles is not None else f"insns={o.insns}"
                click.echo(f"{'PASS' if o.passed else 'FAIL'} {o.name} {extra}")
            if not o.passed:
                exp = "-" if o.expected is None else hex(o.expected)
                act = "-" if o.actual is None else hex(o.actual)
                click.echo(f"FAIL {o.name}: expected r0={exp} actual r0={act} {o.message}")
        click.echo(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


@click.command("demo")
@click.option("--target", type=click.Choice(["ref", "rtl", "kernel"]), default=None,
              help="default: rtl when the RTL engine is available, else ref")
@click.pass_context
def demo_cmd(ctx, target):
    """The main job: the load balancer example on the simulated target over its traffic."""
    from bpfpga.host.cmd_xdp import run_cmd
    repo = Path(__file__).resolve().parents[1]
    ex = repo / "examples" / "lb"
    if not (ex / "lb.o").exists():
        raise BpfpgaError(f"{ex}/lb.o is missing: run `make examples`")
    if target is None:
        target = "ref"
        try:
            import amaranth  # noqa: F401  (the hdl extra: the engine in Verilator)
            import cocotb  # noqa: F401
            target = "rtl"
        except ImportError:
            pass
    if target == "rtl":
        from bpfpga.host.cmd_xdp import demo_rtl
        sys.exit(demo_rtl())
    click.echo(f"bpfpga demo: examples/lb/lb.o (L4 load balancer) on the {target} target, "
               f"maps from examples/lb/maps.json, packets from examples/lb/traffic.pcap")
    ctx.invoke(run_cmd, obj=str(ex / "lb.o"), prog=None, maps_json=str(ex / "maps.json"),
               map_size=(), target=target, device=None, pcap_in=str(ex / "traffic.pcap"),
               out=None, as_json=False, quiet=True)


def register(group: click.Group) -> None:
    group.add_command(asm_cmd)
    group.add_command(conformance_cmd)
    group.add_command(demo_cmd)
