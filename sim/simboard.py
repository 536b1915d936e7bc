"""The simulated board: the XDP engine in Verilator (sim/rtl_xdp_build.py's Simulation) with
its control port served to any number of host clients, one after another or at once, with the
LiteX UART-bridge protocol on a TCP port, as a board's UART bridge serves one host. Host tools
connect with ``--device socket://HOST:PORT`` exactly as they would to ``/dev/ttyUSB1``.

Every client authenticates (bpfpga/auth.py): the bridge bytes come in records tagged with
SipHash-2-4 under the board's key (a 0600 key file it writes for its owner, found by the CLI
by the URL), a per-connection nonce and a sequence number; the board runs each record's
complete commands under one lock and drops a client whose record does not authenticate,
replays, or stalls (REQUEST_DEADLINE). LiteX's 100 ms idle reset of the parser still drops a
partial command, so a client's resync after lost bytes works as on hardware. Accesses outside the engine's regions read as zero and are
ignored when written, as on a SoC bus with a timeout; the Verilator bench would otherwise wait
for an acknowledge that never comes.

TAP mode (``taps={port: name}``): the board creates a Linux TAP device per attached port
(/dev/net/tun, TUNSETIFF with IFF_TAP | IFF_NO_PI) and exchanges frames with the engine's real
port streams through the bench's frame socket (sim/cocotb_xdp.py): every frame the kernel sends
on the TAP enters ``rx<port>``, every frame the engine sends on ``tx<port>`` (XDP_TX of a frame
from that port, XDP_REDIRECT to ifindex port + 1) is written to the TAP. XDP_PASS frames go to
the output ring as always. The TAP exists while the board runs; it may be moved into another
network namespace (its file descriptor keeps working).

Packets from a pcap: the board replays
``--port0-pcap`` through the inject ring with in_port 0 (ingress ifindex 1), pacing it to
``inflight`` frames at a time (default 1, at most one per core: the engine drops a frame that
finds every buffer busy), and with
``--capture DIR`` turns on CAPTURE mode and drains the output ring: XDP_TX frames to
``port<in_port>.pcap``, XDP_REDIRECT frames to ``port<ifindex - 1>.pcap``, XDP_PASS frames to
``host.pcap``, each in arrival order, plus ``results.json`` (one line per frame: verdict and
port) -- rewritten as records arrive.
"""
from __future__ import annotations

import errno
import json
import os
import select
import socket
import struct
import threading
import time
from pathlib import Path

from bpfpga.errors import BpfpgaError, TargetError
from bpfpga.hdl import control as C

IDLE_RESET = 0.1          # LiteX UARTBone's parser timeout
REQUEST_DEADLINE = 2.0    # seconds from a request record's first byte (or from when
                          # the board finished the one before it) to its last
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000


def open_tap(name: str) -> int:
    """Create (or attach to) the TAP device `name`; returns its file descriptor. Errors are
    one line naming the device and what is missing."""
    import fcntl
    if not name or len(name.encode()) > 15 or any(c in name for c in "/ \t\n:"):
        raise TargetError(f"--tap {name!r}: not an interface name (1 to 15 characters, no "
                          f"'/', ':' or spaces)")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except FileNotFoundError:
        raise TargetError(f"--tap {name}: /dev/net/tun does not exist (no TUN/TAP support "
                          f"in this kernel or container)") from None
    except PermissionError:
        raise TargetError(f"--tap {name}: cannot open /dev/net/tun (permission denied); TAP "
                          f"devices need root or CAP_NET_ADMIN") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError as e:
        os.close(fd)
        if e.errno == errno.EPERM:
            raise TargetError(f"--tap {name}: creating a TAP device needs root or "
                              f"CAP_NET_ADMIN (TUNSETIFF: operation not permitted)") from None
        if e.errno == errno.EBUSY:
            raise TargetError(f"--tap {name}: the device is in use by another "
                              f"process") from None
        raise TargetError(f"--tap {name}: cannot create the TAP device ({e.strerror})") \
            from None
    return fd


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

    def atomic(self):
        return self.b.lock          # a window and its write, with no other client between

    def close(self):
        pass


class SimBoard:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, pcap0: str | None = None,
                 capture: str | None = None, replay_on: str = "load", log=print,
                 inflight: int = 1, taps: dict[int, str] | None = None,
                 key: bytes | None = None):
        from bpfpga.host.device import Device
        from bpfpga.host.transport import UartBridge
        from bpfpga.sim.rtl_xdp_build import Simulation
        self.log = log
        self.sim = None
        self.taps: dict[int, int] = {}           # port -> TAP file descriptor
        self.tap_names = dict(taps or {})
        self.tap_in = {p: 0 for p in self.tap_names}     # frames read from each TAP
        self.tap_out = {p: 0 for p in self.tap_names}    # frames written to each TAP
        self.tx_frames: dict[int, list[bytes]] = {}      # frames the ports sent (capture)
        self.fsock = None
        self.flock = threading.Lock()
        for p, name in sorted(self.tap_names.items()):
            if p < 0:
                raise TargetError(f"--tap {p}={name}: no port {p}")
            try:
                self.taps[p] = open_tap(name)
            except BaseException:
                self._close_taps()
                raise
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
        self.refused = 0          # clients dropped (unauthenticated, replayed, stalled)
        self.key_file = None
        try:
            self.sim = Simulation(frames=bool(self.taps))
            self.link = UartBridge(self.sim.url, timeout=60.0, retries=1)
            self.dev = Device(transport=_Locked(self))
            d = self.dev
            for p, name in self.tap_names.items():
                if p >= d.ports:
                    raise TargetError(f"--tap {p}={name}: the engine has ports 0..{d.ports - 1}")
            if self.taps:
                self.fsock = socket.create_connection(("127.0.0.1", self.sim.frame_port))
                self.fsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # every register slot: the engine answers 0 for the ones it does not define
            self.ranges = [(C.REGS, 64), (C.COUNTERS, C.N_COUNTERS),
                           (C.MAPDESC, 8 * d.max_maps), (C.PM_STAGE, 2 * d.pm_depth),
                           (C.INJ_RING, 2 * d.inj_words), (C.OUT_RING, 2 * d.out_words),
                           (C.TRACE, 2 * C.TRACE_SLOT_WORDS * d.trace_depth),
                           (C.MAPMEM, d.map_bytes // 4)]
            if self.capture:
                self.capture.mkdir(parents=True, exist_ok=True)
                # with TAPs the ports' frames must reach the ports: no CAPTURE mode, the ring
                # holds the XDP_PASS frames only
                d.control(capture=not self.taps)
            self.commits0 = d.reg(C.R_COMMITS)
            self.srv = socket.socket()
            self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.srv.bind((host, port))
            self.srv.listen(8)
            self.srv.settimeout(0.2)
            self.addr = self.srv.getsockname()
            # the key every client must prove: given, or a new one in a file only this user
            # can read, named after the URL (the CLI finds it there: bpfpga/auth.py key_for)
            self.key_file = None
            if key is None:
                from bpfpga import auth
                self.key_file = auth.simboard_key_path(self.addr[0], self.addr[1])
                key = auth.write_key_file(self.key_file)
            self.key = key
        except BaseException:
            self.close()
            raise
        self.records: list[dict] = []
        self.replayed = 0
        self.capture_dirty = False

    @property
    def url(self) -> str:
        return f"socket://{self.addr[0]}:{self.addr[1]}"

    # ------------------------------------------------------------------ bridge clients
    def _valid(self, addr: int) -> bool:
        return any(b <= addr < b + n for b, n in self.ranges)

    def _client(self, conn: socket.socket) -> None:
        """One client: its authenticated records (bpfpga/auth.py), each verified whole
        before any of it runs; the bridge commands of one record run under the board's lock,
        and the lock is never held between records, so no client holds the control port
        against another. A client is dropped on a record that does not authenticate, replays
        or goes back in seq, is too long, or does not arrive whole within REQUEST_DEADLINE of
        its first byte (a slow writer)."""
        from bpfpga import auth
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(0.05)
        nonce = os.urandom(auth.NONCE_BYTES)
        rbuf = bytearray()          # record bytes received
        buf = bytearray()           # bridge command bytes of authenticated records
        started = None              # when the pending record's first byte came
        last_seq = -1
        last_rec = time.monotonic()

        def refuse(why: str) -> None:
            self.refused += 1
            self.log(f"sim-board: dropped a client: {why}")
        greeted = False
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                try:
                    data = conn.recv(1 << 16)
                    if not data:
                        return
                    if not rbuf:
                        started = now
                    rbuf += data
                except socket.timeout:
                    pass
                if rbuf and started is not None and now - started > REQUEST_DEADLINE:
                    refuse(f"a request not complete after {REQUEST_DEADLINE} s")
                    return
                if not greeted and len(rbuf) >= len(auth.HELLO):
                    if rbuf[:len(auth.HELLO)] != auth.HELLO:
                        conn.sendall(auth.REFUSED)
                        refuse("a client that does not authenticate (no key?)")
                        return
                    del rbuf[:len(auth.HELLO)]
                    greeted = True
                    conn.sendall(auth.HELLO + nonce)
                    if not rbuf:
                        started = None
                if not greeted:
                    if rbuf and now - started > REQUEST_DEADLINE:
                        refuse("no greeting")
                        return
                    continue
                if buf and now - last_rec > IDLE_RESET:
                    buf.clear()           # the bridge's idle reset: drop a partial command
                while len(rbuf) >= auth.REC_HEAD:
                    n, seq = auth.record_head(rbuf)
                    if n > auth.MAX_REQUEST:
                        refuse(f"a record of {n} bytes (not authenticated: no key?)")
                        return
                    if len(rbuf) < auth.REC_HEAD + n + auth.TAG_BYTES:
                        break
                    payload = bytes(rbuf[auth.REC_HEAD:auth.REC_HEAD + n])
                    got = rbuf[auth.REC_HEAD + n:auth.REC_HEAD + n + auth.TAG_BYTES]
                    del rbuf[:auth.REC_HEAD + n + auth.TAG_BYTES]
                    if seq & auth.ANSWER or not auth.check(self.key, seq, payload, got, nonce):
                        refuse("a request that does not authenticate")
                        return
                    if seq <= last_seq:
                        refuse(f"a replayed request (seq {seq}, last {last_seq})")
                        return
                    last_seq = seq
                    last_rec = now
                    buf += payload
                    out = self._run(buf)
                    if out:
                        conn.sendall(auth.record(self.key, nonce, seq | auth.ANSWER, out))
                    # the next record's deadline runs from when the board can take it: the
                    # time this one ran in the simulation is not the client's
                    started = time.monotonic() if rbuf else None
                    now = time.monotonic()
        except OSError:
            return
        finally:
            conn.close()

    def _run(self, buf: bytearray) -> bytes:
        """Run the complete bridge commands at the head of ``buf`` (taking them out), under
        the board's lock; the answer bytes of its reads."""
        out = bytearray()
        with self.lock:
            while len(buf) >= 6:
                cmd, n = buf[0], buf[1]
                addr = int.from_bytes(buf[2:6], "big")
                incr = 1 if cmd in (1, 2) else 0
                if cmd in (1, 3):
                    if len(buf) < 6 + 4 * n:
                        break
                    words = struct.unpack_from(f">{n}I", buf, 6)
                    del buf[:6 + 4 * n]
                    if incr and n and self._valid(addr) and self._valid(addr + n - 1):
                        self.link.write(addr, list(words))
                    else:
                        for i, w in enumerate(words):
                            a = addr + incr * i
                            if self._valid(a):
                                self.link.write(a, [w])
                elif cmd in (2, 4):
                    del buf[:6]
                    if incr and n and self._valid(addr) and self._valid(addr + n - 1):
                        vals = self.link.read(addr, n)
                    else:
                        vals = [self.link.read(addr + incr * i, 1)[0]
                                if self._valid(addr + incr * i) else 0 for i in range(n)]
                    out += struct.pack(f">{n}I", *vals)
                else:
                    del buf[:1]
        return bytes(out)

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    # ------------------------------------------------------------------ TAP devices
    def _tap_reader(self, port: int, fd: int) -> None:
        """Frames the kernel sends on the TAP -> the engine's rx<port>."""
        while not self.stop.is_set():
            try:
                r, _, _ = select.select([fd], [], [], 0.2)
                if not r:
                    continue
                frame = os.read(fd, 65535)
            except OSError:
                return
            if not frame:
                continue
            with self.flock:
                try:
                    self.fsock.sendall(struct.pack(">BH", port, len(frame)) + frame)
                except OSError:
                    return
            self.tap_in[port] += 1

    def _port_writer(self) -> None:
        """Frames the engine sends on tx<port> -> that port's TAP (and the capture)."""
        buf = bytearray()
        self.fsock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = self.fsock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 3:
                p, n = struct.unpack_from(">BH", buf)
                if len(buf) < 3 + n:
                    break
                frame = bytes(buf[3:3 + n])
                del buf[:3 + n]
                fd = self.taps.get(p)
                if fd is not None:
                    try:
                        os.write(fd, frame)
                        self.tap_out[p] += 1
                    except OSError:
                        pass              # the TAP is down: the frame is lost, as on a wire
                if self.capture:
                    with self.lock:
                        self.tx_frames.setdefault(p, []).append(frame)
                        self.capture_dirty = True

    def _close_taps(self) -> None:
        for fd in self.taps.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.taps = {}

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

    def _trap_where(self, pc: int) -> dict:
        """A trap's pc in its program, from the object the load record names (the engine
        reports the pc in its image); the image pc when no loaded object can be read."""
        from bpfpga.host.device import open_loaded, read_meta
        from bpfpga.compiler.link import program_pc
        with self.lock:
            meta = read_meta(self.dev)
            key = meta and meta.get("sha256")
            if key != getattr(self, "_spans_key", None):
                self._spans_key, self._spans = key, None
                if meta is not None:
                    try:
                        self._spans = open_loaded(self.dev)[0].spans
                    except (BpfpgaError, OSError, ValueError):
                        pass
        if self._spans is None:
            return {"image_pc": pc}
        prog, ppc = program_pc(self._spans, pc)
        return {"program": prog, "trap_pc": ppc}

    def _write_capture(self) -> None:
        from bpfpga.sim import pcap
        recs = sorted(self.records, key=lambda r: r["seq"])
        ports: dict[str, list[bytes]] = {f"port{p}": [] for p in range(self.dev.ports)}
        ports["host"] = []
        lines = []
        for r in recs:
            v = r["verdict"]
            where = None
            if v == 3:
                where = f"port{r['in_port']}"
            elif v == 4 and 1 <= r["redirect"] <= self.dev.ports:
                where = f"port{r['redirect'] - 1}"
            elif v == 2:
                where = "host"
            if where is not None:
                ports.setdefault(where, []).append(r["packet"])
            line = {"seq": r["seq"], "verdict": v, "trap": r["trap"], "in_port": r["in_port"],
                    "out": where, "len": r["len"]}
            if r["trap"]:
                line.update(self._trap_where(r["trap_pc"]))
            lines.append(json.dumps(line))
        for p, frames in self.tx_frames.items():
            ports.setdefault(f"port{p}", []).extend(frames)
        self.capture_dirty = False
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
        for p, fd in self.taps.items():
            threading.Thread(target=self._tap_reader, args=(p, fd), daemon=True).start()
        if self.fsock is not None:
            threading.Thread(target=self._port_writer, daemon=True).start()
        if self.capture:
            self._write_capture()
        while not self.stop.is_set():
            if self.replayed < len(self.frames) and self._replay_ready():
                self._replay_step()
                continue
            if self.capture:
                self._drain()
                if self.capture_dirty:
                    with self.lock:
                        self._write_capture()
            self.stop.wait(0.05)
        for p, name in self.tap_names.items():
            self.log(f"tap {name} (port {p}): {self.tap_in[p]} frame(s) in, "
                     f"{self.tap_out[p]} out")

    def close(self) -> None:
        self.stop.set()
        srv = getattr(self, "srv", None)
        if srv is not None:
            srv.close()
        if self.key_file is not None:
            try:
                self.key_file.unlink()
            except OSError:
                pass
            self.key_file = None
        if self.fsock is not None:
            self.fsock.close()
            self.fsock = None
        self._close_taps()
        link = getattr(self, "link", None)
        if link is not None:
            with self.lock:
                link.close()
        if self.sim is not None:
            self.sim.close()
            self.sim = None
