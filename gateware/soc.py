"""The SoC for a board: engine + LiteEth MAC/RGMII PHY per port + host bridge + clocking.

Built with LiteX (SoCMini: no CPU) on the litex-boards platform of the board: LiteEth's RGMII
PHY, MAC, UDP/IP stack and Etherbone, and LiteX's UART bridge, are LiteX cores, and the
platforms carry every pin and IO standard; Amaranth's boards would have needed all of that
rewritten. The engine is Amaranth, elaborated to Verilog (gateware/engine.py).

Clock domains: ``sys`` is the engine's clock (the board's engine clock, or --clock), from the
ECP5 PLL; each Ethernet port ``i`` has ``eth{i}_rx``/``eth{i}_tx`` (125 MHz from its PHY),
crossed into ``sys`` by LiteEth's MAC.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from migen import *
from migen.genlib.resetsync import AsyncResetSynchronizer
from liteeth.mac.crc import LiteEthMACCRC32Checker

from litex.gen import LiteXModule
from litex.soc.cores.clock import ECP5PLL
from litex.soc.integration.soc import SoCRegion
from litex.soc.integration.soc_core import SoCMini
from litex.soc.interconnect import stream
from litex.soc.interconnect.csr import CSRStatus

from liteeth.common import convert_ip, eth_phy_description
from liteeth.core.arp import LiteEthARP
from liteeth.core.icmp import LiteEthICMP
from liteeth.core.ip import LiteEthIP
from liteeth.core.udp import LiteEthUDP
from liteeth.frontend.etherbone import LiteEthEtherbone
from liteeth.mac import LiteEthMACCoreCrossbar
from liteeth.mac.common import LiteEthMACCrossbar
from liteeth.mac.core import LiteEthMACCore
from liteeth.mac.padding import LiteEthMACPaddingInserter
from liteeth.phy.ecp5rgmii import LiteEthPHYRGMII

from bpfpga.boards.base import Board
from bpfpga.gateware.engine import LiteXEngine, engine_component, generate_verilog, \
    read_contract
from bpfpga.gateware.ebauth import EtherboneAuth
from bpfpga.gateware.ethport import MAC_DW, EnginePort
from bpfpga.gateware.hostport import HostPacketPort

ENGINE_BASE = 0x1000_0000   # LiteX puts its CSRs at 0 in a CPU-less SoC
ENGINE_MODULE = "bpfpga_engine"


class CRG(LiteXModule):
    def __init__(self, platform, board: Board, sys_clk_freq: float):
        self.rst = Signal()
        self.cd_sys = ClockDomain()
        self.cd_por = ClockDomain(reset_less=True)
        clk = platform.request(board.clock[0])
        # hold the PLL in reset for a while after configuration
        por = Signal(12, reset=2**12 - 1)
        self.comb += self.cd_por.clk.eq(clk)
        self.sync.por += If(por != 0, por.eq(por - 1))
        button = 0
        if board.reset is not None:
            pad = platform.request(board.reset[0], 0)
            button = ~pad if board.reset[1] else pad
        self.pll = pll = ECP5PLL()
        self.comb += pll.reset.eq((por != 0) | button | self.rst)
        pll.register_clkin(clk, board.clock[1])
        pll.create_clkout(self.cd_sys, sys_clk_freq)


def _request_eth(platform, index: int, taken: set):
    """The eth pads of port ``index``, without pins an earlier port already owns (the
    Colorlight's two PHYs share one MDIO bus, which this SoC does not drive)."""
    from litex.build.generic_platform import Pins, Subsignal
    cm = platform.constraint_manager
    for k, res in enumerate(cm.available):
        if res[0] == "eth" and res[1] == index:
            items = []
            for item in res[2:]:
                if isinstance(item, Subsignal):
                    pins = {p for c in item.constraints if isinstance(c, Pins)
                            for p in c.identifiers}
                    if pins & taken:
                        continue
                    taken |= pins
                items.append(item)
            cm.available[k] = (res[0], res[1], *items)
            break
    return platform.request("eth", index)


def _block_ram(module, min_bits: int = 1024):
    """Ask yosys for block RAM (``ram_style``) for every memory under ``module`` of at least
    ``min_bits`` whose ports all read synchronously. yosys builds small memories such as the
    MAC's clock-crossing FIFOs (32 x 42 bits) and the ICMP echo buffer from LUT RAM
    (TRELLIS_DPR16X4, two logic cells and a RAMW each, plus a read mux above 16 words),
    where the 25F has logic cells to spare least; a DP16KD holds them whole. Returns the
    memories marked."""
    from migen.fhdl.specials import Memory
    marked = []

    def walk(mod):
        for sp in mod._fragment.specials:
            if (isinstance(sp, Memory) and sp.width * sp.depth >= min_bits
                    and not any(p.async_read for p in sp.ports)):
                sp.attr = set(getattr(sp, "attr", set())) | {("ram_style", "block")}
                marked.append(sp)
        for _name, sub in mod._submodules:
            walk(sub)
    walk(module)
    return marked


def _pipe(layout):
    """A register stage on valid/payload and on ready."""
    return stream.Buffer(layout, pipe_valid=True, pipe_ready=True)


def _cut_tx_datapath(core):
    """Register stages in the MAC's TX datapath (eth_tx domain, 125 MHz) after its clock
    crossing and before its padding inserter: without them the PHY's ready ran through the gap,
    preamble, CRC, padding and width converter into the crossing FIFO's read pointer and its
    LUT RAM (10.0 ns on an LFE5U-25F-6, 100 MHz; measured with the loopback engine)."""
    tx = core.tx_datapath

    def cut(at, dw):
        buf = ClockDomainsRenamer("eth_tx")(_pipe(eth_phy_description(dw)))
        tx.submodules += buf            # stream.Pipeline connects, it does not own
        tx.pipeline.insert(at, buf)

    cut(next(i for i, m in enumerate(tx.pipeline)
             if isinstance(m, stream.ClockDomainCrossing)) + 1, MAC_DW)
    pad = next((i for i, m in enumerate(tx.pipeline)
                if isinstance(m, LiteEthMACPaddingInserter)), None)
    if pad is not None:
        cut(pad, 8)


def _cut_rx_datapath(core):
    """A register stage in the MAC's RX datapath (eth_rx domain, 125 MHz) in front of its
    clock crossing: the crossing FIFO's writable ran from its synchronized read pointer
    through the width converter's and CRC checker's ready into the checker's FIFO (8.1 ns
    on an LFE5U-25F-6, 122.7 MHz on eth1 rx; measured with the loopback engine)."""
    rx = core.rx_datapath
    buf = ClockDomainsRenamer("eth_rx")(_pipe(eth_phy_description(MAC_DW)))
    rx.submodules += buf
    rx.pipeline.insert(next(i for i, m in enumerate(rx.pipeline)
                            if isinstance(m, stream.ClockDomainCrossing)), buf)
    # and one behind the CRC checker (8 bits): on the engine build at 84 % of the part the
    # RX domains missed 125 MHz again (115-117 MHz placement estimates on one port or the
    # other), the checker's FIFO and compare feeding the RX last-byte and width logic
    crc_at = next((i for i, m in enumerate(rx.pipeline)
                   if isinstance(m, LiteEthMACCRC32Checker)), None)
    if crc_at is not None:
        buf8 = ClockDomainsRenamer("eth_rx")(_pipe(eth_phy_description(8)))
        rx.submodules += buf8
        rx.pipeline.insert(crc_at + 1, buf8)


class _BufferedCrossbar:
    """A LiteEth crossbar whose ports get a register stage each way: the ready paths of the
    UDP/IP/Etherbone stack are combinational from the MAC's packetizer through IP, UDP and
    Etherbone and back (20.7 ns on an LFE5U-25F-6, 48 MHz, measured with the loopback engine);
    cut where a layer takes its port from the one below."""

    def __init__(self, owner, crossbar):
        self._owner, self._xbar = owner, crossbar

    def get_port(self, *args, **kwargs):
        real = self._xbar.get_port(*args, **kwargs)
        user = SimpleNamespace(sink=stream.Endpoint(real.sink.description),
                               source=stream.Endpoint(real.source.description))
        down, up = _pipe(real.sink.description), _pipe(real.source.description)
        self._owner.submodules += down, up
        self._owner.comb += [user.sink.connect(down.sink), down.source.connect(real.sink),
                             real.source.connect(up.sink), up.source.connect(user.source)]
        return user

    def __getattr__(self, name):
        return getattr(self._xbar, name)


def _etherbone_key(board: Board) -> bytes:
    import os

    from bpfpga.auth import parse_key
    text = os.environ.get("BPFPGA_EB_KEY")
    if not text:
        raise ValueError(f"{board.name}: its Etherbone host link shares a data port, so every "
                         f"request is authenticated: give the key to build in with "
                         f"BPFPGA_EB_KEY (32 hex digits, or a key file only you can read; "
                         f"the host uses the same with --key or $BPFPGA_KEY)")
    return parse_key(text, "BPFPGA_EB_KEY")


class _GatedCrossbar:
    """Hands Etherbone the verifier's side of its UDP port (gateware/ebauth.py)."""

    def __init__(self, owner, crossbar, gate):
        self._owner, self._xbar, self._gate = owner, crossbar, gate

    def get_port(self, *args, **kwargs):
        real = self._xbar.get_port(*args, **kwargs)
        g = self._gate
        user = SimpleNamespace(sink=g.eb_sink, source=g.eb_source)
        self._owner.comb += [real.source.connect(g.net_sink), g.net_source.connect(real.sink)]
        return user

    def __getattr__(self, name):
        return getattr(self._xbar, name)


class BpfpgaSoC(SoCMini):
    def __init__(self, board: Board, cores: int | None = None, clock_mhz: float | None = None,
                 out_dir: Path | None = None, engine_kwargs: dict | None = None,
                 engine: str | None = None):
        self.board = board
        cores = cores or board.cores
        clock_mhz = clock_mhz or board.engine_clock_mhz
        sys_clk_freq = clock_mhz * 1e6
        platform = board.platform()
        self.crg = CRG(platform, board, sys_clk_freq)
        SoCMini.__init__(self, platform, sys_clk_freq,
                         ident=f"bpfpga on {board.title}", ident_version=False)

        # engine ------------------------------------------------------------------------
        ekw = {**dict(board.engine), **(engine_kwargs or {})}
        # ktime_get_ns advances by the clock period the SoC is built for (--clock included),
        # rounded to whole nanoseconds (R_NS_PER_CYCLE tells the host)
        ekw.setdefault("ns_per_cycle", max(1, round(1000 / clock_mhz)))
        comp, kind = engine_component(cores=cores, ports=board.ports, kind=engine, **ekw)
        cfg = getattr(comp, "cfg", None)
        self.engine_config = cfg.as_dict() if hasattr(cfg, "as_dict") else ekw
        # a board without Ethernet: the XDP engine takes packets through its own inject and
        # output rings; the stand-in has none and gets the host packet port as port 0
        n_ports = board.ports or (1 if kind in ("standin", "loopback") else 0)
        self.engine_kind = kind
        contract = read_contract(comp)
        if contract.ports < n_ports:
            raise ValueError(f"the engine has {contract.ports} stream pairs, "
                             f"{board.name} needs {n_ports}")
        out_dir = Path(out_dir or ".")
        vpath, self.engine_digest = generate_verilog(comp, ENGINE_MODULE, out_dir)
        platform.add_source(str(vpath.resolve()))
        self.engine = engine = LiteXEngine(contract, ENGINE_MODULE)
        self.engine_contract = contract
        self.bus.add_slave("engine", engine.bus, SoCRegion(
            origin=ENGINE_BASE, size=4 << engine.adr_width, cached=False))
        self.add_constant("BPFPGA_ENGINE_BASE", ENGINE_BASE)
        self.add_constant("BPFPGA_CORES", cores)
        self.add_constant("BPFPGA_PORTS", n_ports)

        # host link ---------------------------------------------------------------------
        host = board.host
        if host.kind == "uart":
            self.add_uartbone(name="uartbone", uart_name=host.resource, baudrate=host.baud)

        # packet ports ------------------------------------------------------------------
        self.eth_domains = []
        taken: set = set()
        eng_dw = {i: contract.rx(i).data_width for i in range(n_ports)}
        for i, port in enumerate(board.eth):
            cd = {"eth_rx": f"eth{i}_rx", "eth_tx": f"eth{i}_tx"}
            phy = ClockDomainsRenamer(cd)(LiteEthPHYRGMII(
                clock_pads=platform.request("eth_clocks", port.index),
                pads=_request_eth(platform, port.index, taken),
                tx_delay=port.tx_delay, rx_delay=port.rx_delay))
            setattr(self, f"ethphy{i}", phy)
            core = LiteEthMACCore(phy, MAC_DW, with_preamble_crc=True, tx_cdc_buffered=True,
                                  rx_cdc_buffered=True)
            _cut_tx_datapath(core)
            _cut_rx_datapath(core)
            _block_ram(core)
            core = ClockDomainsRenamer(cd)(core)
            setattr(self, f"ethmac{i}", core)
            self.eth_domains += [f"eth{i}_rx", f"eth{i}_tx"]
            drop_mac = None
            if host.kind == "etherbone" and host.port == i:
                mac_source, mac_sink = self._add_etherbone(core, host)
                drop_mac = host.mac
            else:
                mac_source, mac_sink = core.source, core.sink
            setattr(self, f"port{i}", EnginePort(mac_source, mac_sink, engine.sinks[i],
                                                  engine.sources[i], eng_dw[i],
                                                  drop_mac=drop_mac))
            self.platform.add_false_path_constraints(self.crg.cd_sys.clk, phy.crg.cd_eth_rx.clk)
        if not board.eth and n_ports:
            self.hostport = hp = HostPacketPort()
            self.port0 = EnginePort(hp.source, hp.sink, engine.sinks[0], engine.sources[0],
                                    eng_dw[0])
        # an engine stream that is not a port (PASS towards the host) is drained, counted
        for name, src in engine.extra_sources:
            self.comb += src.ready.eq(1)

    def _add_etherbone(self, core, host):
        """UDP/IP + Etherbone behind LiteEth's hybrid crossbar; returns the (source, sink)
        of raw frames for the engine. The crossbar is built without its MAC filter (two
        4 x 154-bit LUT-RAM FIFOs, a depacketizer and two packetizers, some 900 logic cells):
        every frame reaches the stack, whose ARP and IP layers take only what is addressed
        to them, and the engine port drops the frames to the management address itself
        (gateware/ethport.py MacDropFilter), so the engine sees what it saw before."""
        dw = MAC_DW
        iface = SimpleNamespace(sink=stream.Endpoint(eth_phy_description(dw)),
                                source=stream.Endpoint(eth_phy_description(dw)))
        self.eb_crossbar = crossbar = LiteEthMACCrossbar(dw)
        self.eb_mac = LiteEthMACCoreCrossbar(core, crossbar, iface, dw, hw_mac=None)
        mac = SimpleNamespace(crossbar=_BufferedCrossbar(self, crossbar))
        # the port carries XDP traffic too: anyone who can send it a frame can reach the
        # Etherbone port, so every request must authenticate (gateware/ebauth.py); the key is
        # the build's (BPFPGA_EB_KEY: 32 hex digits or an owner-only key file)
        key = _etherbone_key(self.board)
        ip_address = convert_ip(host.ip)
        self.eb_arp = arp = LiteEthARP(mac, host.mac, ip_address, self.sys_clk_freq, dw=dw)
        # IP packets to this address only: with the crossbar unfiltered the stack sees
        # frames to other hosts too (the engine's traffic), and a UDP packet to port 1234 of
        # some other machine must not become an Etherbone request here
        self.eb_ip = ip = LiteEthIP(mac, host.mac, ip_address, arp.table, with_broadcast=False,
                                    dw=dw)
        self.eb_icmp = icmp = LiteEthICMP(ip, ip_address, dw=dw)
        _block_ram(icmp)
        self.eb_udp = udp = LiteEthUDP(ip, ip_address, dw=dw)
        self.eb_auth = gate = EtherboneAuth(key)
        self.etherbone = eb = LiteEthEtherbone(
            SimpleNamespace(crossbar=_GatedCrossbar(self, _BufferedCrossbar(self, udp.crossbar),
                                                    gate)),
            host.udp_port, mode="master", cd="sys")
        self.eb_accepted = CSRStatus(32, description="Etherbone requests authenticated.")
        self.eb_refused = CSRStatus(32, description="Etherbone requests refused (no or a "
                                    "bad tag, replayed, too long).")
        self.comb += [self.eb_accepted.status.eq(gate.accepted),
                      self.eb_refused.status.eq(gate.refused)]
        self.bus.add_master(name="etherbone", master=eb.wishbone.bus)
        return iface.sink, iface.source
