"""The load balancer of examples/lb on the simulated FPGA, with real TCP connections.

    sudo .venv/bin/python examples/lb/tap_demo.py [--prefix lbdemo] [--net 7] [-n 12] [--json]

Builds this topology out of network namespaces (all of it removed again at the end, also on
failure or Ctrl-C), and only addresses of 10.203.NET.0/24:

    PREFIX-cl  client  10.203.NET.1 -----.
    PREFIX-b1  backend 10.203.NET.11 ----+-- br0 (PREFIX-sw) -- TAP PREFIXt == port 0 of the
    PREFIX-b2  backend 10.203.NET.12 ----'                        engine in `bpfpga sim-board`

The VIP 10.203.NET.100:8000 lives on the backends' loopback (arp_ignore, arp_announce: they
do not answer for it) and the client reaches it through a static neighbour entry naming the
balancer's MAC (02:cb:NET:00:00:10, a MAC of the simulated board's port, not of any
namespace). Every frame from the client to the VIP crosses the bridge into the TAP, the engine
runs lb.o on it (VIP lookup, connection table, Maglev ring, backend) and sends it back out of
port 0 with the chosen backend's MAC (direct routing, BACKEND_F_L2); the backend answers the
client directly (direct server return). Each backend runs `python -m http.server` serving a
page that names it; the client opens N connections and prints which backend answered each,
then the engine's counters and connection table (`bpfpga stats`, `bpfpga map dump`).

Needs root (network namespaces, /dev/net/tun) and iproute2. Exit status 0 when every
connection succeeded and both backends served some.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LB = ROOT / "examples" / "lb"
CLI = [sys.executable, "-m", "bpfpga.host.cli_entry"]
RING = 257                  # lb.c RING_SIZE
BACKEND_F_L2 = 2
PORT = 8000

CLIENT = r"""
import json, socket, sys, time
vip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for i in range(n):
    t0 = time.time()
    try:
        s = socket.create_connection((vip, port), timeout=30)
        sport = s.getsockname()[1]
        s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        out.append({"sport": sport, "status": int(head.split()[1]),
                    "body": body.decode().strip(), "seconds": round(time.time() - t0, 2)})
    except OSError as e:
        out.append({"error": str(e), "seconds": round(time.time() - t0, 2)})
print(json.dumps(out))
"""


class DemoError(Exception):
    pass


def sh(*args, check=True, ns=None, **kw):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode:
        raise DemoError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def preflight() -> str | None:
    """Why the demo cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and a TAP device)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (TUN/TAP support)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"bpfpga-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode:
        return f"cannot create a network namespace ({r.stderr.strip()})"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def mac(net: int, last: int) -> str:
    return f"02:cb:{net:02x}:00:00:{last:02x}"


class Demo:
    def __init__(self, prefix: str, net: int, log=print):
        if not prefix.replace("-", "").isalnum() or len(prefix) > 12:
            raise DemoError(f"--prefix {prefix!r}: letters, digits and '-', at most 12")
        if not 0 <= net <= 255:
            raise DemoError(f"--net {net}: a number 0..255 (the third byte of 10.203.x.0/24)")
        self.p, self.net, self.log = prefix, net, log
        self.ns = {k: f"{prefix}-{k}" for k in ("sw", "cl", "b1", "b2")}
        self.tap = f"{prefix}t"
        self.ip = {"cl": f"10.203.{net}.1", "b1": f"10.203.{net}.11", "b2": f"10.203.{net}.12"}
        self.vip = f"10.203.{net}.100"
        self.lb_mac = mac(net, 0x10)
        self.macs = {"cl": mac(net, 1), "b1": mac(net, 0x11), "b2": mac(net, 0x12)}
        self.tmp = Path(tempfile.mkdtemp(prefix="bpfpga-tap-demo-"))
        self.board = None
        self.servers: list[subprocess.Popen] = []
        self.board_log = ""
        self.env = dict(os.environ)

    # ------------------------------------------------------------------ set-up
    def topology(self) -> None:
        sw = self.ns["sw"]
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)
            sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for k in ("cl", "b1", "b2"):
            ns = self.ns[k]
            sh("ip", "-n", sw, "link", "add", k, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "-n", sw, "link", "set", k, "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "address", self.macs[k], "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip[k]}/24", "dev", "eth0")
        # the client reaches the VIP through the balancer's MAC
        sh("ip", "-n", self.ns["cl"], "neigh", "add", self.vip, "lladdr", self.lb_mac,
           "dev", "eth0", "nud", "permanent")
        # direct routing: the VIP on each backend's loopback, never announced by it
        for k in ("b1", "b2"):
            ns = self.ns[k]
            sh("ip", "-n", ns, "addr", "add", f"{self.vip}/32", "dev", "lo")
            for key, v in (("arp_ignore", 1), ("arp_announce", 2)):
                sh("sysctl", "-qw", f"net.ipv4.conf.all.{key}={v}", ns=ns)
                sh("sysctl", "-qw", f"net.ipv4.conf.eth0.{key}={v}", ns=ns)

    def start_board(self) -> None:
        self.log(f"$ bpfpga sim-board --tap {self.tap}")
        self.board_err = open(self.tmp / "board.err", "w+")
        self.board = subprocess.Popen(CLI + ["sim-board", "--listen", "127.0.0.1:0", "--tap",
                                             self.tap], stdout=subprocess.PIPE,
                                      stderr=self.board_err, text=True, cwd=ROOT)
        line = self.board.stdout.readline()
        if "serving" not in line:
            self.board.wait(timeout=30)
            self.board_err.seek(0)
            raise DemoError(f"sim-board did not start: {self.board_err.read().strip()[-500:]}")
        url = line.split("serving ")[1].split()[0].rstrip(";")
        self.env["BPFPGA_DEVICE"] = url
        # the TAP moves into the switch's namespace; its descriptor keeps working
        sw = self.ns["sw"]
        sh("ip", "link", "set", self.tap, "netns", sw)
        sh("ip", "-n", sw, "link", "set", self.tap, "master", "br0", "up")

    def cli(self, *args) -> str:
        self.log("$ bpfpga " + " ".join(str(a) for a in args))
        r = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True,
                           env=self.env, cwd=ROOT, timeout=300)
        if r.returncode:
            raise DemoError(f"bpfpga {' '.join(map(str, args))}: {r.stderr.strip()}")
        return r.stdout

    def load(self) -> None:
        """lb.o with a Maglev-style ring alternating the two backends, then the VIP and the
        backends with `map update`, as an operator would."""
        rings = [{"key": i.to_bytes(4, "little").hex(),
                  "value": (1 + i % 2).to_bytes(4, "little").hex()} for i in range(RING)]
        (self.tmp / "maps.json").write_text(json.dumps({"ch_rings": rings}))
        self.cli("prog", "load", LB / "lb.o", "--maps", self.tmp / "maps.json")
        vip_key = (bytes(map(int, self.vip.split("."))) + bytes(12) + PORT.to_bytes(2, "big") +
                   bytes([6, 4])).hex()
        self.cli("map", "update", "vip_map", vip_key, "0000000000000000")   # flags 0, vip 0
        for i, k in ((1, "b1"), (2, "b2")):
            val = (bytes(map(int, self.ip[k].split("."))) +
                   bytes.fromhex(self.macs[k].replace(":", "")) + bytes(6) +
                   BACKEND_F_L2.to_bytes(4, "little")).hex()
            self.cli("map", "update", "backends", f"{i:02x}000000", val)

    def start_servers(self) -> None:
        for k in ("b1", "b2"):
            d = self.tmp / k
            d.mkdir()
            (d / "index.html").write_text(f"{k} {self.ip[k]}\n")
            self.servers.append(subprocess.Popen(
                ["ip", "netns", "exec", self.ns[k], sys.executable, "-m", "http.server",
                 str(PORT), "--bind", "0.0.0.0", "--directory", str(d)],
                stdout=subprocess.DEVNULL, stderr=open(self.tmp / f"{k}.log", "w")))
        for k in ("b1", "b2"):
            t0 = time.time()
            probe = ["ip", "netns", "exec", self.ns[k], sys.executable, "-c",
                     f"import socket; socket.create_connection(('127.0.0.1', {PORT}), 1)"]
            while subprocess.run(probe, capture_output=True).returncode:
                if time.time() - t0 > 20:
                    raise DemoError(f"the web server in {self.ns[k]} did not start")
                time.sleep(0.2)

    # ------------------------------------------------------------------ run
    def connect(self, n: int) -> list[dict]:
        self.log(f"$ ip netns exec {self.ns['cl']} python  # {n} HTTP requests to "
                 f"{self.vip}:{PORT}")
        out = sh(sys.executable, "-c", CLIENT, self.vip, PORT, n, ns=self.ns["cl"],
                 timeout=60 + 35 * n)
        return json.loads(out)

    def run(self, n: int) -> dict:
        self.topology()
        self.start_board()
        self.load()
        self.start_servers()
        t0 = time.time()
        conns = self.connect(n)
        seconds = time.time() - t0
        for c in conns:
            self.log(f"  port {c['sport']}: {c['body']} ({c['seconds']} s)" if "sport" in c
                     else f"  failed: {c['error']}")
        stats = json.loads(self.cli("stats", "-j"))
        conn_table = json.loads(self.cli("map", "dump", "conn_table", "-j"))
        lb_stats = json.loads(self.cli("map", "dump", "lb_stats", "-j"))
        served = {k: sum(1 for c in conns if c.get("body", "").startswith(k + " "))
                  for k in ("b1", "b2")}
        self.log(f"served: b1 {served['b1']}, b2 {served['b2']} of {n} in {seconds:.1f} s; "
                 f"engine: rx port0 {stats['rx']['port0']}, verdicts "
                 f"{ {k: v for k, v in stats['verdicts'].items() if v} }, tx port0 "
                 f"{stats['tx']['port0']}; {len(conn_table)} connection(s) in conn_table")
        return {"connections": conns, "served": served, "stats": stats,
                "conn_table": conn_table, "lb_stats": lb_stats, "seconds": seconds,
                "client": self.ip["cl"], "vip": self.vip, "port": PORT}

    # ------------------------------------------------------------------ tear-down
    def close(self) -> None:
        for s in self.servers:
            if s.poll() is None:
                s.terminate()
                try:
                    s.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    s.kill()
                    s.wait()
        if self.board is not None and self.board.poll() is None:
            self.board.send_signal(signal.SIGINT)
            try:
                self.board.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.board.kill()
                self.board.wait()
        if self.board is not None:
            self.board_err.seek(0)
            self.board_log = self.board_err.read()
            self.board_err.close()
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def tap_counts(board_log: str) -> tuple[int, int] | None:
    """(frames in, frames out) of the TAP from sim-board's last words."""
    for line in board_log.splitlines():
        if line.startswith("tap ") and "frame(s) in" in line:
            a = line.split(": ", 1)[1].split()
            return int(a[0]), int(a[3])
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefix", default="lbdemo", help="namespace and TAP name prefix")
    ap.add_argument("--net", type=int, default=7, help="x of 10.203.x.0/24")
    ap.add_argument("-n", "--connections", type=int, default=12)
    ap.add_argument("--json", action="store_true", help="print the results as JSON last")
    a = ap.parse_args(argv)
    why = preflight()
    if why:
        print(f"tap_demo: {why}", file=sys.stderr)
        return 2
    log = (lambda m: print(m, file=sys.stderr)) if a.json else print
    # SIGTERM tears the namespaces down too
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    demo = None
    try:
        demo = Demo(a.prefix, a.net, log)
        res = demo.run(a.connections)
    except DemoError as e:
        print(f"tap_demo: {e}", file=sys.stderr)
        return 1
    finally:
        if demo is not None:
            demo.close()
    res["tap"] = tap_counts(demo.board_log)
    if a.json:
        print(json.dumps(res))
    ok = all("sport" in c and c["status"] == 200 for c in res["connections"]) and \
        all(res["served"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
