"""One configuration object for the XDP engine (hdl/xdp.py) and everything around it.

The defaults fit an LFE5U-25F (56 DP16KD of 18 Kbit): per core a program memory of
``pm_depth`` 64-bit slots (pm_depth/256 blocks), a 4 KiB stack (4) and a 4 KiB packet buffer
(4); shared: the program staging memory (pm_depth/256), the map memory (map_bytes/2048), the
inject and output rings. :meth:`EngineConfig.bram_blocks` adds them up.
The simulated board (sim/rtl_xdp.py) uses :data:`SIM` with a large map memory, so that the
examples' maps fit without ``--map-size``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
    trace_depth: int = 16        # trace_printk records the trace FIFO holds (a power of two;
                                 # 0: no trace unit, the helper prints nothing and returns 0)

    @property
    def max_frame(self) -> int:
        """Longest frame a packet buffer takes (headroom and tailroom kept free)."""
        return self.pkt_bytes - 256 - 320

    def bram_blocks(self) -> int:
        """DP16KD blocks (2 KiB of 64-bit-wide storage each, two per 64-bit 512-word bank)."""
        def blocks(nbytes):
            return max(2, -(-nbytes // 2048))
        per_core = blocks(self.pm_depth * 8) + 2 * blocks(4096 // 2) + 2 * blocks(self.pkt_bytes // 2)
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
