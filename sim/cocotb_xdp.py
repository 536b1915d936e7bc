"""cocotb bench of the XDP engine: serves the control port over TCP with the LiteX UART-bridge
protocol, so host code drives the simulation exactly as it drives a board over a UART.

Started by :mod:`bpfpga.sim.rtl_xdp` (``cocotb_tools.runner``). It listens on 127.0.0.1 (port
$BPFPGA_XDP_PORT, 0 = any), writes the port it got into $BPFPGA_XDP_PORTFILE, serves one
client, and ends the simulation when that client disconnects.

Protocol (LiteX litex/soc/cores/uart.py, Stream2Wishbone): a command byte (0x01 write, 0x02
read; 0x03/0x04 the same at a fixed address), a length byte (32-bit words, 1..255), a 32-bit
big-endian word address, then for a write the words (big-endian); a read answers with the
words (big-endian). Python does not wake on every clock edge while the engine runs: when no
command is pending, the simulation advances by stretches of Timer.

Frames (when $BPFPGA_XDP_FRAMEFILE is set): a second listening socket, its port written into
that file, takes one client that exchanges Ethernet frames with the engine's port streams,
each as a 3-byte header (port u8, length u16 big-endian) and the frame: frames from the client
are driven into ``rx<port>`` beat by beat, frames the engine sends on ``tx<port>`` go to the
client. While a frame client is connected the bench holds ``tx<port>.ready`` low except while
it takes a frame (an idle stretch of Timer delays a frame by at most 256 cycles); without one,
``ready`` stays high and what the ports send is dropped. A frame from the client enters
``rx<port>`` only when a packet buffer is free (STATUS bits 8..), as a MAC's receive FIFO
would hold it, for at most RX_WAIT cycles (then it goes in and the engine may drop it,
counted as no_buffer); bridge commands go on while it waits.
"""
from __future__ import annotations

import os
import select
import socket
import struct
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer
from cocotb.utils import get_sim_time

PERIOD_NS = 10
STATUS, INFO = 9, 2          # hdl/control.py R_STATUS (bits 8..: lanes holding a frame), R_INFO
RX_WAIT = 200_000            # cycles a frame from the frame socket waits for a free buffer


class WishboneMaster:
    def __init__(self, dut):
        self.dut = dut
        self.clk = dut.clk
        self.cyc = dut.wb__cyc
        self.stb = dut.wb__stb
        self.we = dut.wb__we
        self.adr = dut.wb__adr
        self.dat_w = dut.wb__dat_w
        self.sel = dut.wb__sel
        self.ack = dut.wb__ack
        self.dat_r = dut.wb__dat_r
        for s in (self.cyc, self.stb, self.we, self.adr, self.dat_w, self.sel):
            s.value = 0

    async def access(self, addr: int, we: bool, data: int = 0) -> int:
        self.cyc.value = 1
        self.stb.value = 1
        self.we.value = int(we)
        self.adr.value = addr
        self.dat_w.value = data
        self.sel.value = 0xF
        for _ in range(100_000):
            await FallingEdge(self.clk)
            if int(self.ack.value):
                break
        else:
            raise RuntimeError(f"no Wishbone ack at 0x{addr:x}")
        r = int(self.dat_r.value) if not we else 0
        self.stb.value = 0
        self.cyc.value = 0
        return r


class Ports:
    """The engine's rx<p> / tx<p> streams, driven and taken at falling edges (the engine
    changes on rising ones): a beat is transferred at the rising edge after a falling edge at
    which valid and ready are both high."""

    def __init__(self, dut):
        self.clk = dut.clk
        self.rx, self.tx = [], []
        for p in range(8):
            if getattr(dut, f"rx{p}__valid", None) is None:
                break
            self.rx.append({f: getattr(dut, f"rx{p}__{f}") for f in
                            ("valid", "ready", "payload")})
            self.tx.append({f: getattr(dut, f"tx{p}__{f}") for f in
                            ("valid", "ready", "payload")})
        for r in self.rx:
            r["valid"].value = 0
        self.hold(False)

    def hold(self, on: bool) -> None:
        for t in self.tx:
            t["ready"].value = 0 if on else 1

    async def send(self, port: int, frame: bytes) -> None:
        rx = self.rx[port]
        nb = max(1, (len(frame) + 7) // 8)
        await FallingEdge(self.clk)
        for i in range(nb):
            chunk = frame[8 * i:8 * i + 8]
            last = i == nb - 1
            keep = (1 << len(chunk)) - 1 if last else 0xFF
            # payload layout (hdl/xdp.py PAYLOAD): data[0:64] keep[64:72] first[72] last[73]
            rx["payload"].value = int.from_bytes(chunk.ljust(8, b"\0"), "little") | \
                keep << 64 | int(i == 0) << 72 | int(last) << 73
            rx["valid"].value = 1
            while True:
                taken = int(rx["ready"].value)      # depends on the input's state only
                await FallingEdge(self.clk)
                if taken:
                    break
        rx["valid"].value = 0

    async def take(self, port: int) -> bytes | None:
        """The frame tx<port> offers, or None."""
        tx = self.tx[port]
        if not int(tx["valid"].value):
            return None
        await FallingEdge(self.clk)
        out = bytearray()
        tx["ready"].value = 1
        while True:
            v = int(tx["valid"].value)
            pl = int(tx["payload"].value)
            await FallingEdge(self.clk)
            if v:
                keep = (pl >> 64) & 0xFF
                out += (pl & ((1 << 64) - 1)).to_bytes(8, "little")[:bin(keep).count("1")]
                if (pl >> 73) & 1:
                    break
        tx["ready"].value = 0
        return bytes(out)


@cocotb.test()
async def serve(dut):
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    ports = Ports(dut)
    wbm = WishboneMaster(dut)
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(os.environ.get("BPFPGA_XDP_PORT", "0"))))
    srv.listen(1)
    lane_mask = (1 << (await wbm.access(INFO, False) & 0xFF)) - 1      # one lane a core
    head_since = None
    fsrv = fconn = None
    ff = os.environ.get("BPFPGA_XDP_FRAMEFILE")
    if ff:
        fsrv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        fsrv.bind(("127.0.0.1", 0))
        fsrv.listen(1)
        fsrv.setblocking(False)
        with open(ff + ".tmp", "w") as f:
            f.write(str(fsrv.getsockname()[1]))
        os.replace(ff + ".tmp", ff)
    pf = os.environ.get("BPFPGA_XDP_PORTFILE")
    if pf:
        with open(pf + ".tmp", "w") as f:
            f.write(str(srv.getsockname()[1]))
        os.replace(pf + ".tmp", pf)
    srv.settimeout(float(os.environ.get("BPFPGA_XDP_ACCEPT_TIMEOUT", "120")))
    # BPFPGA_XDP_REACCEPT: a closed control connection is followed by the next one (one
    # engine, many hosts in turn: a fuzz campaign loads many programs), until none comes
    reaccept = os.environ.get("BPFPGA_XDP_REACCEPT") == "1"

    def accept():
        c, _ = srv.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.setblocking(False)
        return c
    conn = accept()
    buf = bytearray()
    fbuf = bytearray()
    rxq: deque = deque()
    idle = 0
    while True:
        wait = 0 if idle < 64 else 0.002
        socks = [conn] + ([fconn] if fconn else [fsrv] if fsrv else [])
        r, _, _ = select.select(socks, [], [], wait)
        if fsrv is not None and fsrv in r:
            fconn, _ = fsrv.accept()
            fconn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fconn.setblocking(False)
            ports.hold(True)
        elif fconn is not None and fconn in r:
            try:
                data = fconn.recv(1 << 16)
            except BlockingIOError:
                data = b"-"
            if not data:
                fconn.close()
                fconn = None
                ports.hold(False)
            elif data != b"-":
                fbuf += data
                while len(fbuf) >= 3:
                    p, n = struct.unpack_from(">BH", fbuf)
                    if len(fbuf) < 3 + n:
                        break
                    rxq.append((p, bytes(fbuf[3:3 + n])))
                    del fbuf[:3 + n]
        if conn in r:
            try:
                data = conn.recv(1 << 16)
            except BlockingIOError:
                data = b""
            else:
                if not data:
                    if not reaccept:
                        break
                    conn.close()
                    buf.clear()
                    try:
                        conn = accept()
                    except OSError:         # socket.timeout: no next host
                        conn = None
                        break
                    continue
            buf += data
        did = False
        if fconn is not None:
            async def drain_tx():
                for p in range(len(ports.tx)):
                    frame = await ports.take(p)
                    if frame is not None:
                        fconn.setblocking(True)
                        fconn.sendall(struct.pack(">BH", p, len(frame)) + frame)
                        fconn.setblocking(False)
            await drain_tx()
            while rxq:
                # a frame waits here (as in a MAC's receive FIFO) until a packet buffer is
                # free, for at most RX_WAIT cycles; then it goes in and may be dropped. Bridge
                # commands go on meanwhile.
                now = get_sim_time("ns")
                if head_since is None:
                    head_since = now
                lanes = (await wbm.access(STATUS, False) >> 8) & lane_mask
                if lanes == lane_mask and now - head_since < RX_WAIT * PERIOD_NS:
                    break
                head_since = None
                p, frame = rxq.popleft()
                if p < len(ports.rx):
                    await ports.send(p, frame)
                await drain_tx()
                did = True
        out = bytearray()
        while len(buf) >= 6:
            cmd, n = buf[0], buf[1]
            addr = int.from_bytes(buf[2:6], "big")
            incr = 1 if cmd in (1, 2) else 0
            if cmd in (1, 3):
                if len(buf) < 6 + 4 * n:
                    break
                for i in range(n):
                    w = int.from_bytes(buf[6 + 4 * i:10 + 4 * i], "big")
                    await wbm.access(addr + incr * i, True, w)
                del buf[:6 + 4 * n]
            elif cmd in (2, 4):
                for i in range(n):
                    v = await wbm.access(addr + incr * i, False)
                    out += v.to_bytes(4, "big")
                del buf[:6]
            else:
                del buf[:1]          # not a command: resynchronize, as the bridge's timeout
            did = True
        if out:
            conn.setblocking(True)
            conn.sendall(bytes(out))
            conn.setblocking(False)
        if did:
            idle = 0
        else:
            idle += 1
            await Timer(256 * PERIOD_NS, unit="ns")
    if conn is not None:
        conn.close()
    srv.close()
    for sk in (fconn, fsrv):
        if sk is not None:
            sk.close()
