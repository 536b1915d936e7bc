"""Radiona ULX3S: LFE5U-12F/25F/45F/85F-6BG381C, no Ethernet.

For labs: packets arrive over the host link (the FT231X UART), written into the engine's RX
stream through a packet window on the Wishbone bus (gateware/hostport.py) and read back from
its TX stream the same way. A 25 MHz oscillator; F1 (R1) is the reset button.
"""
from bpfpga.boards.base import Board, Cable, HostLink
from bpfpga.boards.engines import COMPACT

_HOST = HostLink("uart", baud=1_000_000, usb="FT231X")
_CABLE = Cable(board="ulx3s")
_URL = "https://radiona.org/ulx3s/"

# One core of the full engine at 31.25 MHz, NOT MEASURED by a routed build yet: packets come
# over a 1 Mbaud UART, which a second core would not keep busy, and two full cores on this
# speed grade 6 part placed at an estimated 24.05 MHz (`--cores 2 --clock 31.25`, routing not
# finished, 2026-11-29; docs/boards.md). One full core placed at 47.42 MHz on the speed grade 8
# 45F (met at 47.74 when routed); `--cores 2 --clock 25` builds two.
ULX3S_85 = Board(
    name="ulx3s", title="Radiona ULX3S (85F)", part="LFE5U-85F-6BG381C",
    clock=("clk25", 25e6), eth=(), host=_HOST, cable=_CABLE,
    platform_module="radiona_ulx3s", platform_kwargs=(("device", "LFE5U-85F"),),
    reset=("rst", False), engine_clock_mhz=31.25, cores=1, url=_URL,
    notes="no Ethernet: packets travel over the UART host link; one full core")

# The 25F holds one core of the compact engine (the Colorlight's, boards/engines.py), not the
# 85F's two full ones. MEASURED (docs/boards.md): `bpfpga board build --board ulx3s_25` routed
# (router1, 15 minutes) and met 31.25 MHz: sys 42.33 MHz, TRELLIS_COMB 17,825/24,288 (73 %),
# 31 DP16KD, 2026-11-29.
ULX3S_25 = Board(
    name="ulx3s_25", title="Radiona ULX3S (25F)", part="LFE5U-25F-6BG381C",
    clock=("clk25", 25e6), eth=(), host=_HOST, cable=_CABLE,
    platform_module="radiona_ulx3s", platform_kwargs=(("device", "LFE5U-25F"),),
    reset=("rst", False), engine_clock_mhz=31.25, cores=1, engine=COMPACT, url=_URL,
    router="router1", measured="met: sys 42.33 MHz, 73 % (2026-11-29)",
    notes="as the 85F with the smaller part: one core of the compact engine (the Colorlight's)")

BOARDS = [ULX3S_85, ULX3S_25]
