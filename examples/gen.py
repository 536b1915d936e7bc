#!/usr/bin/env python3
"""Traffic and map contents for the examples.

    python gen.py [NAME ...]     (default: every example)

writes NAME/traffic.pcap (Ethernet link type, fixed timestamps) and, where the
program needs map contents first, NAME/maps.json: {map name: [{"key": hex,
"value": hex}, ...]} with keys and values packed here with struct exactly as
the C structs in NAME/NAME.c lay them out (little-endian host fields, network
order where the C field is __be*). Per-CPU map values are given once and
replicated to every CPU by the loader.

Everything comes from random.Random(SEED + example): the same command writes
the same bytes. The kernel's BPF_PROG_TEST_RUN refuses frames shorter than an
Ethernet header (14 bytes), so traffic.pcap runts are 14 bytes and longer;
runts.pcap (frames of 1..13 bytes) is for the targets that can take them.
"""
import hashlib
import ipaddress
import json
import os
import random
import struct
import sys

from scapy.config import conf
conf.verb = 0
from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether,  # noqa: E402
                       ICMPv6EchoRequest, ICMPv6ND_NS, IPOption_Router_Alert,
                       IPOption_RR, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, LLC, Raw, wrpcap)

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0x6270667061   # "bpfpa"
T0 = 1_700_000_000

OUR_MAC = "02:00:00:00:00:01"      # the port the XDP program runs on
PEER_MACS = ["02:00:00:00:01:%02x" % i for i in range(1, 9)]
PORTS = [7, 22, 23, 53, 80, 123, 443, 853, 3306, 6379, 8080]


# ---------------------------------------------------------------- helpers
def hx(b):
    return b.hex()


def ip4(s):
    return ipaddress.IPv4Address(s).packed


def ip6(s):
    return ipaddress.IPv6Address(s).packed


def payload(rng, lo=0, hi=200):
    n = rng.randint(lo, hi)
    return Raw(bytes(rng.getrandbits(8) for _ in range(n))) if n else Raw(b"")


def eth(rng, dst=OUR_MAC):
    return Ether(src=rng.choice(PEER_MACS), dst=dst)


def finish(frames):
    """scapy packets or raw bytes -> Ether packets with fixed timestamps"""
    out = []
    for i, f in enumerate(frames):
        raw = bytes(f)
        assert len(raw) >= 14, "frames under 14 bytes belong in runts.pcap"
        p = Ether(raw)
        p.time = T0 + i / 1000
        out.append(p)
    return out


def write(name, frames, maps=None):
    d = os.path.join(HERE, name)
    pkts = finish(frames)
    wrpcap(os.path.join(d, "traffic.pcap"), pkts, linktype=1)
    if maps is not None:
        with open(os.path.join(d, "maps.json"), "w") as f:
            json.dump(maps, f, indent=1, sort_keys=True)
            f.write("\n")
    print(f"{name}: {len(pkts)} packets" + (f", {sum(len(v) for v in maps.values())} map entries"
                                           if maps else ""))


def write_runts():
    """frames of 1..13 bytes: a plain pcap writer, as scapy will not dissect them"""
    rng = random.Random(SEED)
    with open(os.path.join(HERE, "runts.pcap"), "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, n in enumerate(list(range(1, 14)) * 2):
            data = bytes(rng.getrandbits(8) for _ in range(n))
            f.write(struct.pack("<IIII", T0, i, n, n) + data)
    print("runts.pcap: 26 packets")


# ------------------------------------------------------- the common mix
class Addrs:
    """where base-mix packets come from and go to"""

    def __init__(self, src4, dst4, src6, dst6):
        self.src4, self.dst4, self.src6, self.dst6 = src4, dst4, src6, dst6


DEFAULT_ADDRS = Addrs(
    src4=["198.51.100.%d" % i for i in range(1, 40)],
    dst4=["192.0.2.%d" % i for i in range(1, 20)],
    src6=["2001:db8:1::%x" % i for i in range(1, 40)],
    dst6=["2001:db8:2::%x" % i for i in range(1, 20)],
)


def l4(rng, proto, dport=None, sport=None):
    sport = sport if sport is not None else rng.randint(1024, 65535)
    dport = dport if dport is not None else (rng.choice(PORTS) if rng.random() < 0.7
                                             else rng.randint(1, 65535))
    if proto == "tcp":
        return TCP(sport=sport, dport=dport, flags=rng.choice(["S", "A", "PA", "FA", "R", "SA"]),
                   seq=rng.getrandbits(32), ack=rng.getrandbits(32), window=rng.randint(1, 65535))
    return UDP(sport=sport, dport=dport)


def v4(rng, a, proto, **kw):
    ip = IP(src=rng.choice(a.src4), dst=rng.choice(a.dst4), ttl=rng.randint(2, 64),
            id=rng.getrandbits(16), **kw)
    if proto == "icmp":
        return ip / ICMP(type=8, id=rng.getrandbits(16), seq=rng.getrandbits(8))
    return ip / l4(rng, proto)


def v6(rng, a, proto, ext=None):
    ip = IPv6(src=rng.choice(a.src6), dst=rng.choice(a.dst6), hlim=rng.randint(2, 64))
    if ext is not None:
        ip = ip / ext
    if proto == "icmp":
        return ip / ICMPv6EchoRequest(id=rng.getrandbits(16), seq=rng.getrandbits(8))
    return ip / l4(rng, proto)


def frag4(rng, a):
    """one fragment of a UDP datagram: first (with the UDP header), middle or last"""
    kind = rng.choice(["first", "middle", "last"])
    ip = IP(src=rng.choice(a.src4), dst=rng.choice(a.dst4), id=rng.getrandbits(16), proto=17)
    if kind == "first":
        return IP(src=ip.src, dst=ip.dst, id=ip.id, flags="MF", frag=0) / l4(rng, "udp") / \
            payload(rng, 16, 120)
    off = rng.randint(1, 180)
    return IP(src=ip.src, dst=ip.dst, id=ip.id, proto=17, flags="MF" if kind == "middle" else 0,
              frag=off) / payload(rng, 8, 120)


def frag6(rng, a):
    first = rng.random() < 0.5
    ip = IPv6(src=rng.choice(a.src6), dst=rng.choice(a.dst6))
    if first:
        return ip / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=rng.getrandbits(32)) / \
            l4(rng, "udp") / payload(rng, 16, 120)
    return ip / IPv6ExtHdrFragment(nh=17, offset=rng.randint(1, 180), m=rng.randint(0, 1),
                                   id=rng.getrandbits(32)) / payload(rng, 8, 120)


def ip_pkt(rng, a):
    """one IP packet of a random kind (no Ethernet)"""
    k = rng.choices(
        ["tcp4", "udp4", "icmp4", "tcp6", "udp6", "icmp6", "opts4", "frag4", "frag6",
         "ext6", "other4", "other6", "nd6"],
        weights=[20, 14, 5, 12, 9, 4, 5, 5, 4, 5, 3, 2, 2])[0]
    if k in ("tcp4", "udp4", "icmp4"):
        return v4(rng, a, k[:-1]) / payload(rng)
    if k in ("tcp6", "udp6", "icmp6"):
        return v6(rng, a, k[:-1]) / payload(rng)
    if k == "opts4":
        opts = rng.choice([[IPOption_Router_Alert()], [IPOption_RR(length=rng.choice([7, 11, 19, 39]))]])
        return v4(rng, a, rng.choice(["tcp", "udp", "icmp"]), options=opts) / payload(rng)
    if k == "frag4":
        return frag4(rng, a)
    if k == "frag6":
        return frag6(rng, a)
    if k == "ext6":
        ext = rng.choice([IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(),
                          IPv6ExtHdrRouting(addresses=[rng.choice(a.dst6)]),
                          IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()])
        return v6(rng, a, rng.choice(["tcp", "udp", "icmp"]), ext=ext) / payload(rng)
    if k == "other4":
        return IP(src=rng.choice(a.src4), dst=rng.choice(a.dst4),
                  proto=rng.choice([2, 47, 50, 89, 103, 112, 132])) / payload(rng, 8, 100)
    if k == "other6":
        return IPv6(src=rng.choice(a.src6), dst=rng.choice(a.dst6),
                    nh=rng.choice([59, 47, 132, 89])) / payload(rng, 0, 100)
    # neighbour solicitation to a solicited-node multicast address
    tgt = rng.choice(a.dst6)
    return IPv6(src=rng.choice(a.src6), dst="ff02::1:ff00:%x" % rng.getrandbits(8), hlim=255) / \
        ICMPv6ND_NS(tgt=tgt)


def mcast_mac(p):
    if p.haslayer(IPv6) and p[IPv6].dst.startswith("ff02"):
        return "33:33:ff:00:00:%02x" % (ipaddress.IPv6Address(p[IPv6].dst).packed[-1])
    return None


def malformed(rng, a):
    """bad IP headers, as raw frames"""
    p = eth(rng) / v4(rng, a, rng.choice(["tcp", "udp"])) / payload(rng, 0, 60)
    raw = bytearray(bytes(p))
    kind = rng.choice(["ihl", "version4", "totlen", "version6", "plen6"])
    if kind == "ihl":
        raw[14] = 0x40 | rng.randint(0, 4)
    elif kind == "version4":
        raw[14] = (rng.choice([0, 5, 6, 15]) << 4) | 5
    elif kind == "totlen":
        struct.pack_into("!H", raw, 16, len(raw) - 14 + rng.randint(1, 400))
    else:
        q = bytearray(bytes(eth(rng) / v6(rng, a, rng.choice(["tcp", "udp"])) / payload(rng, 0, 60)))
        if kind == "version6":
            q[14] = (4 << 4) | (q[14] & 15)
        else:
            struct.pack_into("!H", q, 18, len(q) - 54 + rng.randint(1, 400))
        return bytes(q)
    return bytes(raw)


def runt(rng, frame):
    """cut a frame inside its headers (never under 14 bytes)"""
    raw = bytes(frame)
    if len(raw) <= 15:
        return raw
    cut = rng.choice([14, 15, 16, 17, 18, 20, 22, 30, 33, 34, 36, 40, 42, 44, 50, 53, 54,
                      56, 60, 62, 66, 70, 74])
    return raw[:max(14, min(cut, len(raw) - 1))]


def base_frame(rng, a=DEFAULT_ADDRS):
    """one frame of the common mix"""
    k = rng.choices(["ip", "vlan", "qinq", "qq8100", "tags3", "arp", "nonip", "malformed",
                     "runt", "big", "bcast"],
                    weights=[52, 9, 4, 2, 1, 5, 4, 4, 13, 3, 2])[0]
    if k == "ip":
        p = ip_pkt(rng, a)
        return eth(rng, mcast_mac(p) or OUR_MAC) / p
    if k == "vlan":
        return eth(rng) / Dot1Q(vlan=rng.randint(1, 4094), prio=rng.randint(0, 7)) / ip_pkt(rng, a)
    if k == "qinq":
        return eth(rng) / Dot1AD(vlan=rng.randint(1, 4094)) / Dot1Q(vlan=rng.randint(1, 4094)) / \
            ip_pkt(rng, a)
    if k == "qq8100":
        return eth(rng) / Dot1Q(vlan=rng.randint(1, 4094)) / Dot1Q(vlan=rng.randint(1, 4094)) / \
            ip_pkt(rng, a)
    if k == "tags3":
        return eth(rng) / Dot1AD(vlan=10) / Dot1Q(vlan=20) / Dot1Q(vlan=30) / ip_pkt(rng, a)
    if k == "arp":
        if rng.random() < 0.6:
            return Ether(src=rng.choice(PEER_MACS), dst="ff:ff:ff:ff:ff:ff") / \
                ARP(op=1, psrc=rng.choice(a.src4), pdst=rng.choice(a.dst4))
        return eth(rng) / ARP(op=2, hwsrc=rng.choice(PEER_MACS), psrc=rng.choice(a.src4),
                              hwdst=OUR_MAC, pdst=rng.choice(a.dst4))
    if k == "nonip":
        c = rng.choice(["lldp", "unknown", "llc", "ipx"])
        if c == "lldp":
            return Ether(src=rng.choice(PEER_MACS), dst="01:80:c2:00:00:0e", type=0x88cc) / \
                payload(rng, 20, 60)
        if c == "unknown":
            return eth(rng) / Raw(struct.pack("!H", 0x9000) + bytes(rng.getrandbits(8) for _ in range(46)))
        if c == "llc":
            return Ether(src=rng.choice(PEER_MACS), dst="01:80:c2:00:00:00") / \
                LLC(dsap=0x42, ssap=0x42, ctrl=3) / payload(rng, 30, 40)
        return eth(rng) / Raw(struct.pack("!H", 0x8137) + bytes(50))
    if k == "malformed":
        return malformed(rng, a)
    if k == "runt":
        return runt(rng, base_frame(rng, a))
    if k == "big":
        p = rng.choice([v4(rng, a, "tcp"), v4(rng, a, "udp"), v6(rng, a, "tcp"), v6(rng, a, "udp")])
        return eth(rng) / p / payload(rng, 900, 1400)
    # broadcast / multicast IP
    return Ether(src=rng.choice(PEER_MACS), dst="ff:ff:ff:ff:ff:ff") / \
        IP(src=rng.choice(a.src4), dst="255.255.255.255") / UDP(sport=68, dport=67) / payload(rng, 20, 60)


def base_mix(rng, n, a=DEFAULT_ADDRS):
    return [base_frame(rng, a) for _ in range(n)]


# ------------------------------------------------------------- examples
def gen_simple(name, n=1200):
    rng = random.Random(f"{SEED}-{name}")
    write(name, base_mix(rng, n))


# firewall -----------------------------------------------------------
FW_STATS = 9


def fw_flow_key(family, proto, saddr, daddr, sport, dport):
    pack = ip4 if family == 4 else ip6
    s, d = pack(saddr), pack(daddr)
    s, d = s + bytes(16 - len(s)), d + bytes(16 - len(d))
    return struct.pack("<BB2s2sH16s16s", family, proto, struct.pack("!H", sport),
                       struct.pack("!H", dport), 0, s, d)


def gen_firewall():
    rng = random.Random(f"{SEED}-firewall")
    v4_rules = [("203.0.113.0", 24), ("198.18.0.0", 15), ("192.0.2.66", 32), ("10.66.0.0", 16),
                ("198.51.100.128", 26)]
    v6_rules = [("2001:db8:bad::", 48), ("2001:db8:1::66", 128), ("2001:db8:2:f000::", 52)]
    maps = {"blocked_v4": [], "blocked_v6": [], "blocked_flows": []}
    rid = 1
    for addr, plen in v4_rules:
        maps["blocked_v4"].append({"key": hx(struct.pack("<I4s", plen, ip4(addr))),
                                   "value": hx(struct.pack("<I", rid))})
        rid += 1
    for addr, plen in v6_rules:
        maps["blocked_v6"].append({"key": hx(struct.pack("<I16s", plen, ip6(addr))),
                                   "value": hx(struct.pack("<I", rid))})
        rid += 1
    # exact flows (they also appear in the traffic) and service rules (zero source)
    flows4 = [(6, "198.51.100.7", "192.0.2.10", 40000 + i, 443) for i in range(6)] + \
             [(17, "198.51.100.9", "192.0.2.11", 5353, 53)]
    flows6 = [(6, "2001:db8:1::7", "2001:db8:2::10", 41000 + i, 80) for i in range(6)] + \
             [(17, "2001:db8:1::9", "2001:db8:2::11", 5000, 123)]
    services4 = [(6, "192.0.2.10", 23), (17, "192.0.2.12", 161), (6, "192.0.2.13", 3306)]
    services6 = [(6, "2001:db8:2::10", 23), (17, "2001:db8:2::12", 161)]
    for proto, s, d, sp, dp in flows4:
        maps["blocked_flows"].append({"key": hx(fw_flow_key(4, proto, s, d, sp, dp)), "value": hx(bytes(16))})
    for proto, s, d, sp, dp in flows6:
        maps["blocked_flows"].append({"key": hx(fw_flow_key(6, proto, s, d, sp, dp)), "value": hx(bytes(16))})
    for proto, d, dp in services4:
        maps["blocked_flows"].append({"key": hx(fw_flow_key(4, proto, "0.0.0.0", d, 0, dp)), "value": hx(bytes(16))})
    for proto, d, dp in services6:
        maps["blocked_flows"].append({"key": hx(fw_flow_key(6, proto, "::", d, 0, dp)), "value": hx(bytes(16))})

    # sources and destinations: mostly clean, some inside blocked prefixes
    a = Addrs(
        src4=DEFAULT_ADDRS.src4 + ["203.0.113.%d" % i for i in (1, 77, 254)] +
        ["198.19.4.5", "198.18.0.1", "10.66.3.4", "198.51.100.130", "198.51.100.191"],
        dst4=DEFAULT_ADDRS.dst4 + ["192.0.2.66", "10.66.0.1", "192.0.2.10", "192.0.2.12", "192.0.2.13"],
        src6=DEFAULT_ADDRS.src6 + ["2001:db8:bad::1", "2001:db8:bad:ffff::2", "2001:db8:1::66"],
        dst6=DEFAULT_ADDRS.dst6 + ["2001:db8:2:f000::1", "2001:db8:2:ffff::9", "2001:db8:2::10",
                                   "2001:db8:2::12", "2001:db8:2:efff::1"],
    )
    frames = base_mix(rng, 900, a)
    for _ in range(150):   # blocked flows, blocked services and near misses
        k = rng.randrange(6)
        if k == 0:
            proto, s, d, sp, dp = rng.choice(flows4)
            frames.append(eth(rng) / IP(src=s, dst=d) /
                          (TCP(sport=sp, dport=dp, flags="S") if proto == 6 else UDP(sport=sp, dport=dp)) /
                          payload(rng, 0, 80))
        elif k == 1:
            proto, s, d, sp, dp = rng.choice(flows6)
            frames.append(eth(rng) / IPv6(src=s, dst=d) /
                          (TCP(sport=sp, dport=dp, flags="A") if proto == 6 else UDP(sport=sp, dport=dp)) /
                          payload(rng, 0, 80))
        elif k == 2:
            proto, d, dp = rng.choice(services4)
            frames.append(eth(rng) / IP(src=rng.choice(DEFAULT_ADDRS.src4), dst=d) /
                          (TCP(sport=rng.randint(1024, 65535), dport=dp) if proto == 6
                           else UDP(sport=rng.randint(1024, 65535), dport=dp)) / payload(rng, 0, 80))
        elif k == 3:
            proto, d, dp = rng.choice(services6)
            frames.append(eth(rng) / Dot1Q(vlan=100) / IPv6(src=rng.choice(DEFAULT_ADDRS.src6), dst=d) /
                          (TCP(sport=rng.randint(1024, 65535), dport=dp) if proto == 6
                           else UDP(sport=rng.randint(1024, 65535), dport=dp)) / payload(rng, 0, 80))
        elif k == 4:   # near miss: right flow, wrong source port
            proto, s, d, sp, dp = rng.choice(flows4)
            frames.append(eth(rng) / IP(src=s, dst=d) / TCP(sport=sp + 100, dport=dp) / payload(rng, 0, 40))
        else:          # blocked source prefix, in a VLAN, in QinQ, fragmented
            s = rng.choice(["203.0.113.9", "198.19.200.1", "10.66.255.255"])
            inner = IP(src=s, dst=rng.choice(DEFAULT_ADDRS.dst4), flags="MF", frag=rng.choice([0, 3])) / \
                UDP(sport=1, dport=2) / payload(rng, 0, 40)
            frames.append(eth(rng) / Dot1AD(vlan=5) / Dot1Q(vlan=6) / inner)
    rng.shuffle(frames)
    write("firewall", frames, maps)


# load balancer ----------------------------------------------------------
LB_MAX_VIPS, LB_RING, LB_MAX_BACKENDS = 8, 257, 64
F_LRU_BYPASS, F_HASH_NO_SRC_PORT, BACKEND_F_IPV6, BACKEND_F_L2 = 1, 2, 1, 2
M32 = 0xffffffff


def lb_mix32(h, w):
    h = ((h ^ w) * 0x9e3779b1) & M32
    return h ^ (h >> 15)


def lb_flow_key(family, proto, src, dst, sport, dport):
    pack = ip4 if family == 4 else ip6
    s, d = pack(src), pack(dst)
    s, d = s + bytes(16 - len(s)), d + bytes(16 - len(d))
    return struct.pack("<16s16s2s2sBBH", s, d, struct.pack("!H", sport), struct.pack("!H", dport),
                       proto, family, 0)


def lb_flow_hash(key, no_sport):
    """flow_hash() of lb.c, word for word"""
    w = struct.unpack("<8IHHBBH", key)
    sport, dport, proto, family = w[8], w[9], w[10], w[11]
    h = 0x2545f491
    for x in w[:8]:
        h = lb_mix32(h, x)
    h = lb_mix32(h, ((dport << 16) | (0 if no_sport else sport)) & M32)
    h = lb_mix32(h, proto | (family << 8))
    h ^= h >> 13
    h = (h * 0x85ebca6b) & M32
    return h ^ (h >> 16)


def maglev(vip_name, backend_ids, m=LB_RING):
    """Maglev table population: each backend walks its own permutation of the slots"""
    perms = []
    for b in backend_ids:
        d = hashlib.sha256(f"{vip_name}/{b}".encode()).digest()
        offset = int.from_bytes(d[:8], "little") % m
        skip = int.from_bytes(d[8:16], "little") % (m - 1) + 1
        perms.append((offset, skip))
    table = [None] * m
    nxt = [0] * len(backend_ids)
    filled = 0
    while True:
        for i, b in enumerate(backend_ids):
            off, skip = perms[i]
            c = (off + nxt[i] * skip) % m
            while table[c] is not None:
                nxt[i] += 1
                c = (off + nxt[i] * skip) % m
            table[c] = b
            nxt[i] += 1
            filled += 1
            if filled == m:
                return table


def gen_lb():
    rng = random.Random(f"{SEED}-lb")
    backends = {}
    for i in range(1, 9):
        backends[i] = (4, "10.200.0.%d" % i)
    for i in range(9, 17):
        backends[i] = (6, "2001:db8:200::%x" % (i - 8))
    backends[20] = (4, "10.200.1.20")
    # (vip_num, family, addr, port, proto, flags, backends)
    vips = [
        (0, 4, "10.100.0.1", 80, 6, 0, [1, 2, 3, 4]),
        (1, 4, "10.100.0.1", 53, 17, F_HASH_NO_SRC_PORT, [5, 6, 7]),
        (2, 4, "10.100.0.2", 0, 6, F_LRU_BYPASS, [9, 10]),            # any port, IPv4 in IPv6
        (3, 6, "2001:db8:100::1", 443, 6, 0, [11, 12, 13, 14]),
        (4, 6, "2001:db8:100::1", 443, 17, F_HASH_NO_SRC_PORT, [15, 16]),
        (5, 4, "10.100.0.3", 8080, 6, 0, []),                         # empty ring: no backend
        (6, 6, "2001:db8:100::2", 80, 6, 0, [20]),                    # IPv6 VIP, IPv4 backend
        (9, 4, "10.100.0.4", 9999, 17, 0, []),                        # vip_num out of range
    ]
    maps = {"vip_map": [], "ch_rings": [], "backends": [], "lb_config": [], "conn_table": []}
    rings = {}
    for num, fam, addr, port, proto, flags, bes in vips:
        a = (ip4 if fam == 4 else ip6)(addr)
        a += bytes(16 - len(a))
        maps["vip_map"].append({"key": hx(struct.pack("<16s2sBB", a, struct.pack("!H", port), proto, fam)),
                                "value": hx(struct.pack("<II", flags, num))})
        if bes:
            rings[num] = maglev(f"{addr}:{port}/{proto}", bes)
            for slot, b in enumerate(rings[num]):
                maps["ch_rings"].append({"key": hx(struct.pack("<I", num * LB_RING + slot)),
                                         "value": hx(struct.pack("<I", b))})
    for idx, (fam, addr) in sorted(backends.items()):
        a = (ip4 if fam == 4 else ip6)(addr)
        maps["backends"].append({"key": hx(struct.pack("<I", idx)),
                                 "value": hx(struct.pack("<16sI", a + bytes(16 - len(a)),
                                                         BACKEND_F_IPV6 if fam == 6 else 0))})
    maps["lb_config"].append({"key": hx(struct.pack("<I", 0)),
                              "value": hx(struct.pack("<6sH4s16s", bytes.fromhex("0200000000fe"), 0,
                                                      ip4("10.0.0.100"), ip6("fd00::100")))})

    frames = []

    def client4():
        return "198.51.100.%d" % rng.randint(1, 254) if rng.random() < 0.7 else \
            "172.16.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254))

    def client6():
        return "2001:db8:1::%x" % rng.getrandbits(16)

    def flows(vnum, count, lo, hi, big=0.03):
        _, fam, addr, port, proto, flags, _ = vips[vnum]
        for _ in range(count):
            src = client4() if fam == 4 else client6()
            sport = rng.randint(1024, 65535)
            dport = port or rng.choice([22, 80, 443, 8443, rng.randint(1, 65535)])
            for j in range(rng.randint(lo, hi)):
                ip = IP(src=src, dst=addr, tos=rng.choice([0, 0, 0x10, 0xb8]), id=rng.getrandbits(16)) \
                    if fam == 4 else IPv6(src=src, dst=addr, tc=rng.choice([0, 0, 0x28]), fl=rng.getrandbits(20))
                l = TCP(sport=sport, dport=dport, flags="S" if j == 0 else rng.choice(["A", "PA"]),
                        seq=rng.getrandbits(32)) if proto == 6 else UDP(sport=sport, dport=dport)
                pl = payload(rng, 900, 1400) if rng.random() < big else payload(rng, 0, 220)
                frames.append(eth(rng) / ip / l / pl)

    flows(0, 120, 1, 6)
    flows(1, 80, 1, 4)
    flows(2, 40, 1, 3)
    flows(3, 100, 1, 5)
    flows(4, 60, 1, 3)
    flows(5, 5, 1, 2)
    flows(6, 5, 1, 2)
    flows(7, 4, 1, 1)

    # established flows that the connection table pins to a backend other than the ring's choice
    for vnum in (0, 1, 3):
        _, fam, addr, port, proto, flags, bes = vips[vnum]
        for _ in range(3):
            src = client4() if fam == 4 else client6()
            sport = rng.randint(1024, 65535)
            key = lb_flow_key(fam, proto, src, addr, sport, port)
            ring_choice = rings[vnum][lb_flow_hash(key, flags & F_HASH_NO_SRC_PORT) % LB_RING]
            pinned = next(b for b in bes if b != ring_choice)
            maps["conn_table"].append({"key": hx(key), "value": hx(struct.pack("<IIQ", pinned, 0, 0))})
            for _ in range(3):
                ip = IP(src=src, dst=addr) if fam == 4 else IPv6(src=src, dst=addr)
                l = TCP(sport=sport, dport=port, flags="PA") if proto == 6 else UDP(sport=sport, dport=port)
                frames.append(eth(rng) / ip / l / payload(rng, 0, 120))
    # a pinned flow whose backend slot is empty
    key = lb_flow_key(4, 6, "198.51.100.250", "10.100.0.1", 4242, 80)
    maps["conn_table"].append({"key": hx(key), "value": hx(struct.pack("<IIQ", 60, 0, 0))})
    frames.append(eth(rng) / IP(src="198.51.100.250", dst="10.100.0.1") / TCP(sport=4242, dport=80, flags="A"))

    for _ in range(20):   # a VIP address, but not a VIP port or protocol
        frames.append(eth(rng) / IP(src=client4(), dst="10.100.0.1") /
                      rng.choice([TCP(sport=rng.randint(1024, 65535), dport=22),
                                  UDP(sport=rng.randint(1024, 65535), dport=80)]) / payload(rng, 0, 60))
        frames.append(eth(rng) / IPv6(src=client6(), dst="2001:db8:100::1") /
                      TCP(sport=rng.randint(1024, 65535), dport=80) / payload(rng, 0, 60))
    for _ in range(10):   # ICMP to a VIP goes to the stack
        frames.append(eth(rng) / IP(src=client4(), dst="10.100.0.1") / ICMP() / payload(rng, 8, 56))
        frames.append(eth(rng) / IPv6(src=client6(), dst="2001:db8:100::1") / ICMPv6EchoRequest() /
                      payload(rng, 8, 56))
    for _ in range(15):   # IP options travel inside the tunnel
        frames.append(eth(rng) / IP(src=client4(), dst="10.100.0.1", options=[IPOption_Router_Alert()]) /
                      TCP(sport=rng.randint(1024, 65535), dport=80, flags="A") / payload(rng, 0, 100))
    for _ in range(10):   # fragments to VIPs are dropped
        frames.append(eth(rng) / IP(src=client4(), dst="10.100.0.1", flags="MF", id=rng.getrandbits(16)) /
                      TCP(sport=rng.randint(1024, 65535), dport=80) / payload(rng, 40, 100))
        frames.append(eth(rng) / IPv6(src=client6(), dst="2001:db8:100::1") /
                      IPv6ExtHdrFragment(nh=6, offset=rng.randint(0, 20), m=1) / payload(rng, 40, 100))
    vip_addrs = Addrs(src4=["198.51.100.%d" % i for i in range(1, 9)], dst4=["10.100.0.1", "10.100.0.2"],
                      src6=["2001:db8:1::%x" % i for i in range(1, 9)], dst6=["2001:db8:100::1"])
    for _ in range(30):   # malformed and truncated, aimed at VIPs
        if rng.random() < 0.5:
            frames.append(malformed(rng, vip_addrs))
        else:
            p = eth(rng) / rng.choice([IP(src="198.51.100.3", dst="10.100.0.1") / TCP(dport=80),
                                       IPv6(src="2001:db8:1::3", dst="2001:db8:100::1") / TCP(dport=443),
                                       IP(src="198.51.100.3", dst="10.100.0.1") / UDP(dport=53)])
            frames.append(runt(rng, p))
    frames += base_mix(rng, 400)
    rng.shuffle(frames)
    # direct routing (BACKEND_F_L2): a VIP whose backends share the balancer's L2 segment; its
    # own generator and appended last, so the frames and maps above stay as they were
    rl2 = random.Random(f"{SEED}-lb-l2")
    l2_backends = {21: ("10.200.2.21", "02:00:00:c8:02:15"), 22: ("10.200.2.22", "02:00:00:c8:02:16")}
    for idx, (addr, mac) in sorted(l2_backends.items()):
        maps["backends"].append({"key": hx(struct.pack("<I", idx)),
                                 "value": hx(struct.pack("<4s6s6sI", ip4(addr), bytes.fromhex(mac.replace(":", "")),
                                                         bytes(6), BACKEND_F_L2))})
    maps["vip_map"].append({"key": hx(struct.pack("<16s2sBB", ip4("10.100.0.5") + bytes(12), struct.pack("!H", 8000),
                                                  6, 4)), "value": hx(struct.pack("<II", 0, 7))})
    for slot, b in enumerate(maglev("10.100.0.5:8000/6", sorted(l2_backends))):
        maps["ch_rings"].append({"key": hx(struct.pack("<I", 7 * LB_RING + slot)), "value": hx(struct.pack("<I", b))})
    for _ in range(12):
        src, sport = "198.51.100.%d" % rl2.randint(1, 254), rl2.randint(1024, 65535)
        for j in range(rl2.randint(1, 4)):
            frames.append(eth(rl2) / IP(src=src, dst="10.100.0.5") /
                          TCP(sport=sport, dport=8000, flags="S" if j == 0 else "A") / payload(rl2, 0, 200))
    write("lb", frames, maps)


# tail calls -------------------------------------------------------------
def gen_tailcall():
    rng = random.Random(f"{SEED}-tailcall")
    ACT_PASS, ACT_DROP, ACT_REFLECT = 0, 1, 2
    CLS = dict(OTHER=0, NON_IP=1, MALFORMED=2, FRAGMENT=3, ICMP=4, WEB=5, SSH=6, TELNET=7, DNS=8,
               ECHO=9, TCP_OTHER=10, UDP_OTHER=11)
    policy = {CLS["MALFORMED"]: ACT_DROP, CLS["TELNET"]: ACT_DROP, CLS["FRAGMENT"]: ACT_DROP,
              CLS["ECHO"]: ACT_REFLECT, CLS["DNS"]: ACT_PASS}
    maps = {"class_policy": [{"key": hx(struct.pack("<I", c)), "value": hx(struct.pack("<I", a))}
                             for c, a in sorted(policy.items())]}
    frames = base_mix(rng, 1000)
    a = DEFAULT_ADDRS
    for _ in range(200):
        fam = rng.choice([4, 6])
        ip = IP(src=rng.choice(a.src4), dst=rng.choice(a.dst4)) if fam == 4 else \
            IPv6(src=rng.choice(a.src6), dst=rng.choice(a.dst6))
        k = rng.choice(["echo", "echo", "telnet", "ssh", "web", "dns", "vlan_echo"])
        if k in ("echo", "vlan_echo"):
            l = UDP(sport=rng.randint(1024, 65535), dport=7)
        elif k == "dns":
            l = UDP(sport=rng.randint(1024, 65535), dport=53)
        else:
            l = TCP(sport=rng.randint(1024, 65535), dport={"telnet": 23, "ssh": 22, "web": 443}[k])
        if k == "vlan_echo":
            frames.append(eth(rng) / Dot1Q(vlan=rng.randint(1, 4094)) / ip / l / payload(rng, 0, 100))
        else:
            frames.append(eth(rng) / ip / l / payload(rng, 0, 100))
    rng.shuffle(frames)
    write("tailcall", frames, maps)


def gen_calls():
    rng = random.Random(f"{SEED}-calls")
    frames = base_mix(rng, 1000)
    a = DEFAULT_ADDRS
    for _ in range(150):   # routing protocols (the dropped class) and hot ports
        if rng.random() < 0.5:
            frames.append(eth(rng) / IP(src=rng.choice(a.src4), dst=rng.choice(["224.0.0.5", "224.0.0.18",
                                                                                 "192.0.2.1"]),
                                        proto=rng.choice([2, 89, 103, 112])) / payload(rng, 8, 60))
        else:
            frames.append(eth(rng) / IP(src=rng.choice(a.src4), dst=rng.choice(a.dst4)) /
                          rng.choice([TCP, UDP])(sport=rng.randint(1024, 65535),
                                                 dport=rng.choice([22, 53, 80, 123, 443, 853, 3306, 6379]))
                          / payload(rng, 0, 80))
    rng.shuffle(frames)
    write("calls", frames)


GENERATORS = {
    "pass": lambda: gen_simple("pass"),
    "drop": lambda: gen_simple("drop"),
    "parser": lambda: gen_simple("parser", 1500),
    "macswap": lambda: gen_simple("macswap"),
    "firewall": gen_firewall,
    "lb": gen_lb,
    "tailcall": gen_tailcall,
    "calls": gen_calls,
    "runts": write_runts,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or GENERATORS:
        GENERATORS[name]()
