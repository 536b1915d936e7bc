"""Engine configurations that boards share (EngineConfig fields, as ``Board.engine`` takes them).

``COMPACT``: the smallest XDP engine tried on an LFE5U-25F (24,288 LUT4 cells, 56 DP16KD), per
core: without the CPU's branch-target program-memory copy (3 cycles per taken branch instead of
1), its call frames in block RAM, the serial multiplier, 512 program slots, 8 KiB of map
memory, 16 maps (descriptors in block RAM), 2 KiB inject and output rings; a 4 KiB packet
buffer (full-size frames) sharing one RAM with the stack, 64-byte keys (the helper unit does not
check a smaller max_key), the kernel verifier's ctx rules. Its helper unit is built with the
load balancer's helpers and map types (examples/lb: map lookup/update, ktime_get_ns, csum_diff,
xdp_adjust_head; hash, lru_hash, array, percpu_array) and the cheap ones many XDP programs use
(map_delete_elem, redirect, xdp_adjust_tail, ktime_get_boot_ns, get_smp_processor_id); no
get_prandom_u32 (~150 logic cells) and no trace unit. The loader refuses objects that call
anything else or use another map type on such a board (docs/boards.md).

MEASURED (docs/boards.md): one core of it with the Colorlight 5A-75B's SoC (two RGMII ports,
UART host link) takes TRELLIS_COMB 20,038/24,288 (82 %) and 50 DP16KD, and that build routes
(router1) and meets 31.25 MHz (sys 43.11 MHz), 2026-11-29.

The boards without a ``Board.engine`` build the full engine (every helper and map type, the
trace unit, the target port): it needs an 85F for two cores (docs/boards.md).
"""
from bpfpga.helpers import HELPER_IDS
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH,
                        BPF_MAP_TYPE_PERCPU_ARRAY)

COMPACT_HELPERS = ("map_lookup_elem", "map_update_elem", "map_delete_elem", "ktime_get_ns",
                   "ktime_get_boot_ns", "get_smp_processor_id", "redirect", "csum_diff",
                   "xdp_adjust_head", "xdp_adjust_tail")
COMPACT_MAP_TYPES = (BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARRAY,
                     BPF_MAP_TYPE_PERCPU_ARRAY)
COMPACT = (("target_port", False), ("pm_depth", 512), ("map_bytes", 8 * 1024),
           ("max_maps", 16), ("inj_words", 256), ("out_words", 256),
           ("trace_depth", 0), ("strict_ctx", True),
           ("desc_bram", True), ("frame_bram", True), ("shared_lane_ram", True),
           ("mul_serial", True),
           ("helpers", tuple(sorted(HELPER_IDS[n] for n in COMPACT_HELPERS))),
           ("map_types", tuple(sorted(COMPACT_MAP_TYPES))))
