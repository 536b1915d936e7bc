"""What the running kernel allows an XDP program: helpers and map types, probed as
`bpftool feature probe` does (a tiny program per helper, a tiny map per type), once per
process. The kernel target, `bpfpga diff` and the tests decide from this probe, never from a
kernel version, whether the kernel can be the oracle for an object (docs/kernel-target.md).
"""
from __future__ import annotations

import errno as _errno
import os
from dataclasses import asdict, dataclass

from bpfpga import isa
from bpfpga import obj as O
from bpfpga.helpers import HELPER_NAMES, UAPI_MAP_TYPES, helper_name

from . import bpfsys as S
from .bpfsys import BpfError

# the verifier's words for "this program type may not call this helper" (check_helper_call)
_REFUSED = ("program of this type cannot use helper", "invalid func", "unknown func")
_LOG_SIZE = 1 << 16


@dataclass(frozen=True)
class Feature:
    kind: str            # "helper" or "map"
    id: int
    name: str            # bpf_xdp_adjust_meta, lpm_trie
    allowed: bool | None   # None: not probed (the reason says why)
    reason: str = ""     # the kernel's words when refused

    def as_dict(self) -> dict:
        return asdict(self)

    def refusal(self) -> str:
        """The one line a comparison prints when the kernel cannot be the oracle."""
        what = f"{self.name}#{self.id}" if self.kind == "helper" else f"{self.name} maps"
        why = self.reason.replace(f" {what}", "")
        return f"this kernel refuses {what} for XDP (probe: {why})"


_helpers: dict[int, Feature] = {}
_maps: dict[int, Feature] = {}


def _probe_helper(hid: int) -> Feature:
    name = helper_name(hid)
    code = isa.encode([isa.Insn(isa.BPF_JMP | isa.BPF_CALL, 0, 0, 0, hid),
                       isa.Insn(isa.BPF_JMP | isa.BPF_EXIT)])
    try:
        fd, _ = S.prog_load(code, license="GPL", name="probe", log_level=1,
                            log_size=_LOG_SIZE)
        os.close(fd)
        return Feature("helper", hid, name, True)
    except BpfError as e:
        if e.errno in (_errno.EPERM, _errno.ENOSYS):
            from .kernel import _unavailable_error
            raise _unavailable_error(e) from None
        for line in (e.log or "").splitlines():
            if any(line.startswith(r) for r in _REFUSED):
                return Feature("helper", hid, name, False, line.strip())
        # refused later, for its arguments (uninitialized r1..r5): the helper itself passed
        return Feature("helper", hid, name, True)


# map types whose creation needs BTF for the value (or a struct_ops type): not probed here
_NEEDS_BTF = {24, 26, 28, 29, 32}


def _probe_map(mtype: int) -> Feature:
    name = UAPI_MAP_TYPES.get(mtype, str(mtype))
    if mtype in _NEEDS_BTF:
        return Feature("map", mtype, name, None, "not probed: creating it needs BTF")
    ks, vs, n, flags, inner = 4, 4, 1, 0, 0
    if mtype == O.BPF_MAP_TYPE_LPM_TRIE:
        ks, vs, flags = 8, 8, O.BPF_F_NO_PREALLOC
    elif mtype == O.BPF_MAP_TYPE_STACK_TRACE:
        vs = 8
    elif mtype in (22, 23, 30):                 # queue, stack, bloom_filter: no key
        ks = 0
    elif mtype in (27, 31):                     # ringbuf, user_ringbuf: a page, no key/value
        ks, vs, n = 0, 0, os.sysconf("SC_PAGE_SIZE")
    elif mtype in (19, 21):                     # cgroup storage: struct bpf_cgroup_storage_key
        ks, n = 16, 0
    tfd = -1
    try:
        if mtype in O.MAP_IN_MAP_TYPES:
            tfd = S.map_create(O.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="probe_inner")
            inner = tfd
        fd = S.map_create(mtype, ks, vs, n, flags, inner, "probe")
        os.close(fd)
        return Feature("map", mtype, name, True)
    except BpfError as e:
        if e.errno in (_errno.EPERM, _errno.ENOSYS):
            from .kernel import _unavailable_error
            raise _unavailable_error(e) from None
        return Feature("map", mtype, name, False, os.strerror(e.errno))
    finally:
        if tfd >= 0:
            os.close(tfd)


def helper(hid: int) -> Feature:
    """Whether this kernel lets an XDP program call helper ``hid`` (probed once)."""
    if hid not in _helpers:
        from .kernel import require_kernel
        require_kernel()
        _helpers[hid] = _probe_helper(hid)
    return _helpers[hid]


def map_type(mtype: int) -> Feature:
    """Whether this kernel creates maps of type ``mtype`` (probed once)."""
    if mtype not in _maps:
        from .kernel import require_kernel
        require_kernel()
        _maps[mtype] = _probe_map(mtype)
    return _maps[mtype]


def probe_all() -> list[Feature]:
    """Every helper of the uapi header and every map type, as this kernel treats them."""
    return ([helper(h) for h in sorted(HELPER_NAMES)]
            + [map_type(t) for t in sorted(UAPI_MAP_TYPES) if t])


def refused(obj) -> list[Feature]:
    """The helpers the object's programs call and the map types it declares that this kernel
    refuses for XDP: while any is there, the kernel cannot be the oracle for the object."""
    hs = sorted({h for p in obj.programs for h in p.helpers})
    out = [f for f in (helper(h) for h in hs) if f.allowed is False]
    mts = sorted({m.type for m in obj.maps})
    return out + [f for f in (map_type(t) for t in mts) if f.allowed is False]


def not_compared(obj) -> str | None:
    """"this kernel refuses ... (probe: ...)" when the kernel cannot run the object, else
    None; one line for all refusals."""
    r = refused(obj)
    if not r:
        return None
    return "; ".join(f.refusal() for f in r)
