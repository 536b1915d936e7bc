"""Per-board helper and map-type sets (issue 7): EngineConfig's ``helpers`` / ``map_types``,
the helper unit built with only those (a helper not built traps), the capability registers
that report them, and the loader's refusal (before anything is written) of an object that
needs more. End to end: the load balancer on an engine built with the Colorlight 5A-75B's
set, in Verilator, against the reference machine."""
import dataclasses
import json
import random

import pytest
from click.testing import CliRunner

from bpfpga import traps
from bpfpga.boards.colorlight_5a_75b import ENGINE as CL_ENGINE
from bpfpga.compiler.elf import load_object
from bpfpga.errors import LoadError
from bpfpga.hdl import control as C
from bpfpga.hdl.config import DEFAULT, HELPERS, MAP_TYPES, SIM, EngineConfig
from bpfpga.hdl.helpers_hw import H_KTIME, H_LOOKUP, H_TAIL_CALL, H_TRACE, H_UPDATE, HelperUnit
from bpfpga.obj import BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_PROG_ARRAY
from conftest import REPO

CL = EngineConfig(cores=1, **dict(CL_ENGINE))
LB = REPO / "examples" / "lb"


def test_config_sets_normalised_hashable_json():
    a = EngineConfig(helpers=[5, 1, 1, 2], map_types={9, 2})
    assert a.helpers == (1, 2, 5) and a.map_types == (2, 9)
    assert a == EngineConfig(helpers=(2, 5, 1), map_types=(9, 2)) and hash(a) == hash(
        EngineConfig(helpers=(2, 5, 1), map_types=(9, 2)))
    for c in (a, CL, SIM, DEFAULT):
        assert EngineConfig(**json.loads(json.dumps(c.as_dict()))) == c
    with pytest.raises(ValueError, match=r"helpers: helper id\(s\) \[69\]"):
        EngineConfig(helpers=(1, 69))
    with pytest.raises(ValueError, match=r"map_types: map type\(s\) \[27\]"):
        EngineConfig(map_types=(2, 27))
    with pytest.raises(ValueError, match="a collection"):
        EngineConfig(helpers=5)
    # the simulated board and the default keep everything
    for c in (SIM, DEFAULT):
        assert c.helper_set() == set(HELPERS) and c.map_type_set() == set(MAP_TYPES)
    # no trace unit: no trace_printk
    assert H_TRACE not in dataclasses.replace(SIM, trace_depth=0).helper_set()
    words = CL.helper_masks()
    assert len(words) == C.HELPER_WORDS
    assert {32 * k + b for k, w in enumerate(words) for b in range(32) if w >> b & 1} == \
        CL.helper_set()
    assert {b for b in range(32) if CL.map_type_mask() >> b & 1} == CL.map_type_set()


def test_colorlight_set_covers_the_load_balancer():
    o = load_object(str(LB / "lb.o"))
    need_h = {h for p in o.programs for h in p.helpers}
    need_t = {md.type for md in o.maps}
    assert need_h <= CL.helper_set() and need_t <= CL.map_type_set()
    assert CL.trace_depth == 0 and H_TRACE not in CL.helper_set()
    assert H_TAIL_CALL not in CL.helper_set()
    assert BPF_MAP_TYPE_LPM_TRIE not in CL.map_type_set()


def _states(cfg):
    from amaranth.hdl import Fragment
    hu = HelperUnit(cfg, 0)
    Fragment.get(hu, None)          # (an FSM state referenced but not built fails here)
    return set(hu.states)


def test_helper_unit_elaborates_only_what_is_configured():
    full = _states(dataclasses.replace(CL, helpers=None, map_types=None, trace_depth=16))
    cl = _states(CL)
    for st in ("LPM_W", "TP0", "TC1", "RM1", "AOM", "DEVL", "INS_ZERO", "AM0", "MM_RD"):
        assert st in full and st not in cl, st
    for st in ("P_ST", "EV_ST", "DEL_ST", "CS0", "AH0", "AT0", "CP_RD"):
        assert st in cl, st
    # any subset builds (no state is referenced without being built)
    rnd = random.Random(7)
    _states(EngineConfig(cores=1, helpers=(H_UPDATE,), map_types=MAP_TYPES))
    for _ in range(4):
        hs = rnd.sample(sorted(HELPERS), rnd.randrange(1, len(HELPERS)))
        ts = rnd.sample(MAP_TYPES, rnd.randrange(1, len(MAP_TYPES)))
        _states(EngineConfig(cores=1, helpers=hs, map_types=ts))
    assert _states(EngineConfig(cores=1, helpers=(H_KTIME,), map_types=())) == {"IDLE", "ACK"}


def _call(cfg, calls):
    """Each (helper id, args) on the unit alone (Amaranth's simulator, no memory traffic
    expected): [(r0, trap)]."""
    from amaranth.sim import Simulator
    dut = HelperUnit(cfg, 0)
    got = []

    async def tb(ctx):
        ctx.set(dut.ktime, 123456789)
        for hid, args in calls:
            ctx.set(dut.helper.req, 1)
            ctx.set(dut.helper.id, hid)
            for i, a in enumerate(args):
                ctx.set(getattr(dut.helper, f"arg{i + 1}"), a)
            cycles = 0
            while not ctx.get(dut.helper.ack):
                assert not ctx.get(dut.bus.valid) and cycles < 50, (hid, cycles)
                await ctx.tick()
                cycles += 1
            got.append((ctx.get(dut.helper.r0), ctx.get(dut.helper.trap)))
            ctx.set(dut.helper.req, 0)
            await ctx.tick().repeat(2)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got


def test_helper_not_built_traps():
    handle = 0  # (a bad handle: never reaches map memory)
    got = _call(CL, [(H_KTIME, ()), (H_TAIL_CALL, (0, handle, 0)), (H_TRACE, (0, 1)),
                     (H_LOOKUP, (handle, 0))])
    assert got[0] == (123456789, 0)
    assert [t for _, t in got[1:3]] == [traps.TRAP_HELPER] * 2
    assert got[3][1] == traps.TRAP_HELPER_FAULT          # built: a bad map handle
    full = _call(dataclasses.replace(CL, helpers=None), [(H_TAIL_CALL, (0, handle, 0))])
    assert full[0][1] == traps.TRAP_HELPER_FAULT


class RegFile:
    """A transport onto a register file answering as an engine built with ``cfg`` (or as a
    version-2 engine, without capability registers); it records every write."""
    url = "fake://engine"

    def __init__(self, cfg, version=C.VERSION):
        self.mem = {C.REGS + C.R_IDENT: C.IDENT, C.REGS + C.R_VERSION: version,
                    C.REGS + C.R_INFO: cfg.cores | cfg.ports << 8 | 10 << 16 | 16 << 24,
                    C.REGS + C.R_MAP_BYTES: cfg.map_bytes,
                    C.REGS + C.R_TRACE_DEPTH: cfg.trace_depth}
        if version >= 3:
            for k, w in enumerate(cfg.helper_masks()):
                self.mem[C.REGS + C.R_HELPERS0 + k] = w
            self.mem[C.REGS + C.R_MAP_TYPES] = cfg.map_type_mask()
        self.writes = []

    def read(self, addr, n, retry=True):
        return [self.mem.get(addr + i, 0) for i in range(n)]

    def write(self, addr, words):
        self.writes.append((addr, list(words)))

    def close(self):
        pass


def test_loader_refuses_before_writing():
    from bpfpga.host.device import Device, install
    dev = Device(transport=RegFile(CL))
    assert dev.helpers == CL.helper_set() and dev.map_types == CL.map_type_set()
    o = load_object(str(REPO / "examples/tailcall/tailcall.o"))
    with pytest.raises(LoadError) as e:
        install(dev, o)
    msg = str(e.value)
    assert "program 'xdp_entry' calls helper bpf_tail_call (12)" in msg, msg
    assert "fake://engine" in msg and "\n" not in msg
    fw = load_object(str(REPO / "examples/firewall/firewall.o"))
    assert {h for p in fw.programs for h in p.helpers} <= CL.helper_set()
    with pytest.raises(LoadError) as e:
        install(dev, fw)
    msg = str(e.value)
    assert "map 'blocked_v4' (used by program 'xdp_firewall') is a lpm_trie map" in msg, msg
    assert "fake://engine" in msg and "hash, array, percpu_array, lru_hash" in msg
    assert dev.t.writes == []
    # the same object on an engine with the type: no refusal from the check
    from bpfpga.host.device import check_capabilities
    check_capabilities(Device(transport=RegFile(SIM)), fw)
    # a version-2 engine has no capability registers: it was built with everything
    old = Device(transport=RegFile(CL, version=2))
    assert old.helpers == set(HELPERS) and old.map_types == set(MAP_TYPES)
    assert BPF_MAP_TYPE_PROG_ARRAY in old.map_types


# ---------------------------------------------------------------------- RTL, end to end
# the simulated board's sizes (the examples' maps fit) with the Colorlight's sets and its
# structural choices (no branch-target port, frames and map descriptors in block RAM, the
# verifier's ctx rules, packet buffer and stack in one RAM), one core
REDUCED = dataclasses.replace(SIM, cores=1, trace_depth=0, helpers=CL.helpers,
                              map_types=CL.map_types, target_port=CL.target_port,
                              frame_bram=CL.frame_bram, desc_bram=CL.desc_bram,
                              strict_ctx=CL.strict_ctx, shared_lane_ram=CL.shared_lane_ram,
                              mul_serial=CL.mul_serial)


@pytest.fixture(scope="module")
def reduced_model(monkeypatch_module):
    from bpfpga.sim import rtl_xdp_build
    monkeypatch_module.setattr(rtl_xdp_build, "config", lambda: REDUCED)
    return rtl_xdp_build.build()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _diff_ref_rtl(*args, min_compared):
    """`bpfpga diff OBJ --targets ref,rtl ARGS -j` on the reduced model: no verdict or map
    divergence over at least ``min_compared`` packets."""
    from bpfpga.host.cli import main
    r = CliRunner().invoke(main, ["diff", *map(str, args), "--targets", "ref,rtl", "-j"])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    out = json.loads(r.output)
    assert out["compared"] >= min_compared
    assert out["divergences"] == [], out["divergences"][:3]
    assert out["map_divergences"] == [], out["map_divergences"][:3]
    assert r.exit_code == 0


def test_reduced_engine_runs_lb_like_ref(reduced_model):
    _diff_ref_rtl(LB / "lb.o", "--pcap", LB / "traffic.pcap", "--maps", LB / "maps.json",
                  "--max-packets", 200, min_compared=190)


def test_reduced_engine_runs_bpf_to_bpf_calls_like_ref(reduced_model):
    # examples/calls: five noinline functions, r6..r9 live across the calls (the frames)
    calls = REPO / "examples" / "calls"
    _diff_ref_rtl(calls / "calls.o", "--pcap", calls / "traffic.pcap", "--max-packets", 60,
                  min_compared=20)


def test_reduced_engine_reports_and_refuses(reduced_model):
    from bpfpga.host.device import Device
    from bpfpga.host.board import RtlTarget
    from bpfpga.sim.rtl_xdp_build import Simulation
    sim = Simulation()
    try:
        dev = Device(sim.url)
        assert dev.version == C.VERSION
        assert dev.helpers == REDUCED.helper_set() and dev.map_types == REDUCED.map_type_set()
        words = dev.read(C.REGS + C.R_HELPERS0, C.HELPER_WORDS + 1)
        assert words == REDUCED.helper_masks() + [REDUCED.map_type_mask()]
        dev.close()
    finally:
        sim.close()
    # the rtl target's check is the loader's (its own simulation: one client each)
    fw = load_object(str(REPO / "examples/firewall/firewall.o"))
    with pytest.raises(LoadError, match="map 'blocked_v4'.* lpm_trie map, a type the "
                                        "engine of socket://"):
        RtlTarget(fw)
