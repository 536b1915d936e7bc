"""What a board is to bpfpga: an FPGA, a clock, Ethernet PHYs, a host link and a cable.

A board module describes the hardware only; the SoC that runs on it is built by
:mod:`bpfpga.gateware.soc` from this description and the board's LiteX platform (pins and IO
standards come from litex-boards, imported, never copied).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

# what a board's SoC can hold in the engine's place (gateware/engine.py:engine_component)
ENGINE_KINDS = ("xdp", "standin", "loopback")
# nextpnr's routers and the placers a build may pick (gateware/flow.py, bpfpga board build)
ROUTERS = ("router1", "router2")
PLACERS = ("heap", "static")

# nextpnr-ecp5's device switch for each (family, size)
_NEXTPNR_DEVICE = {
    ("LFE5U", "12F"): "--12k", ("LFE5U", "25F"): "--25k", ("LFE5U", "45F"): "--45k",
    ("LFE5U", "85F"): "--85k", ("LFE5UM", "25F"): "--um-25k", ("LFE5UM", "45F"): "--um-45k",
    ("LFE5UM", "85F"): "--um-85k", ("LFE5UM5G", "25F"): "--um5g-25k",
    ("LFE5UM5G", "45F"): "--um5g-45k", ("LFE5UM5G", "85F"): "--um5g-85k",
}
# Lattice package code in the part number -> nextpnr's package name
_PACKAGES = {"BG256": "CABGA256", "BG381": "CABGA381", "BG554": "CABGA554",
             "BG756": "CABGA756", "MG285": "CSFBGA285"}


@dataclass(frozen=True)
class EthPort:
    """One Ethernet port: the LiteX platform's ``eth``/``eth_clocks`` resources number
    ``index``. Delays are the FPGA-side RGMII delays LiteEth's ECP5 PHY adds (seconds); a PHY
    chip that adds its own delay gets 0 here, as litex-boards' targets do."""
    index: int
    phy: str = "RGMII"
    chip: str = ""
    tx_delay: float = 2e-9
    rx_delay: float = 2e-9


@dataclass(frozen=True)
class HostLink:
    """How the host reaches the engine's control port.

    ``uart``: LiteX's UART Wishbone bridge on the platform's ``serial`` resource (what
    ``litex_server --uart`` and bpfpga's UART transport speak).
    ``etherbone``: LiteEth's Etherbone (UDP ``udp_port``) on Ethernet port ``port``, answering
    at ``ip`` / ``mac``; XDP traffic shares that port (see docs/boards.md).
    """
    kind: str                      # "uart" | "etherbone"
    resource: str = "serial"
    baud: int = 1_000_000
    port: int = 0
    ip: str = "192.168.1.50"
    mac: int = 0x10E2D5000000
    udp_port: int = 1234
    usb: str = ""                  # the USB-serial chip, if any

    def describe(self) -> str:
        if self.kind == "uart":
            via = f" ({self.usb})" if self.usb else ""
            return f"UART {self.baud} baud{via}"
        return f"Etherbone port {self.port} {self.ip}:{self.udp_port}"

    def url(self) -> str:
        """The --device URL a host tool would use (issue 6's transports)."""
        if self.kind == "uart":
            return "/dev/ttyUSB1" if "FT2232" in self.usb or "FT4232" in self.usb \
                else "/dev/ttyUSB0"
        return f"udp://{self.ip}:{self.udp_port}"


@dataclass(frozen=True)
class Cable:
    """How openFPGALoader reaches the board: its ``-b`` board name (which implies the cable)
    and/or a ``-c`` cable. ``needs_cable`` when the board has no programmer on board."""
    board: str | None = None
    cable: str | None = None
    needs_cable: bool = False
    hint: str = ""

    def describe(self) -> str:
        parts = []
        if self.board:
            parts.append(f"-b {self.board}")
        if self.cable:
            parts.append(f"-c {self.cable}")
        if self.needs_cable:
            parts.append("+ JTAG cable (-c)")
        return " ".join(parts) or "-"


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    part: str                      # Lattice part number, e.g. LFE5U-25F-6BG256C
    clock: tuple[str, float]       # (platform resource, Hz)
    eth: tuple[EthPort, ...]
    host: HostLink
    cable: Cable
    platform_module: str           # litex_boards.platforms.<module>
    platform_kwargs: tuple = ()    # ((key, value), ...): kwargs for its Platform()
    reset: tuple[str, bool] | None = None   # (resource, active_low): a reset button
    engine_clock_mhz: float = 100.0
    cores: int = 2                 # default engine cores for this board
    router: str = "router2"        # nextpnr's router for this board's builds (router1/router2)
    engine: tuple = ()             # ((field, value), ...): EngineConfig fields for this board
    # what a routed build of this default configuration (cores, engine, clock) measured, with
    # its date ("" = no routed build yet: the declared clock is an estimate, docs/boards.md)
    measured: str = ""
    revision: str = ""
    url: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    # -- the part number, split the way the tools want it ------------------------------------
    @property
    def family(self) -> str:
        return self.part.split("-")[0]

    @property
    def size(self) -> str:
        return self.part.split("-")[1]

    @property
    def speed(self) -> int:
        return int(self.part.split("-")[2][0])

    @property
    def package(self) -> str:
        code = self.part.split("-")[2][1:6]
        return _PACKAGES[code]

    @property
    def nextpnr_device(self) -> str:
        return _NEXTPNR_DEVICE[(self.family, self.size)]

    @property
    def ports(self) -> int:
        return len(self.eth)

    @property
    def clock_mhz(self) -> float:
        return self.clock[1] / 1e6

    def platform(self):
        """A fresh litex-boards platform object for this board (pins, IO standards)."""
        mod = importlib.import_module(f"litex_boards.platforms.{self.platform_module}")
        return mod.Platform(toolchain="trellis", **dict(self.platform_kwargs))

    def as_dict(self) -> dict:
        return {
            "name": self.name, "title": self.title, "revision": self.revision,
            "fpga": self.part, "family": self.family, "device": f"{self.family}-{self.size}",
            "package": self.package, "speed_grade": self.speed,
            "clock": {"resource": self.clock[0], "mhz": self.clock_mhz},
            "ethernet": [{"index": p.index, "phy": p.phy, "chip": p.chip} for p in self.eth],
            "ports": self.ports,
            "host_link": {"kind": self.host.kind, "description": self.host.describe(),
                          "url": self.host.url(),
                          **({"baud": self.host.baud, "usb": self.host.usb}
                             if self.host.kind == "uart" else
                             {"port": self.host.port, "ip": self.host.ip,
                              "mac": f"{self.host.mac:012x}", "udp_port": self.host.udp_port})},
            "engine_clock_mhz": self.engine_clock_mhz, "cores": self.cores,
            "router": self.router, "measured": self.measured or None,
            "engine_config": dict(self.engine),
            "cable": {"openfpgaloader_board": self.cable.board, "cable": self.cable.cable,
                      "needs_cable": self.cable.needs_cable,
                      "description": self.cable.describe()},
            "litex_platform": f"litex_boards.platforms.{self.platform_module}",
            "url": self.url, "notes": self.notes,
        }
