"""Great Scott Gadgets / Greg Davill ButterStick r1.0: LFE5UM5G-85F-8BG381C, one RGMII port.

A 30 MHz oscillator and a KSZ9031RNX Gigabit PHY (it adds the RX delay itself, so
rx_delay 0 as in litex-boards). Its USB port belongs to the FPGA (no USB-serial chip), so the
host link is Etherbone on the Ethernet port. It is flashed through its JTAG header with a probe
(--cable) or through its DFU bootloader (not driven by bpfpga).
"""
from bpfpga.boards.base import Board, Cable, EthPort, HostLink

# Two full cores at 31.25 MHz, as the ECPIX-5 85F (the same part and speed grade; its build
# is the measurement this board relies on, docs/boards.md): no routed build of this board yet.
BUTTERSTICK = Board(
    name="butterstick", title="ButterStick r1.0", revision="1.0", part="LFE5UM5G-85F-8BG381C",
    clock=("clk30", 30e6), eth=(EthPort(0, chip="KSZ9031RNX", rx_delay=0.0),),
    host=HostLink("etherbone", port=0, ip="192.168.1.50", mac=0x10E2D5000000),
    cable=Cable(needs_cable=True, hint="the ButterStick has no JTAG adapter on board: name "
                "the probe on its JTAG header with --cable (ft232RL, dirtyJtag, tigard, ...)"),
    platform_module="gsd_butterstick", platform_kwargs=(("revision", "1.0"), ("device", "85F")),
    reset=("user_btn", True), engine_clock_mhz=31.25, cores=2, router="router1",
    url="https://github.com/butterstick-fpga/butterstick-hardware",
    notes="one RGMII port; Etherbone host link on it")

BOARDS = [BUTTERSTICK]
