"""The simulated board: the XDP engine in Verilator (sim/rtl_xdp_build.py's Simulation) with
its control port served to any number of host clients, one after another or at once, with the
LiteX UART-bridge protocol on a TCP port, as a board's UART bridge serves one host. Host tools
connect with ``--device socket://HOST:PORT`` exactly as they would to ``/dev/ttyUSB1``.

The board process parses the bridge protocol of each client (with LiteX's 100 ms idle reset of
the parser, so a client's resync after lost bytes works as on hardware) and runs each command
on the simulation under one lock. Accesses outside the engine's regions read as zero and are
ignored when written, as on a SoC bus with a timeout; the Verilator bench would otherwise wait
for an acknowledge that never comes.

Packets: the simulated engine's port streams are not driven by the bench, so the board replays
``--port0-pcap`` through the inject ring with in_port 0 (ingress ifindex 1), pacing it to
``inflight`` frames at a time (default 1, at most one per core: the engine drops a frame that
finds every buffer busy), and with
``--capture DIR`` turns on CAPTURE mode and drains the output ring: XDP_TX frames to
``port<in_port>.pcap``, XDP_REDIRECT frames to ``port<ifindex - 1>.pcap``, XDP_PASS frames to
``host.pcap``, each in arrival order, plus ``results.json`` (one line per frame: verdict and
port) -- rewritten as records arrive.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from pathlib import Path

from bpfpga.errors import TargetError
from bpfpga.hdl import control as C

IDLE_RESET = 0.1          # LiteX UARTBone's parser timeout


class _Locked:
    """A transport whose operations hold the board's lock (for the board's own Device)."""

    def __init__(self, board):
        self.b = board
        self.url = board.link.url

    def read(self, addr, n, retry=True):
        with self.b.lock:
            return self.b.link.read(addr, n)

    def write(self, addr, words):
        with self.b.lock:
            self.b.link.write(addr, words)

    def close(self):
        pass


class SimBoard:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, pcap0: str | None = None,
                 capture: str | None = None, replay_on: str = "load", log=print,
                 inflight: int = 1):
        from bpfpga.host.device import Device
        from bpfpga.host.transport import UartBridge
        from bpfpga.sim.rtl_xdp_build import Simulation
        self.log = log
        self.frames = []
        if pcap0:
            from bpfpga.sim import pcap
            self.frames = pcap.read(pcap0)
        self.capture = Path(capture) if capture else None
        self.replay_on = replay_on
        self.inflight = inflight
        self.replay_go = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.RLock()
        self.sim = Simulation()
        try:
            self.link = UartBridge(self.sim.url, timeout=60.0, retries=1)
            self.dev = Device(transport=_Locked(self))
            d = self.dev
            # every register slot: the engine answers 0 for the ones it does not define
            self.ranges = [(C.REGS, 64), (C.COUNTERS, C.N_COUNTERS),
                           (C.MAPDESC, 8 * d.max_maps), (C.PM_STAGE, 2 * d.pm_depth),
                           (C.INJ_RING, 2 * d.inj_words), (C.OUT_RING, 2 * d.out_words),
                           (C.TRACE, 2 * C.TRACE_SLOT_WORDS * d.trace_depth),
                           (C.MAPMEM, d.map_bytes // 4)]
            if self.capture:
                self.capture.mkdir(parents=True, exist_ok=True)
                d.control(capture=True)
            self.commits0 = d.reg(C.R_COMMITS)
            self.srv = socket.socket()
            self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.srv.bind((host, port))
            self.srv.listen(8)
            self.srv.settimeout(0.2)
            self.addr = self.srv.getsockname()
        except BaseException:
            self.close()
            raise
        self.records: list[dict] = []
        self.replayed = 0

    @property
    def url(self) -> str:
        return f"socket://{self.addr[0]}:{self.addr[1]}"

    # ------------------------------------------------------------------ bridge clients
    def _valid(self, addr: int) -> bool:
        return any(b <= addr < b + n for b, n in self.ranges)

    def _client(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(IDLE_RESET)
        buf = bytearray()
        try:
            while not self.stop.is_set():
                try:
                    data = conn.recv(1 << 16)
                    if not data:
                        return
                    buf += data
                except socket.timeout:
                    buf.clear()           # the bridge's idle reset: drop a partial command
                    continue
                while len(buf) >= 6:
                    cmd, n = buf[0], buf[1]
                    addr = int.from_bytes(buf[2:6], "big")
                    incr = 1 if cmd in (1, 2) else 0
                    if cmd in (1, 3):
                        if len(buf) < 6 + 4 * n:
                            break
                        words = struct.unpack_from(f">{n}I", buf, 6)
                        del buf[:6 + 4 * n]
                        with self.lock:
                            if incr and n and self._valid(addr) and \
                                    self._valid(addr + n - 1):
                                self.link.write(addr, list(words))
                            else:
                                for i, w in enumerate(words):
                                    a = addr + incr * i
                                    if self._valid(a):
                                        self.link.write(a, [w])
                    elif cmd in (2, 4):
                        del buf[:6]
                        out = []
                        with self.lock:
                            if incr and n and self._valid(addr) and self._valid(addr + n - 1):
                                out = self.link.read(addr, n)
                            else:
                                for i in range(n):
                                    a = addr + incr * i
                                    out.append(self.link.read(a, 1)[0] if self._valid(a)
                                               else 0)
                        conn.sendall(struct.pack(f">{n}I", *out))
                    else:
                        del buf[:1]
        except OSError:
            return
        finally:
            conn.close()

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    # ------------------------------------------------------------------ packets
    def _done(self) -> int:
        c = self.dev.counters()
        return sum(c[C.C_VERDICT:C.C_VERDICT + 5]) + c[C.C_RUNT] + c[C.C_OVERSIZE] + \
            c[C.C_NOBUF]

    def _replay_ready(self) -> bool:
        if self.replay_on == "signal":
            return self.replay_go.is_set()
        return self.dev.reg(C.R_COMMITS) != self.commits0 and \
            self.dev.reg(C.R_CTRL) & C.CTRL_ENABLE

    def _replay_step(self) -> None:
        """Inject `inflight` frames (at most one per core), then wait until the engine has
        finished them."""
        d = self.dev
        batch = self.frames[self.replayed:self.replayed + max(1, min(self.inflight, d.cores))]
        base = self._done()
        with self.lock:
            d._inj_wr = None             # other clients may have used the ring
            d.inject([(f, 0) for f in batch])
        t0 = time.time()
        while self._done() < base + len(batch):
            if self.capture:
                self._drain()
            if time.time() - t0 > 30:
                raise TargetError("the simulated engine stopped taking frames")
            time.sleep(0.002)
        self.replayed += len(batch)
        if self.replayed == len(self.frames):
            self.log(f"replayed {self.replayed} frame(s) into port 0")

    def _drain(self) -> None:
        d = self.dev
        with self.lock:
            d._out_rd = None
            if d.reg(C.R_OUT_WR) == d.reg(C.R_OUT_RD):
                return
            recs = []
            wr = d.reg(C.R_OUT_WR)
            rd = d.reg(C.R_OUT_RD)
            if wr != rd:
                # every record the ring holds now (results() waits for at least one)
                recs = d.results(1)
                while d.reg(C.R_OUT_WR) != d._out_rd:
                    recs += d.results(1)
        if recs:
            self.records += recs
            self._write_capture()

    def _write_capture(self) -> None:
        from bpfpga.sim import pcap
        recs = sorted(self.records, key=lambda r: r["seq"])
        ports: dict[str, list[bytes]] = {f"port{p}": [] for p in range(self.dev.ports)}
        ports["host"] = []
        lines = []
        for r in recs:
            v = r["verdict"] if not r["trap"] else 0
            where = None
            if v == 3:
                where = f"port{r['in_port']}"
            elif v == 4 and 1 <= r["redirect"] <= self.dev.ports:
                where = f"port{r['redirect'] - 1}"
            elif v == 2:
                where = "host"
            if where is not None:
                ports.setdefault(where, []).append(r["packet"])
            lines.append(json.dumps({"seq": r["seq"], "verdict": v, "trap": r["trap"],
                                     "in_port": r["in_port"], "out": where,
                                     "len": r["len"]}))
        for name, frames in ports.items():
            tmp = self.capture / f".{name}.pcap"
            pcap.write(tmp, frames)
            os.replace(tmp, self.capture / f"{name}.pcap")
        tmp = self.capture / ".results.json"
        tmp.write_text("\n".join(lines) + ("\n" if lines else ""))
        os.replace(tmp, self.capture / "results.json")

    # ------------------------------------------------------------------ main loop
    def serve(self) -> None:
        threading.Thread(target=self._accept_loop, daemon=True).start()
        if self.capture:
            self._write_capture()
        while not self.stop.is_set():
            if self.replayed < len(self.frames) and self._replay_ready():
                self._replay_step()
                continue
            if self.capture:
                self._drain()
            self.stop.wait(0.05)

    def close(self) -> None:
        self.stop.set()
        srv = getattr(self, "srv", None)
        if srv is not None:
            srv.close()
        link = getattr(self, "link", None)
        if link is not None:
            with self.lock:
                link.close()
        if self.sim is not None:
            self.sim.close()
            self.sim = None
