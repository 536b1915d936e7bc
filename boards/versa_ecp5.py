"""Lattice ECP5 5G Versa: LFE5UM5G-45F-8BG381C, two Gigabit RGMII ports (Marvell 88E1512).

A 100 MHz LVDS oscillator and an FT2232H: channel A is JTAG (openFPGALoader -c ft2232),
channel B the UART the host link uses. litex-boards' target runs both RGMII delays in the PHYs.
"""
from bpfpga.boards.base import Board, Cable, EthPort, HostLink

VERSA = Board(
    name="versa_ecp5", title="Lattice ECP5 5G Versa", part="LFE5UM5G-45F-8BG381C",
    clock=("clk100", 100e6),
    eth=(EthPort(0, chip="88E1512", tx_delay=0.0, rx_delay=0.0),
         EthPort(1, chip="88E1512", tx_delay=0.0, rx_delay=0.0)),
    host=HostLink("uart", baud=1_000_000, usb="FT2232H channel B"),
    cable=Cable(cable="ft2232"),
    platform_module="lattice_versa_ecp5", platform_kwargs=(("device", "LFE5UM5G"),),
    reset=("rst_n", True), engine_clock_mhz=100.0, cores=2,
    url="https://www.latticesemi.com/products/developmentboardsandkits/ecp5evaluationboard",
    notes="two RGMII ports; UART host link over the on-board FT2232H")

BOARDS = [VERSA]
