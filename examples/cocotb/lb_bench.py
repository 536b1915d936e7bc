"""A user's own cocotb test of the load balancer (examples/lb) on the engine's RTL.

Copy this file, change the object, the maps and the frames. Run it with

    .venv/bin/python examples/cocotb/test_lb.py         # cocotb's runner
    .venv/bin/python -m pytest examples/cocotb           # the same under pytest

(bpfpga.sim.bench.run: the engine's default Verilator model, built once and cached.)
"""
from pathlib import Path

import cocotb
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from bpfpga.isa import XDP_PASS, XDP_TX
from bpfpga.sim.bench import Bench

LB = Path(__file__).resolve().parents[1] / "lb" / "lb.o"
VIP, BACKEND, CLIENT = "10.100.0.1", "10.200.0.7", "192.0.2.1"
GW_MAC = "02:00:00:00:00:fe"
LB_RX, LB_TX_IPIP, LB_PASS = 0, 1, 4          # lb_stats indexes (the enum in lb.c)

# maps.json's form, keys and values in the object's BTF types: one backend (7), and VIP 0's
# Maglev ring (257 slots) all pointing at it
MAPS = {
    "lb_config": [{"key": 0, "value": {"gw_mac": [2, 0, 0, 0, 0, 0xfe],
                                       "src_v4": "10.0.0.100", "src_v6": "fd00::100"}}],
    "backends": [{"key": 7, "value": {"addr": [BACKEND, 0, 0, 0], "flags": 0}}],
    "ch_rings": [{"key": i, "value": 7} for i in range(257)],
}
VIP_KEY = {"addr": [VIP, 0, 0, 0], "port": 80, "proto": 6, "family": 4}
# a small connection table (as --map-size conn_table=64): less map memory to clear per load
SIZES = {"conn_table": 64}


def syn(dport=80, dst=VIP):
    return (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") /
            IP(src=CLIENT, dst=dst) / TCP(sport=40000, dport=dport, flags="S"))


def packets(per_cpu):
    """lb_stats values are per CPU: the packets of every core."""
    return sum(v["packets"] for v in per_cpu)


@cocotb.test()
async def syn_to_the_vip_goes_to_its_backend(dut):
    bench = await Bench.start(dut)
    await bench.load(LB, maps=MAPS, map_sizes=SIZES)
    await bench.update("vip_map", VIP_KEY, {"flags": 0, "vip_num": 0})

    res = await bench.send(syn())                       # through the inject ring
    assert res.verdict == XDP_TX, res.verdict_name
    out = Ether(res.frame)
    assert out.dst == GW_MAC
    assert out[IP].proto == 4 and out[IP].dst == BACKEND and out[IP].src == "10.0.0.100"
    inner = IP(bytes(out[IP].payload))
    assert inner.dst == VIP and inner[TCP].flags == "S"
    dut._log.info("SYN: %s in %d cycles, %d instructions", res.verdict_name, res.cycles,
                  res.insns)

    # the connection is in the table, on backend 7; the counters moved
    conn = await bench.lookup("conn_table", {"src": [CLIENT, 0, 0, 0], "dst": [VIP, 0, 0, 0],
                                             "sport": 40000, "dport": 80, "proto": 6,
                                             "family": 4, "pad": 0}, typed=True)
    assert conn is not None and conn["backend"] == 7
    assert packets(await bench.lookup("lb_stats", LB_TX_IPIP, typed=True)) == 1
    stats = await bench.counters()
    assert stats["verdicts"]["XDP_TX"] == 1 and stats["rx"]["inject"] == 1


@cocotb.test()
async def other_port_passes_on_the_wire(dut):
    """A frame on port 0's rx stream, not for a VIP port: XDP_PASS, counted. (Each test
    starts from reset: this one needs only the VIP.)"""
    bench = await Bench.start(dut)
    await bench.load(LB, maps={"vip_map": [{"key": VIP_KEY, "value": {"flags": 0,
                                                                      "vip_num": 0}}]},
                     map_sizes=SIZES)
    res = await bench.send(syn(dport=443), port=0)
    assert res.verdict == XDP_PASS and res.in_port == 0, res.verdict_name
    assert res.frame == bytes(syn(dport=443))
    assert packets(await bench.lookup("lb_stats", LB_PASS, typed=True)) == 1
    assert (await bench.counters())["rx"]["port0"] == 1
