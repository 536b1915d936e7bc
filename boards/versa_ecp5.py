"""Lattice ECP5 5G Versa: LFE5UM5G-45F-8BG381C, two Gigabit RGMII ports (Marvell 88E1512).

A 100 MHz LVDS oscillator and an FT2232H: channel A is JTAG (openFPGALoader -c ft2232),
channel B the UART the host link uses. litex-boards' target runs both RGMII delays in the PHYs.
"""
from bpfpga.boards.base import Board, Cable, EthPort, HostLink

# One core of the full engine (every helper and map type, the trace unit, the target port):
# two take ~43,600 of the 45F's 43,848 logic cells (measured on the ECPIX-5 85F). MEASURED
# (docs/boards.md): `bpfpga board build --board versa_ecp5 --clock 40` routed (router2, 22
# minutes) and met 40 MHz: sys 47.74 MHz, both RGMII RX clocks above 170 MHz, TRELLIS_COMB
# 26,014/43,848 (59 %), 68 DP16KD, 2026-11-29; 40 MHz is ktime's 25 ns step exactly.
VERSA = Board(
    name="versa_ecp5", title="Lattice ECP5 5G Versa", part="LFE5UM5G-45F-8BG381C",
    clock=("clk100", 100e6),
    eth=(EthPort(0, chip="88E1512", tx_delay=0.0, rx_delay=0.0),
         EthPort(1, chip="88E1512", tx_delay=0.0, rx_delay=0.0)),
    host=HostLink("uart", baud=1_000_000, usb="FT2232H channel B"),
    cable=Cable(cable="ft2232"),
    platform_module="lattice_versa_ecp5", platform_kwargs=(("device", "LFE5UM5G"),),
    reset=("rst_n", True), engine_clock_mhz=40.0, cores=1,
    measured="met: sys 47.74 MHz, 59 % (2026-11-29)",
    url="https://www.latticesemi.com/products/developmentboardsandkits/ecp5evaluationboard",
    notes="two RGMII ports; UART host link over the on-board FT2232H")

BOARDS = [VERSA]
