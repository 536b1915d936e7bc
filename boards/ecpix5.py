"""LambdaConcept ECPIX-5: LFE5UM5G-45F or -85F (speed 8, CABGA554), one Gigabit RGMII port.

A 100 MHz oscillator, an FT2232H (channel A JTAG, channel B the UART the host link uses) and
DDR3 the engine does not use. The PHY adds its own RX delay (litex-boards: rx_delay 0).
"""
from bpfpga.boards.base import Board, Cable, EthPort, HostLink

_ETH = (EthPort(0, rx_delay=0.0),)
_HOST = HostLink("uart", baud=1_000_000, usb="FT2232H channel B")
_CABLE = Cable(board="ecpix5")
_URL = "https://shop.lambdaconcept.com/home/46-2-ecpix-5.html"

# Two full cores at 31.25 MHz (ktime's 32 ns step). NOT MEASURED by a routed build: placement
# estimated 34.60 MHz (router2 did not converge, router1 stopped unfinished; docs/boards.md).
ECPIX5_85 = Board(
    name="ecpix5", title="LambdaConcept ECPIX-5 (85F)", part="LFE5UM5G-85F-8BG554I",
    clock=("clk100", 100e6), eth=_ETH, host=_HOST, cable=_CABLE,
    platform_module="lambdaconcept_ecpix5", platform_kwargs=(("device", "85F"),),
    reset=("rst_n", True), engine_clock_mhz=31.25, cores=2, url=_URL, router="router1",
    notes="one RGMII port; UART host link over the on-board FT2232H")

# One core of the full engine: two take ~43,600 logic cells (measured on the 85F), the whole
# 45F. MEASURED (docs/boards.md): `bpfpga board build --board ecpix5_45` routed (router2, 18
# minutes) and met 40 MHz (ktime's 25 ns step): sys 47.01 MHz, eth0 rx 191.28 MHz,
# TRELLIS_COMB 24,951/43,848 (57 %), 59 DP16KD, 2026-11-29.
ECPIX5_45 = Board(
    name="ecpix5_45", title="LambdaConcept ECPIX-5 (45F)", part="LFE5UM5G-45F-8BG554I",
    clock=("clk100", 100e6), eth=_ETH, host=_HOST, cable=_CABLE,
    platform_module="lambdaconcept_ecpix5", platform_kwargs=(("device", "45F"),),
    reset=("rst_n", True), engine_clock_mhz=40.0, cores=1, url=_URL,
    measured="met: sys 47.01 MHz, 57 % (2026-11-29)",
    notes="as the 85F with the smaller part: one core of the full engine")

BOARDS = [ECPIX5_85, ECPIX5_45]
