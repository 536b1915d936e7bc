"""Radiona ULX3S: LFE5U-12F/25F/45F/85F-6BG381C, no Ethernet.

For labs: packets arrive over the host link (the FT231X UART), written into the engine's RX
stream through a packet window on the Wishbone bus (gateware/hostport.py) and read back from
its TX stream the same way. A 25 MHz oscillator; F1 (R1) is the reset button.
"""
from bpfpga.boards.base import Board, Cable, HostLink

_HOST = HostLink("uart", baud=1_000_000, usb="FT231X")
_CABLE = Cable(board="ulx3s")
_URL = "https://radiona.org/ulx3s/"

ULX3S_85 = Board(
    name="ulx3s", title="Radiona ULX3S (85F)", part="LFE5U-85F-6BG381C",
    clock=("clk25", 25e6), eth=(), host=_HOST, cable=_CABLE,
    platform_module="radiona_ulx3s", platform_kwargs=(("device", "LFE5U-85F"),),
    reset=("rst", False), engine_clock_mhz=100.0, cores=2, url=_URL,
    notes="no Ethernet: packets travel over the UART host link")

ULX3S_25 = Board(
    name="ulx3s_25", title="Radiona ULX3S (25F)", part="LFE5U-25F-6BG381C",
    clock=("clk25", 25e6), eth=(), host=_HOST, cable=_CABLE,
    platform_module="radiona_ulx3s", platform_kwargs=(("device", "LFE5U-25F"),),
    reset=("rst", False), engine_clock_mhz=100.0, cores=2, url=_URL,
    notes="as the 85F with the smallest part that holds two cores")

BOARDS = [ULX3S_85, ULX3S_25]
