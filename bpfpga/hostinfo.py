"""Facts about the machine we run on that several targets need to agree on."""
from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def possible_cpus() -> int:
    """Number of possible CPUs (/sys/devices/system/cpu/possible, e.g. ``0-3`` or ``0,2-5``):
    the kernel keeps one value per possible CPU in a per-CPU map, so every target that is
    compared with the kernel models that many."""
    try:
        text = open("/sys/devices/system/cpu/possible").read().strip()
        n = 0
        for part in text.split(","):
            a, _, b = part.partition("-")
            if a:
                n = max(n, int(b or a) + 1)
        return n or (os.cpu_count() or 1)
    except (OSError, ValueError):
        return os.cpu_count() or 1
