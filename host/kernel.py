"""The `kernel` target: the Linux kernel itself, through the bpf() syscall (no libbpf).

The kernel is the authority on what an XDP object means; this target creates the object's maps,
rewrites map-by-index references to map fds, loads the entry program and its tail-call targets,
fills PROG_ARRAY and map-in-map slots, and runs one packet per BPF_PROG_TEST_RUN on a fresh
buffer. See docs/kernel-target.md for the decisions (CPU pinning, the xdp_md context, limits).
"""
from __future__ import annotations

import contextlib
import errno as _errno
import os
import re
import struct
from dataclasses import dataclass

from bpfpga import isa
from bpfpga import obj as O
from bpfpga.errors import TargetError
from bpfpga.obj import BpfObject, MapDef
from bpfpga.target import Target, XdpContext, XdpResult

from . import bpfsys as S
from .bpfsys import BpfError

ETH_HLEN = 14
LOG_SIZE = 16 << 20        # verifier log on failure; the kernel keeps its tail when it is full

_UNAVAILABLE = {_errno.EPERM: "permission denied (run as root, or with CAP_BPF and "
                              "CAP_NET_ADMIN)",
                _errno.ENOSYS: "not implemented by this kernel, or blocked by seccomp",
                _errno.EACCES: "access denied (unprivileged bpf is disabled?)"}


def _unavailable_error(e: OSError) -> TargetError:
    why = _UNAVAILABLE.get(e.errno, os.strerror(e.errno) if e.errno else str(e))
    return TargetError(f"the bpf() syscall is unavailable: {why}")


_available: tuple[bool, str] | None = None
_ctx_ok: bool | None = None


def _trivial_prog(ret: int = isa.XDP_PASS) -> bytes:
    return (isa.Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, 0, 0, 0, ret).encode()
            + isa.Insn(isa.BPF_JMP | isa.BPF_EXIT).encode())


def kernel_available() -> tuple[bool, str]:
    """(True, "") when this process can create maps, load XDP programs and test-run them;
    else (False, reason), the reason being the one-line message tests skip with."""
    global _available
    if _available is not None:
        return _available
    try:
        S.syscall_nr()
        fd = S.map_create(O.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="probe")
        os.close(fd)
        pfd, _ = S.prog_load(_trivial_prog(), name="probe")
        try:
            r, _, _ = S.prog_test_run(pfd, bytes(ETH_HLEN))
        finally:
            os.close(pfd)
        if r != isa.XDP_PASS:
            _available = (False, f"the bpf() syscall is unavailable: test run gave {r}")
        else:
            _available = (True, "")
    except TargetError as e:
        _available = (False, str(e))
    except OSError as e:
        _available = (False, str(_unavailable_error(e)))
    return _available


def require_kernel() -> None:
    ok, why = kernel_available()
    if not ok:
        raise TargetError(why)


def ctx_supported() -> bool:
    """Whether BPF_PROG_TEST_RUN takes a struct xdp_md ctx_in (kernels since 5.15)."""
    global _ctx_ok
    if _ctx_ok is None:
        require_kernel()
        pfd, _ = S.prog_load(_trivial_prog(), name="probe")
        try:
            S.prog_test_run(pfd, bytes(ETH_HLEN),
                            ctx=S.XDP_MD.pack(0, ETH_HLEN, 0, 1, 0, 0))
            _ctx_ok = True
        except BpfError:
            _ctx_ok = False
        finally:
            os.close(pfd)
    return _ctx_ok


_linear_max: int | None = None


def linear_max() -> int:
    """The most packet bytes an XDP program without frags sees between data and data_end in
    BPF_PROG_TEST_RUN (a page less headroom and skb_shared_info: 3520 on x86_64 with 4 KiB
    pages). The kernel puts the rest of a longer packet into fragments such a program cannot
    see, which no driver would do to it: the target refuses those packets. Probed once."""
    global _linear_max
    if _linear_max is None:
        require_kernel()
        code = isa.encode([isa.Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 2, 1, 0),
                           isa.Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 0, 1, 4),
                           isa.Insn(isa.BPF_ALU64 | isa.BPF_SUB | isa.BPF_X, 0, 2),
                           isa.Insn(isa.BPF_JMP | isa.BPF_EXIT)])
        pfd, _ = S.prog_load(code, name="probe")
        try:
            _linear_max, _, _ = S.prog_test_run(pfd, bytes(3 * os.sysconf("SC_PAGE_SIZE")))
        finally:
            os.close(pfd)
    return _linear_max


TIME_SAMPLES = 25        # BPF_PROG_TEST_RUNs of one run each per timed packet (median)
_harness: dict[int, int] = {}


def harness_ns(samples: int = TIME_SAMPLES) -> int:
    """The median ``duration`` BPF_PROG_TEST_RUN reports for an empty XDP program (r0 =
    XDP_PASS; exit) on a 64-byte packet over 4 * ``samples`` runs of one run each: the cost
    of the harness (the timer's clock reads, bh and migration off and on), subtracted from
    every timing. Measured once per process (here about 110-120 ns)."""
    if samples not in _harness:
        require_kernel()
        pfd, _ = S.prog_load(_trivial_prog(), name="empty")
        try:
            with pinned_cpu():
                ds = [S.prog_test_run(pfd, bytes(64))[2] for _ in range(4 * samples)]
        finally:
            os.close(pfd)
        _harness[samples] = median(ds)
    return _harness[samples]


def median(xs):
    """The median of a non-empty list (the lower middle of an even count), else None."""
    s = sorted(xs)
    return s[(len(s) - 1) // 2] if s else None


# --- the verifier's message -----------------------------------------------------------------
_NOISE = re.compile(r"^(processed \d+ insns|verification time|stack depth|"
                    r"-- END PROG LOAD LOG --|mark_precise|last_idx|regs=|parent didn't)")
_INSN_LINE = re.compile(r"^(\d+): \([0-9a-f]{2}\) ")


def verifier_reason(log: str) -> str:
    """The verifier's last meaningful lines: the message lines after the last instruction it
    printed (at most three, joined with '; '), and that instruction."""
    lines = [ln.strip() for ln in log.splitlines()]
    lines = [ln for ln in lines if ln and not _NOISE.match(ln)]
    if not lines:
        return ""
    last_insn = None
    for j in range(len(lines) - 1, -1, -1):
        if _INSN_LINE.match(lines[j]):
            last_insn = j
            break
    if last_insn is None or last_insn == len(lines) - 1:
        return lines[-1]
    msg = "; ".join(lines[last_insn + 1:][-3:])
    insn = lines[last_insn].split(";")[0].strip()
    return f"{msg} (at {insn})"


def load_xdp(insns: bytes, name: str, license: str, prog_flags: int = 0) -> int:
    """Load an XDP program; on rejection raise TargetError with the verifier's reason."""
    try:
        fd, _ = S.prog_load(insns, license=license, name=name, prog_flags=prog_flags)
        return fd
    except BpfError as e:
        if e.errno in (_errno.EPERM, _errno.ENOSYS):
            raise _unavailable_error(e) from None
        first = e
    try:   # again with the log (as libbpf does): only failures pay for it
        fd, _ = S.prog_load(insns, license=license, name=name, prog_flags=prog_flags,
                            log_level=1, log_size=LOG_SIZE)
        return fd
    except BpfError as e:
        reason = verifier_reason(e.log) or os.strerror(e.errno or first.errno)
        raise TargetError(f"the kernel rejected program '{name}': {reason}") from None


# --- relocation ---------------------------------------------------------------------------------
def relocate_maps(insns: bytes, fds: list[int], what: str = "program") -> bytes:
    """Rewrite every lddw with src BPF_PSEUDO_MAP_IDX (imm = map index) into
    BPF_PSEUDO_MAP_FD (imm = fd), and BPF_PSEUDO_MAP_IDX_VALUE into BPF_PSEUDO_MAP_VALUE (the
    second slot's imm, the offset into the value, stays)."""
    code = bytearray(insns)
    n = len(code) // 8
    i = 0
    lddw = isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW
    while i < n:
        op, dst, src, off, imm = isa.unpack_slot(code, i)
        if op != lddw:
            i += 1
            continue
        if src in (isa.BPF_PSEUDO_MAP_IDX, isa.BPF_PSEUDO_MAP_IDX_VALUE):
            if not 0 <= imm < len(fds):
                raise TargetError(f"{what}: instruction {i} refers to map index {imm}, "
                                  f"the object has {len(fds)} maps")
            nsrc = (isa.BPF_PSEUDO_MAP_FD if src == isa.BPF_PSEUDO_MAP_IDX
                    else isa.BPF_PSEUDO_MAP_VALUE)
            code[i * 8 + 1] = (dst & 0xF) | (nsrc << 4)
            struct.pack_into("<i", code, i * 8 + 4, fds[imm])
        i += 2
    return bytes(code)


def is_global_data(md: MapDef) -> bool:
    return md.section.startswith((".data", ".rodata", ".bss"))


def _is_fd_map(md: MapDef) -> bool:
    return md.type in (O.BPF_MAP_TYPE_PROG_ARRAY,) or md.type in O.MAP_IN_MAP_TYPES


@contextlib.contextmanager
def pinned_cpu():
    """Run on one CPU (CPU 0, or the lowest this process may use) so bpf_get_smp_processor_id()
    is that CPU and per-CPU map writes land in its slot. Yields the CPU number."""
    old = os.sched_getaffinity(0)
    cpu = 0 if 0 in old else min(old)
    if old != {cpu}:
        os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        if old != {cpu}:
            os.sched_setaffinity(0, old)


class KernelTarget(Target):
    """An object loaded into the running kernel.

    ``KernelTarget(obj, prog=None)`` creates every map of ``obj``, loads the entry program
    (``prog`` by function or section name; the first program when None) and every program a
    PROG_ARRAY's ``init_slots`` names, and fills PROG_ARRAY and map-in-map slots.
    """
    name = "kernel"

    def __init__(self, obj: BpfObject, prog: str | None = None):
        require_kernel()
        from bpfpga.compiler.select import xdp_view
        self.obj = obj = xdp_view(obj)
        self.maps: dict[str, tuple[int, MapDef]] = {}
        self.progs: dict[str, int] = {}
        self._fds: list[int] = []
        self._closed = False
        self.frags = False
        try:
            self.entry = obj.program(prog)
        except (KeyError, IndexError):
            raise TargetError(f"{obj.path}: {obj.program_choices(prog)}") from None
        try:
            self._create_maps()
            self.prog_fd = self._load(self.entry.name)
            for md in obj.maps:
                if md.type == O.BPF_MAP_TYPE_PROG_ARRAY:
                    for slot in sorted(md.init_slots):
                        self.set_prog_slot(md.name, slot, md.init_slots[slot])
        except BaseException:
            self.close()
            raise

    # --- set-up -----------------------------------------------------------------------------
    def _map_create(self, md: MapDef, inner_fd: int = 0) -> int:
        mtype, ks, vs, n, flags = md.type, md.key_size, md.value_size, md.max_entries, \
            md.map_flags
        if is_global_data(md):
            mtype, ks, n = O.BPF_MAP_TYPE_ARRAY, 4, 1
            vs = vs or len(md.data or b"")
            if md.section.startswith(".rodata"):
                flags |= O.BPF_F_RDONLY_PROG
        if mtype == O.BPF_MAP_TYPE_LPM_TRIE:
            flags |= O.BPF_F_NO_PREALLOC
        try:
            fd = S.map_create(mtype, ks, vs, n, flags, inner_fd, md.name)
        except BpfError as e:
            if e.errno in (_errno.EPERM, _errno.ENOSYS):
                raise _unavailable_error(e) from None
            raise TargetError(f"map '{md.name}' ({md.type_name}, key {ks}, value {vs}, "
                              f"{n} entries, flags 0x{flags:x}): the kernel refused it: "
                              f"{os.strerror(e.errno)}") from None
        self._fds.append(fd)
        return fd

    def _create_maps(self) -> None:
        obj = self.obj
        # plain maps first: map-in-map slots name them
        for md in obj.maps:
            if md.type in O.MAP_IN_MAP_TYPES:
                continue
            fd = self._map_create(md)
            self.maps[md.name] = (fd, md)
            if is_global_data(md):
                vs = md.value_size or len(md.data or b"")
                data = (md.data or b"").ljust(vs, b"\0")[:vs]
                if any(data):
                    self._update(md.name, fd, bytes(4), data)
                if md.section.startswith(".rodata"):
                    S.map_freeze(fd)
        for md in obj.maps:
            if md.type not in O.MAP_IN_MAP_TYPES:
                continue
            tmpl = md.inner
            if tmpl is not None:
                tfd = self._map_create(tmpl)
            elif md.init_slots:
                first = md.init_slots[sorted(md.init_slots)[0]]
                if first not in self.maps:
                    raise TargetError(f"map '{md.name}': inner map '{first}' is not in the "
                                      f"object")
                tfd = self.maps[first][0]
            else:
                raise TargetError(f"map '{md.name}' ({md.type_name}) has no inner map "
                                  f"definition")
            fd = self._map_create(md, inner_fd=tfd)
            self.maps[md.name] = (fd, md)
            if tmpl is not None:   # the kernel keeps what it needs of the template
                self._fds.remove(tfd)
                os.close(tfd)
        for md in obj.maps:
            if md.type in O.MAP_IN_MAP_TYPES:
                for key in sorted(md.init_slots):
                    self.set_inner_map(md.name, key, md.init_slots[key])

    def _load(self, name: str) -> int:
        if name in self.progs:
            return self.progs[name]
        try:
            p = self.obj.program(name)
        except (KeyError, IndexError):
            raise TargetError(f"{self.obj.path}: no program '{name}'") from None
        fds = [self.maps[m.name][0] for m in self.obj.maps]
        code = relocate_maps(p.insns, fds, f"program '{p.name}'")
        flags = S.BPF_F_XDP_HAS_FRAGS if p.section.startswith("xdp.frags") else 0
        if p.name == self.entry.name:
            self.frags = bool(flags)
        fd = load_xdp(code, p.name, self.obj.license, flags)
        self._fds.append(fd)
        self.progs[p.name] = fd
        return fd

    def set_prog_slot(self, map_name: str, index: int, prog_name: str) -> None:
        """Put program ``prog_name`` (loaded if needed) into slot ``index`` of a PROG_ARRAY."""
        fd = self._load(prog_name)
        mfd, md = self._map(map_name)
        self._update(map_name, mfd, struct.pack("<I", index), struct.pack("<I", fd))

    def set_inner_map(self, map_name: str, key, inner_name: str) -> None:
        """Put map ``inner_name`` into a map-in-map under ``key`` (an int index or raw bytes)."""
        mfd, md = self._map(map_name)
        if inner_name not in self.maps:
            raise TargetError(f"map '{map_name}': inner map '{inner_name}' is not in the object")
        k = key.to_bytes(md.key_size, "little") if isinstance(key, int) else bytes(key)
        self._update(map_name, mfd, k, struct.pack("<I", self.maps[inner_name][0]))

    # --- maps -------------------------------------------------------------------------------
    def _map(self, name: str) -> tuple[int, MapDef]:
        try:
            return self.maps[name]
        except KeyError:
            raise TargetError(f"no map '{name}' (maps: {', '.join(self.maps) or 'none'})") \
                from None

    @staticmethod
    def _update(name: str, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        try:
            S.map_update(fd, key, value, flags)
        except BpfError as e:
            raise TargetError(f"map '{name}': update of key {bytes(key).hex()} failed: "
                              f"{os.strerror(e.errno)}") from None

    def _value_len(self, md: MapDef) -> int:
        vs = md.value_size if not is_global_data(md) else (md.value_size or len(md.data or b""))
        if _is_fd_map(md):
            return 4
        return S.round8(vs) * S.n_possible_cpus() if md.percpu else vs

    def _check_key(self, name: str, md: MapDef, key: bytes) -> bytes:
        ks = 4 if is_global_data(md) else md.key_size
        if len(key) != ks:
            raise TargetError(f"map '{name}': key of {len(key)} bytes, the map's keys have {ks}")
        return bytes(key)

    def _split(self, md: MapDef, raw: bytes):
        if not md.percpu:
            return raw
        step = S.round8(md.value_size)
        return [raw[i * step:i * step + md.value_size] for i in range(S.n_possible_cpus())]

    def map_lookup(self, name: str, key: bytes):
        """The value under ``key`` (bytes; a list of per-CPU values for per-CPU maps; the id
        of the program or map for PROG_ARRAY and map-in-map), or None when absent."""
        fd, md = self._map(name)
        key = self._check_key(name, md, key)
        try:
            raw = S.map_lookup(fd, key, self._value_len(md))
        except BpfError as e:
            raise TargetError(f"map '{name}': lookup of key {key.hex()} failed: "
                              f"{os.strerror(e.errno)}") from None
        return None if raw is None else self._split(md, raw)

    def map_update(self, name: str, key: bytes, value, flags: int = 0) -> None:
        """Set ``key`` to ``value``. Per-CPU maps take a list of one value per possible CPU
        (a single bytes value is written to every CPU). PROG_ARRAY and map-in-map values are
        a 4-byte fd (see set_prog_slot / set_inner_map for names)."""
        fd, md = self._map(name)
        key = self._check_key(name, md, key)
        vs = md.value_size if not is_global_data(md) else (md.value_size or len(md.data or b""))
        if md.percpu:
            n = S.n_possible_cpus()
            vals = [bytes(value)] * n if isinstance(value, (bytes, bytearray)) else list(value)
            if len(vals) != n:
                raise TargetError(f"map '{name}': {len(vals)} per-CPU values for {n} CPUs")
            for v in vals:
                if len(v) != vs:
                    raise TargetError(f"map '{name}': value of {len(v)} bytes, the map's "
                                      f"values have {vs}")
            raw = b"".join(bytes(v).ljust(S.round8(vs), b"\0") for v in vals)
        else:
            raw = bytes(value)
            want = 4 if _is_fd_map(md) else vs
            if len(raw) != want:
                raise TargetError(f"map '{name}': value of {len(raw)} bytes, the map's values "
                                  f"have {want}")
        self._update(name, fd, key, raw, flags)

    def map_delete(self, name: str, key: bytes) -> None:
        fd, md = self._map(name)
        key = self._check_key(name, md, key)
        try:
            S.map_delete(fd, key)
        except BpfError as e:
            raise TargetError(f"map '{name}': delete of key {key.hex()} failed: "
                              f"{os.strerror(e.errno)}") from None

    def map_dump(self, name: str) -> list[tuple[bytes, object]]:
        """Every (key, value) in the kernel's iteration order (arrays: index order; entries
        of a PROG_ARRAY or map-in-map that are empty are left out)."""
        fd, md = self._map(name)
        ks = 4 if is_global_data(md) else md.key_size
        out = []
        key = None
        seen = 0
        try:
            while True:
                key = S.map_get_next_key(fd, key, ks)
                if key is None:
                    break
                seen += 1
                if seen > md.max_entries + 1 and not is_global_data(md):
                    break    # a hash map changing under us
                raw = S.map_lookup(fd, key, self._value_len(md))
                if raw is not None:
                    out.append((key, self._split(md, raw)))
        except BpfError as e:
            raise TargetError(f"map '{name}': dump failed: {os.strerror(e.errno)}") from None
        return out

    # --- running ----------------------------------------------------------------------------
    def _ctx(self, packet: bytes, ctx: XdpContext | None) -> bytes | None:
        c = ctx or XdpContext()
        if not ctx_supported():
            if (c.ingress_ifindex, c.rx_queue_index) in ((1, 0), (0, 0)):
                return None    # the kernel's default rxq is the loopback's queue 0
            raise TargetError("this kernel's BPF_PROG_TEST_RUN takes no xdp_md context; "
                              "only ingress_ifindex 1 (lo), rx_queue_index 0 can be run")
        return S.XDP_MD.pack(0, len(packet), 0, c.ingress_ifindex, c.rx_queue_index, 0)

    def refuses(self, packet: bytes) -> str | None:
        if len(packet) < ETH_HLEN:
            return (f"frames shorter than {ETH_HLEN} bytes: the kernel's BPF_PROG_TEST_RUN "
                    f"refuses them")
        if not self.frags and len(packet) > linear_max():
            return (f"frames over {linear_max()} bytes: an XDP program without frags sees at "
                    f"most {linear_max()} bytes in the kernel")
        return None

    def _test_run(self, packet: bytes, ctx, repeat: int):
        why = self.refuses(packet)
        if why:
            raise TargetError(f"packet of {len(packet)} bytes: {why}")
        cin = self._ctx(packet, ctx)
        try:
            with pinned_cpu():
                return S.prog_test_run(self.prog_fd, packet, repeat=repeat,
                                       out_size=len(packet) + 4096, ctx=cin)
        except BpfError as e:
            c = ctx or XdpContext()
            if e.errno == _errno.ENODEV:
                raise TargetError(f"ingress_ifindex {c.ingress_ifindex} is no network device "
                                  f"here; the kernel can only present an existing one") \
                    from None
            if e.errno == _errno.EINVAL and cin is not None and c.rx_queue_index:
                raise TargetError(f"the kernel refused rx_queue_index {c.rx_queue_index} "
                                  f"on ifindex {c.ingress_ifindex} (does it have that many "
                                  f"rx queues?)") from None
            raise TargetError(f"BPF_PROG_TEST_RUN failed: {os.strerror(e.errno)}") from None

    def run(self, packet: bytes, ctx: XdpContext | None = None) -> XdpResult:
        """One packet, one BPF_PROG_TEST_RUN (repeat 1) on a fresh buffer."""
        retval, out, _ = self._test_run(bytes(packet), ctx, 1)
        return XdpResult(verdict=retval, packet=out, retval=retval, redirect=None)

    def ns_per_packet(self, packet: bytes, repeat: int = 1000,
                      ctx: XdpContext | None = None) -> int:
        """The kernel's own timing (duration / repeat, in ns) of ``repeat`` runs. Only for
        benchmarks: each repeat re-runs the packet the previous run left behind."""
        _, _, duration = self._test_run(bytes(packet), ctx, max(1, repeat))
        return duration

    def time_packet(self, packet: bytes, ctx: XdpContext | None = None,
                    samples: int = TIME_SAMPLES) -> int:
        """The kernel's own ns for one run of the program on ``packet`` as given: the median
        ``duration`` of ``samples`` BPF_PROG_TEST_RUNs of one run each, every one on a fresh
        copy of the packet, less the same for an empty program (harness_ns); 0 at least.

        Not one test run with ``repeat``: bpf_test_run reruns the program on the xdp_buff
        the previous run left (measured: a program that moves data by one byte sees a
        64-byte packet as 55 bytes on its tenth run), and a repeat above 1 swaps the XDP
        dispatcher in and out (bpf_prog_change_xdp), about 17 ms a call here. Maps see every
        run: time on a second copy of the object, not the one whose results are compared."""
        packet = bytes(packet)
        with pinned_cpu():
            ds = [self._test_run(packet, ctx, 1)[2] for _ in range(samples)]
        return max(0, median(ds) - harness_ns(samples))

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def __del__(self):
        self.close()


# --- the conformance suite in the kernel --------------------------------------------------------
_LDDW = isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW
_EXIT = isa.BPF_JMP | isa.BPF_EXIT
_CALL = isa.BPF_JMP | isa.BPF_CALL


def _slot(op, dst=0, src=0, off=0, imm=0) -> bytes:
    return isa.Insn(op, dst, src, off, imm).encode()


def wrap_conformance(program: bytes, mem_len: int, result_fd: int,
                     origin: dict | None = None) -> bytes:
    """The suite's program as an XDP program, as the suite's libbpf plugin runs it.

    Prolog: r1 = the packet's data (the test memory), checked against data_end for
    ``mem_len`` bytes so the verifier knows the range, r2 = ``mem_len``; with no memory
    r1 = r2 = 0, as the suite's contract says. Every ``exit`` of the entry function becomes a
    jump to an epilogue placed right after the entry function (so it stays inside the entry
    function for the verifier) that stores the full 64-bit r0 into element 0 of an ARRAY map
    (a BPF_PSEUDO_MAP_VALUE pointer, no helper call) and then exits with r0 as it is.
    Exits of subprograms (bpf-to-bpf calls) stay. Branch and call offsets that cross the
    inserted code are adjusted. ``origin``, when given, is filled with {wrapped instruction
    index: original index} so messages can name the suite's own instruction numbers.
    """
    n = len(program) // 8
    raw = program[:n * 8]
    second = set()            # second slots of lddw
    targets = set()           # subprogram starts
    i = 0
    while i < n:
        op, dst, src, off, imm = isa.unpack_slot(raw, i)
        if op == _LDDW:
            second.add(i + 1)
            if src == isa.BPF_PSEUDO_FUNC:
                targets.add(i + imm + 1)
            i += 2
            continue
        if op == _CALL and src == isa.BPF_PSEUDO_CALL:
            targets.add(i + imm + 1)
        i += 1
    entry_end = min([t for t in targets if 0 < t <= n], default=n)

    ALU64, JMP = isa.BPF_ALU64, isa.BPF_JMP
    if mem_len:
        prolog = [_slot(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 2, 1, 4),     # r2 = data_end
                  _slot(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_W, 1, 1, 0),     # r1 = data
                  _slot(ALU64 | isa.BPF_ADD | isa.BPF_K, 1, 0, 0, mem_len),
                  None,                                                      # if r1 > r2: fail
                  _slot(ALU64 | isa.BPF_ADD | isa.BPF_K, 1, 0, 0, -mem_len),
                  _slot(ALU64 | isa.BPF_MOV | isa.BPF_K, 2, 0, 0, mem_len)]
    else:
        prolog = [_slot(ALU64 | isa.BPF_MOV | isa.BPF_K, 1, 0, 0, 0),
                  _slot(ALU64 | isa.BPF_MOV | isa.BPF_K, 2, 0, 0, 0)]
    P = len(prolog)
    ld = _slot(_LDDW, 1, isa.BPF_PSEUDO_MAP_VALUE, 0, result_fd)  # r1 = &value[0], 2 slots
    epilogue = [ld[:8], ld[8:],
                _slot(isa.BPF_STX | isa.BPF_MEM | isa.BPF_DW, 1, 0, 0, 0),  # *(u64 *)r1 = r0
                _slot(_EXIT)]
    if mem_len:   # the bounds check's other way out (never taken: the packet holds mem)
        epilogue += [_slot(ALU64 | isa.BPF_MOV | isa.BPF_K, 0, 0, 0, 0),    # fail: r0 = 0
                     _slot(_EXIT)]
    E = len(epilogue)
    epi = P + entry_end
    fail = epi + 4

    def new(t: int) -> int:
        return P + t if t < entry_end else P + t + E

    if mem_len:
        prolog[3] = _slot(JMP | isa.BPF_JGT | isa.BPF_X, 1, 2, fail - 3 - 1)
    out = bytearray(b"".join(prolog))
    for i in range(n):
        if i == entry_end:
            out += b"".join(epilogue)
        s = bytearray(raw[i * 8:i * 8 + 8])
        if i in second:
            out += s
            continue
        op, dst, src, off, imm = isa.unpack_slot(raw, i)
        cls = op & 7
        if op == _EXIT and i < entry_end:
            s = bytearray(_slot(JMP | isa.BPF_JA, 0, 0, epi - new(i) - 1))
        elif op == _CALL and src == isa.BPF_PSEUDO_CALL:
            struct.pack_into("<i", s, 4, new(i + imm + 1) - new(i) - 1)
        elif op == _LDDW and src == isa.BPF_PSEUDO_FUNC:
            struct.pack_into("<i", s, 4, new(i + imm + 1) - new(i) - 1)
        elif cls == isa.BPF_JMP32 and (op & 0xF0) == isa.BPF_JA:
            struct.pack_into("<i", s, 4, new(i + imm + 1) - new(i) - 1)
        elif cls in (isa.BPF_JMP, isa.BPF_JMP32) and (op & 0xF0) not in (isa.BPF_CALL,
                                                                          isa.BPF_EXIT):
            no = new(i + off + 1) - new(i) - 1
            if not -32768 <= no <= 32767:
                raise TargetError(f"instruction {i}: jump too far after wrapping")
            struct.pack_into("<h", s, 2, no)
        out += s
    if entry_end == n:
        out += b"".join(epilogue)
    if origin is not None:
        origin.update({new(i): i for i in range(n)})
    return bytes(out)


def _calls_helper(program: bytes, helper: int) -> bool:
    n = len(program) // 8
    i = 0
    while i < n:
        op, dst, src, off, imm = isa.unpack_slot(program, i)
        if op == _CALL and src == 0 and imm == helper:
            return True
        i += 2 if op == _LDDW else 1
    return False


class ConformanceRunner:
    """Runs the suite's programs in the kernel; keeps one result map for all of them."""

    def __init__(self):
        self.result_fd = -1
        require_kernel()
        self.result_fd = S.map_create(O.BPF_MAP_TYPE_ARRAY, 4, 8, 1, name="conf_r0")

    def run(self, program: bytes, mem: bytes = b"") -> int:
        """r0 (64 bits, unsigned) of ``program`` run on ``mem``; TargetError when the kernel
        rejects it (the verifier's reason in the message)."""
        origin: dict[int, int] = {}
        code = wrap_conformance(bytes(program), len(mem), self.result_fd, origin)
        try:
            fd = load_xdp(code, "conformance", "GPL")
        except TargetError as e:
            def where(m):
                i = int(m.group(1))
                return (f"(at insn {origin[i]}:" if i in origin
                        else "(in the wrapper's prolog/epilogue:")
            raise TargetError(re.sub(r"\(at (\d+):", where, str(e))) from None
        try:
            S.map_update(self.result_fd, bytes(4), bytes(8))
            packet = bytes(mem).ljust(ETH_HLEN, b"\0")
            with pinned_cpu():
                retval, _, _ = S.prog_test_run(fd, packet, repeat=1,
                                               out_size=len(packet) + 4096)
        finally:
            os.close(fd)
        r0, = struct.unpack("<Q", S.map_lookup(self.result_fd, bytes(4), 8))
        if retval != r0 & 0xFFFFFFFF:
            raise TargetError(f"conformance epilogue broken: retval 0x{retval:x}, "
                              f"stored r0 0x{r0:x}")
        return r0

    def close(self) -> None:
        if self.result_fd >= 0:
            os.close(self.result_fd)
            self.result_fd = -1

    def __del__(self):
        self.close()


_runner: ConformanceRunner | None = None


def run_conformance_program(program: bytes, mem: bytes = b"") -> int:
    """r0 of one conformance program run in the kernel (see ConformanceRunner.run)."""
    global _runner
    if _runner is None:
        _runner = ConformanceRunner()
    return _runner.run(program, mem)


def calls_unwind(program: bytes) -> bool:
    """Whether the program calls helper 5, the suite's "unwind" (the kernel's helper 5 is
    bpf_ktime_get_ns)."""
    return _calls_helper(program, 5)


# --- the conformance runner contract of sim/conformance.run_dir ---------------------------------
TRAP_VERIFIER = 100   # not a hardware trap code: "the kernel's verifier rejected the program"


@dataclass
class ConformanceResult:
    r0: int
    trap: int = 0
    trap_pc: int = -1
    trap_detail: str = ""


def conformance_runner(jobs) -> list[ConformanceResult]:
    """``runner(jobs)`` for sim.conformance.run_dir: each job (program, mem) run in the kernel;
    a program the kernel rejects comes back with trap TRAP_VERIFIER, trap_pc the suite's
    instruction index the verifier names (-1 when none), and the verifier's reason."""
    out = []
    for program, mem in jobs:
        try:
            out.append(ConformanceResult(run_conformance_program(program, mem)))
        except TargetError as e:
            msg = str(e)
            if msg.startswith("the bpf() syscall is unavailable"):
                raise
            m = re.search(r"\(at insn (\d+):", msg)
            detail = msg.split(": ", 1)[1] if ": " in msg else msg
            out.append(ConformanceResult(0, TRAP_VERIFIER, int(m.group(1)) if m else -1,
                                         f"the kernel's verifier: {detail}"))
    return out
