"""Colorlight 5A-75B: an LED-panel receiver card, LFE5U-25F-6BG256C, two Gigabit RGMII ports.

Two Broadcom B50612D PHYs share one MDIO bus; a 25 MHz oscillator; no USB at all (JTAG pads
J27/J30-J32 need an external cable such as an FT232R, an FT2232H, a CMSIS-DAP or a DirtyJTAG
probe). The host link is a 3.3 V UART on header J19, the pins litex-boards calls ``serial``:
DATA_LED- (U16 on v8.0, P11 on v7.0) is the FPGA's TX, KEY+ (R16 / M13) its RX; the status
LED and the button share those pins, so the button is no reset here. An FT2232H gives JTAG
on channel A and this UART on channel B with one cable. Etherbone on port 0 was the host link
before: its UDP/IP/ICMP stack was more than a tenth of this part's logic, which the XDP engine
needs (measured in docs/boards.md); both Ethernet ports now carry XDP traffic only. v7.0 and v8.0 differ
only in pins; both are CABGA256 parts. litex-boards' target runs the RGMII TX without
FPGA-side delay (tx_delay 0).
"""
from bpfpga.boards.base import Board, Cable, EthPort, HostLink
from bpfpga.boards.engines import COMPACT, COMPACT_HELPERS, COMPACT_MAP_TYPES

_ETH = (EthPort(0, chip="B50612D", tx_delay=0.0), EthPort(1, chip="B50612D", tx_delay=0.0))
_CABLE = Cable(board="colorlight", needs_cable=True,
               hint="the 5A-75B has no programmer on board: wire a JTAG probe to J27/J30-J32 "
                    "and name it with --cable (ft232RL, dirtyJtag, cmsisdap, ...)")
_HOST = HostLink("uart", resource="serial", baud=1_000_000, usb="external, on J19")
_URL = "https://github.com/q3k/chubby75/tree/master/5a-75b"

# The engine: boards/engines.py's COMPACT, one core.
# MEASURED (docs/boards.md): it fits: TRELLIS_COMB 20,038/24,288 (82 %), 50 DP16KD, on
# 2026-11-29 (it was 154 % on 2026-11-28, 107 % with the helper set and SoC cuts), and its
# build routes (router1) and meets timing: sys 43.11 MHz for the declared 31.25 MHz (32 ns,
# ktime's step), both RGMII RX clocks above 125 MHz. Issue 7's goal (two cores at 100 MHz)
# does not fit this part.
ENGINE_CLOCK_MHZ = 31.25
# router1: on this build (82 % of the part's logic) router2 never converged (its overused
# wires fall to 1,000-2,650, then rise again), while router1 routed the same placement
# completely in some 20 minutes (docs/boards.md, 2026-11-29)
ROUTER = "router1"
MEASURED = "met: sys 43.11 MHz, 82 % (v8.0, 2026-11-29)"
# the helpers and map types it is built with, for tests and docs
HELPERS, MAP_TYPES, ENGINE = COMPACT_HELPERS, COMPACT_MAP_TYPES, COMPACT

V8 = Board(
    name="colorlight_5a_75b", title="Colorlight 5A-75B v8.0", revision="8.0",
    part="LFE5U-25F-6BG256C", clock=("clk25", 25e6), eth=_ETH, host=_HOST, cable=_CABLE,
    platform_module="colorlight_5a_75b", platform_kwargs=(("revision", "8.0"),),
    reset=None, engine_clock_mhz=ENGINE_CLOCK_MHZ, cores=1,
    engine=ENGINE, url=_URL, router=ROUTER, measured=MEASURED,
    notes="two RGMII ports for XDP; host UART on J19 (LED/button pins)")

V7 = Board(
    name="colorlight_5a_75b_v7", title="Colorlight 5A-75B v7.0", revision="7.0",
    part="LFE5U-25F-6BG256C", clock=("clk25", 25e6), eth=_ETH, host=_HOST, cable=_CABLE,
    platform_module="colorlight_5a_75b", platform_kwargs=(("revision", "7.0"),),
    reset=None, engine_clock_mhz=ENGINE_CLOCK_MHZ, cores=1,
    engine=ENGINE, url=_URL, router=ROUTER, measured=MEASURED,
    notes="as v8.0 with the v7.0 pinout")

BOARDS = [V8, V7]
