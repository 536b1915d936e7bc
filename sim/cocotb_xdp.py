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
"""
from __future__ import annotations

import os
import select
import socket

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

PERIOD_NS = 10


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


@cocotb.test()
async def serve(dut):
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for p in range(8):
        rx = getattr(dut, f"rx{p}__valid", None)
        if rx is None:
            break
        rx.value = 0
        getattr(dut, f"tx{p}__ready").value = 1
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
    pf = os.environ.get("BPFPGA_XDP_PORTFILE")
    if pf:
        with open(pf + ".tmp", "w") as f:
            f.write(str(srv.getsockname()[1]))
        os.replace(pf + ".tmp", pf)
    srv.settimeout(float(os.environ.get("BPFPGA_XDP_ACCEPT_TIMEOUT", "120")))
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.setblocking(False)
    buf = bytearray()
    idle = 0
    while True:
        wait = 0 if idle < 64 else 0.002
        r, _, _ = select.select([conn], [], [], wait)
        if r:
            try:
                data = conn.recv(1 << 16)
            except BlockingIOError:
                data = b""
            else:
                if not data:
                    break
            buf += data
        did = False
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
    conn.close()
    srv.close()
