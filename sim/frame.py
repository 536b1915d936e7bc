"""Which frames an XDP target runs: the one rule the reference machine shares with the kernel
and the engine, so that `bpfpga diff` sees the same frames refused on every target.

The kernel's BPF_PROG_TEST_RUN refuses a frame shorter than an Ethernet header (ETH_HLEN) and
puts what does not fit one page (less XDP_PACKET_HEADROOM and skb_shared_info) into fragments
a program without frags cannot see (host/kernel.py linear_max()); the engine drops runts and
frames longer than its packet buffer takes (hdl/config.py EngineConfig.max_frame, counted).
"""
from __future__ import annotations

from bpfpga import memmap
from bpfpga.errors import TargetError

ETH_HLEN = 14
BUFFER = 4096             # one page, as the kernel's test run and the engine's default buffer
TAILROOM = 320            # SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
MAX_FRAME = BUFFER - memmap.PKT_HEADROOM - TAILROOM     # 3520, as linear_max() on x86_64


def frame_refusal(length: int, max_frame: int = MAX_FRAME) -> str | None:
    """Why a frame of ``length`` bytes is not run (one line), or None when it is."""
    if length < ETH_HLEN:
        return (f"frame of {length} bytes is shorter than an Ethernet header ({ETH_HLEN}): "
                f"the kernel and the engine refuse it")
    if length > max_frame:
        return (f"frame of {length} bytes is longer than the {max_frame} bytes one packet "
                f"buffer holds for a program without frags: the kernel and the engine "
                f"refuse it")
    return None


def check_frame(packet: bytes, max_frame: int = MAX_FRAME) -> None:
    """A TargetError (the result a target gives for a frame it does not run) when the frame
    is refused."""
    why = frame_refusal(len(packet), max_frame)
    if why is not None:
        raise TargetError(why)
