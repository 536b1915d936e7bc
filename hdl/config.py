"""One configuration object for the XDP engine (hdl/xdp.py) and everything around it.

The defaults fit an LFE5U-25F (56 DP16KD of 18 Kbit): per core a program memory of
``pm_depth`` 64-bit slots (pm_depth/256 blocks), a 4 KiB stack (4) and a 4 KiB packet buffer
(4); shared: the program staging memory (pm_depth/256), the map memory (map_bytes/2048), the
inject and output rings. :meth:`EngineConfig.bram_blocks` adds them up.
The simulated board (sim/rtl_xdp.py) uses :data:`SIM` with a large map memory, so that the
examples' maps fit without ``--map-size``.

``helpers`` and ``map_types`` name what the helper unit is built with (None: everything in
:data:`HELPERS` / :data:`MAP_TYPES`); the engine reports the set in its capability registers
(hdl/control.py R_HELPERS0.., R_MAP_TYPES) and the loader refuses an object that needs more.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from bpfpga import obj as _o
from bpfpga.hdl.control import HELPER_WORDS

# every helper the hardware helper unit (hdl/helpers_hw.py) can be built with (enum bpf_func_id)
HELPERS = {1: "map_lookup_elem", 2: "map_update_elem", 3: "map_delete_elem",
           5: "ktime_get_ns", 6: "trace_printk", 7: "get_prandom_u32",
           8: "get_smp_processor_id", 12: "tail_call", 23: "redirect", 28: "csum_diff",
           44: "xdp_adjust_head", 51: "redirect_map", 54: "xdp_adjust_meta",
           65: "xdp_adjust_tail", 125: "ktime_get_boot_ns"}
H_TRACE = 6
# every map type it can be built with (compiler/link.py lays out the same ones)
MAP_TYPES = (_o.BPF_MAP_TYPE_HASH, _o.BPF_MAP_TYPE_ARRAY, _o.BPF_MAP_TYPE_PROG_ARRAY,
             _o.BPF_MAP_TYPE_PERCPU_HASH, _o.BPF_MAP_TYPE_PERCPU_ARRAY,
             _o.BPF_MAP_TYPE_LRU_HASH, _o.BPF_MAP_TYPE_LRU_PERCPU_HASH,
             _o.BPF_MAP_TYPE_LPM_TRIE, _o.BPF_MAP_TYPE_ARRAY_OF_MAPS,
             _o.BPF_MAP_TYPE_HASH_OF_MAPS, _o.BPF_MAP_TYPE_DEVMAP)


@dataclass(frozen=True)
class EngineConfig:
    cores: int = 2
    ports: int = 2               # Ethernet ports (rx<n>/tx<n> streams)
    pm_depth: int = 1024         # program memory slots (every program of the object, linked)
    map_bytes: int = 32 * 1024   # map memory: values, keys and hash metadata of every map
    pkt_bytes: int = 4096        # one packet buffer per core: 256 B headroom + frame + 320 B
    max_maps: int = 32
    inj_words: int = 512         # 64-bit words of the host inject ring
    out_words: int = 512         # 64-bit words of the host (PASS / capture) ring
    ns_per_cycle: int = 10       # ktime_get_ns step per clock (100 MHz)
    max_key: int = 64            # bytes: the longest hash / LPM key the helper unit holds
    target_port: bool = True     # CPU: a second program-memory copy fetches branch targets
                                 # (False: one block-RAM copy less, 3 cycles per taken branch)
    mul_serial: bool = False     # CPU: one 16x16 multiplier, a partial product a cycle (mul64
                                 # 11 cycles, mul32 4; ~280 LUT4, 285 FF, 9 MULT18X18D less)
    frame_bram: bool = False     # CPU: call frames' r6..r9 in block RAM (8 DP16KD per core)
                                 # instead of LUT RAM (some 400 logic cells)
    shared_lane_ram: bool = False  # a lane's packet buffer and stack in one DualBankRAM
                                 # (some 900 LUT4 and 4 DP16KD less per core; the stack is
                                 # cleaned in the cycles the packet side leaves the port)
    desc_bram: bool = False      # map descriptors in block RAM (2 DP16KD per core, 3 cycles
                                 # more per map operation) instead of LUT RAM (~200 cells)
    strict_ctx: bool = False     # ctx (xdp_md) takes only aligned 4-byte loads, as the
                                 # kernel's verifier allows; others trap (TRAP_MEM)
    trace_depth: int = 16        # trace_printk records the trace FIFO holds (a power of two;
                                 # 0: no trace unit and no trace_printk helper)
    helpers: tuple[int, ...] | None = None     # helper ids built (None: all of HELPERS)
    map_types: tuple[int, ...] | None = None   # map types built (None: all of MAP_TYPES)

    def __post_init__(self):
        # (sorted tuples: hashable, and the same config from a list, a set or JSON)
        for name, known in (("helpers", HELPERS), ("map_types", MAP_TYPES)):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, (str, bytes, int)):
                raise ValueError(f"EngineConfig.{name}: a collection of ids, not {v!r}")
            v = tuple(sorted({int(x) for x in v}))
            bad = [x for x in v if x not in known]
            if bad:
                what = "helper id" if name == "helpers" else "map type"
                raise ValueError(f"EngineConfig.{name}: {what}(s) {bad} not supported by the "
                                 f"helper unit (known: {sorted(known)})")
            object.__setattr__(self, name, v)

    def helper_set(self) -> frozenset[int]:
        """The helpers built: ``helpers`` (all if None), without trace_printk when there is
        no trace unit (trace_depth 0)."""
        hs = set(HELPERS if self.helpers is None else self.helpers)
        if not self.trace_depth:
            hs.discard(H_TRACE)
        return frozenset(hs)

    def map_type_set(self) -> frozenset[int]:
        return frozenset(MAP_TYPES if self.map_types is None else self.map_types)

    def helper_masks(self) -> list[int]:
        """R_HELPERS0..: bit h % 32 of word h // 32 set when helper h is built."""
        words = [0] * HELPER_WORDS
        for h in self.helper_set():
            words[h // 32] |= 1 << (h % 32)
        return words

    def map_type_mask(self) -> int:
        """R_MAP_TYPES: bit t set when map type t is built."""
        return sum(1 << t for t in self.map_type_set())

    @property
    def desc_words(self) -> int:
        """Words a map descriptor (256 bits) is stored and read as: four 64-bit words in
        block RAM (desc_bram), else one."""
        return 4 if self.desc_bram else 1

    @property
    def max_frame(self) -> int:
        """Longest frame a packet buffer takes (headroom and tailroom kept free)."""
        return self.pkt_bytes - 256 - 320

    def bram_blocks(self) -> int:
        """DP16KD blocks (2 KiB of 64-bit-wide storage each, two per 64-bit 512-word bank)."""
        def blocks(nbytes):
            return max(2, -(-nbytes // 2048))
        lane = (2 * blocks(max(self.pkt_bytes, 4096)) if self.shared_lane_ram
                else 2 * blocks(4096 // 2) + 2 * blocks(self.pkt_bytes // 2))
        per_core = (blocks(self.pm_depth * 8) + lane + (2 if self.desc_bram else 0)
                    + (8 if self.frame_bram else 0))
        shared = (blocks(self.pm_depth * 8) + 2 * blocks(self.map_bytes // 2)
                  + blocks(self.inj_words * 8) + blocks(self.out_words * 8)
                  + (blocks(self.trace_depth * 64) if self.trace_depth else 0))
        return self.cores * per_core + shared

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = EngineConfig()
# the simulated board: the same engine with room for the examples' maps as compiled
SIM = EngineConfig(cores=2, ports=2, pm_depth=2048, map_bytes=512 * 1024, inj_words=1024,
                   out_words=1024, trace_depth=64)

assert max(HELPERS) < 32 * HELPER_WORDS and max(MAP_TYPES) < 32
