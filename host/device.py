"""The host library of the XDP engine's control port (hdl/xdp.py; register map in
hdl/control.py and docs/registers.md): the same code drives a board over a UART and the
simulated board over TCP (pyserial's ``socket://127.0.0.1:PORT``).

Transport: LiteX's UART bridge protocol (litex/soc/cores/uart.py): 0x01 write / 0x02 read, a
length byte (words), a 32-bit big-endian word address, big-endian 32-bit words. Commands are
pipelined: a burst read of many words sends every command first and then collects the
answers.

Writes: every write is preceded by the opening of a write window that names exactly its
addresses (R_WIN, R_WIN_CHECK; hdl/control.py), so the engine refuses a write whose address
was garbled on the link; what a write stored is checked by reading it back (map entries,
descriptors, registers) or by the hardware's own CRC (program staging, commit).

Maps: the host works on raw map memory with the hardware's own layout and hash function
(compiler/link.py ``hw_layout``, bpfpga/maphash.py ``key_hash``), with the engine paused (no
core runs a program while the host changes a map; packets wait in their buffers). Records and
status bits are unpacked with bpfpga/records.py, the tables the engine's layouts come from.
"""
from __future__ import annotations

import struct
import time

from bpfpga import records as R
from bpfpga.errors import TargetError
from bpfpga.hdl import control as C

MAX_BURST = 255


class Device:
    """The engine's control port over a transport (host/transport.py): a device path or
    pyserial URL (UART bridge, ``socket://`` for the simulated board), ``udp://HOST[:PORT]``
    (Etherbone), or a ready Transport (``transport=``, e.g. a UartBridge over a FaultyPort)."""

    def __init__(self, url: str | None = None, base: int = 0, timeout: float = 60.0,
                 transport=None, retries: int = 3):
        from bpfpga.host.transport import open_transport
        if transport is None:
            if url is None:
                raise TargetError("no device given (a URL or a transport)")
            transport = open_transport(url, timeout=timeout, retries=retries)
        self.t = transport
        self.base = base
        self.url = url or transport.url
        self.timeout = timeout
        try:
            ident = _stable(lambda: self.reg(C.R_IDENT), url=self.url)
            if ident != C.IDENT:
                raise TargetError(f"{self.url}: not a bpfpga XDP engine (ident 0x{ident:08x})")
            if hasattr(self.t, "canary"):
                self.t.canary = (base + C.REGS + C.R_IDENT, C.IDENT)
            info = _stable(lambda: self.reg(C.R_INFO), url=self.url)
            self.version = _stable(lambda: self.reg(C.R_VERSION), url=self.url)
            if self.version < C.MIN_VERSION:
                raise TargetError(f"{self.url}: the engine's control port is version "
                                  f"{self.version}; this host needs version {C.MIN_VERSION} "
                                  f"(write window, keyed commit) or later: rebuild the gateware")
        except BaseException:
            self.t.close()
            raise
        inf = R.INFO.unpack_int(info)
        self.cores, self.ports, self.max_maps = inf["cores"], inf["ports"], inf["max_maps"]
        self.pm_depth = 1 << inf["log2_pm_depth"]
        self.map_bytes = _stable(lambda: self.reg(C.R_MAP_BYTES), url=self.url)
        self.pkt_bytes = _stable(lambda: self.reg(C.R_PKT_BYTES), url=self.url)
        self.inj_words = _stable(lambda: self.reg(C.R_INJ_WORDS), url=self.url)
        self.out_words = _stable(lambda: self.reg(C.R_OUT_WORDS), url=self.url)
        self.ns_per_cycle = _stable(lambda: self.reg(C.R_NS_PER_CYCLE), url=self.url)
        self.trace_depth = _stable(lambda: self.reg(C.R_TRACE_DEPTH), url=self.url)
        self.helpers, self.map_types = self._capabilities()
        self._inj_wr = self._inj_rd = self._out_rd = None     # ring indexes the host owns

    def close(self):
        self.t.close()

    def _capabilities(self) -> tuple[frozenset[int], frozenset[int]]:
        """(helper ids, map types) the engine was built with: its capability registers
        (version 3); a version-2 engine was always built with everything."""
        from bpfpga.hdl.config import HELPERS, MAP_TYPES
        if self.version < 3:
            return frozenset(HELPERS), frozenset(MAP_TYPES)
        words = [_stable(lambda k=k: self.reg(C.R_HELPERS0 + k), url=self.url)
                 for k in range(C.HELPER_WORDS)]
        mt = _stable(lambda: self.reg(C.R_MAP_TYPES), url=self.url)
        return (frozenset(32 * k + b for k, w in enumerate(words) for b in range(32)
                          if w >> b & 1),
                frozenset(b for b in range(32) if mt >> b & 1))

    # ------------------------------------------------------------------ raw words
    def write(self, addr: int, words) -> None:
        """Write words at a word address, each burst inside a write window opened for exactly
        it (the engine refuses any other write). Nothing is read back here."""
        words = list(words)
        atomic = getattr(self.t, "atomic", None)
        for i in range(0, len(words), MAX_BURST):
            chunk = words[i:i + MAX_BURST]
            a = addr + i
            win = (C.WIN_TAG << 28) | ((len(chunk) - 1) << 20) | (a & 0xFFFFF)
            if atomic is not None:
                with atomic():
                    self.t.write(self.base + C.REGS + C.R_WIN, [win, ~win & 0xFFFFFFFF])
                    self.t.write(self.base + a, chunk)
            else:
                self.t.write(self.base + C.REGS + C.R_WIN, [win, ~win & 0xFFFFFFFF])
                self.t.write(self.base + a, chunk)

    def guard(self) -> tuple[int, int, int]:
        """(writes accepted mod 2^16, writes refused mod 2^8, commits refused mod 2^8)."""
        g = self.reg(C.R_GUARD)
        return g & 0xFFFF, (g >> 16) & 0xFF, g >> 24

    def write_checked(self, addr: int, words, tries: int = 4) -> None:
        """write(), then make sure the engine accepted every word (its count of accepted
        writes moved by exactly that many), else write again: for registers that cannot be
        read back (CHECK, MAPCLR, SEED, COMMIT_KEY). Only for writes that may be repeated."""
        words = list(words)
        for _ in range(tries):
            # a garbled read costs a repetition, nothing more
            ok0 = self.guard()[0]
            self.write(addr, words)
            if (self.guard()[0] - ok0) & 0xFFFF == len(words):
                return
        raise TargetError(f"{self.url}: the engine refused a write at 0x{addr:05x} {tries} "
                          f"times (bad link?)")

    def read(self, addr: int, n: int) -> list[int]:
        if n <= 0:
            return []
        return self.t.read(self.base + addr, n)

    def reg(self, r: int) -> int:
        return self.read(C.REGS + r, 1)[0]

    def set_reg(self, r: int, v: int, verify: bool = False, tries: int = 4) -> None:
        """Write a register; with verify, read it back until it holds v."""
        v &= 0xFFFFFFFF
        for _ in range(tries if verify else 1):
            self.write(C.REGS + r, [v])
            if not verify or _stable(lambda: self.reg(r), url=self.url) == v:
                return
        raise TargetError(f"{self.url}: register {r} did not take its value (bad link?)")

    # ------------------------------------------------------------------ engine control
    def control(self, enable: bool | None = None, capture: bool | None = None,
                clear: bool = False, tries: int = 4) -> None:
        """Set CTRL's ENABLE / CAPTURE (read back until they hold) and pulse CLEAR."""
        mask = C.CTRL_ENABLE | C.CTRL_CAPTURE
        cur = self.reg(C.R_CTRL) & mask
        for _ in range(tries):
            if enable is not None:
                cur = (cur & ~C.CTRL_ENABLE) | (C.CTRL_ENABLE if enable else 0)
            if capture is not None:
                cur = (cur & ~C.CTRL_CAPTURE) | (C.CTRL_CAPTURE if capture else 0)
            if clear:
                self.write_checked(C.REGS + C.R_CTRL, [cur | C.CTRL_CLEAR])
            else:
                self.set_reg(C.R_CTRL, cur)
            got = self.reg(C.R_CTRL)
            if got & mask == cur:
                return
            cur = self.reg(C.R_CTRL) & mask
        raise TargetError(f"{self.url}: the engine's CTRL register did not take its value "
                          f"(bad link?)")

    def pause(self, timeout: float = 5.0) -> None:
        """Stop starting programs and wait until no core runs one."""
        self.control(enable=False)
        t0 = time.time()
        while not self.reg(C.R_STATUS) & R.STATUS.mask("idle"):
            if time.time() - t0 > timeout:
                raise TargetError(f"{self.url}: the engine did not become idle")

    def resume(self) -> None:
        self.control(enable=True)

    def counters(self) -> list[int]:
        return self.read(C.COUNTERS, C.N_COUNTERS)

    # ------------------------------------------------------------------ program load
    def load_program(self, code: bytes, retries: int = 3) -> None:
        """Stage the image, check the hardware's CRC-32 of it against ours, then commit it
        (between packets, all at once). A load that does not check leaves the running
        program as it was."""
        self.stage_program(code, retries)
        self.commit_program(code)

    def _image_words(self, code: bytes):
        import zlib
        if len(code) % 8:
            raise TargetError("program image is not a whole number of slots")
        n = len(code) // 8
        if n > self.pm_depth:
            raise TargetError(f"program image of {n} slots does not fit the program memory "
                              f"({self.pm_depth} slots)")
        return n, struct.unpack(f"<{2 * n}I", code), zlib.crc32(code) & 0xFFFFFFFF

    def staged_crc(self, n: int) -> int:
        """The hardware's CRC-32 of staging slots [0, n)."""
        self.write_checked(C.REGS + C.R_CHECK, [n])
        self._wait_idle(R.STATUS.mask("check_busy"), n, "the program check")
        return self.reg(C.R_CRC)

    def stage_program(self, code: bytes, retries: int = 8, chunk: int = 64) -> int:
        """Write the image to staging a chunk at a time; after each chunk the hardware's CRC
        of the staged prefix must equal ours (zlib.crc32 of the same prefix), else the chunk
        is written again, halved (down to 8 slots: a bad link garbles a long burst more
        often than a short one). The running program is untouched. Returns the slot count."""
        import zlib
        n, words, want = self._image_words(code)
        got = exp = None
        s = 0
        while s < n:
            for _ in range(retries):
                e = min(n, s + chunk)
                exp = zlib.crc32(code[:8 * e]) & 0xFFFFFFFF
                self.write(C.PM_STAGE + 2 * s, words[2 * s:2 * e])
                try:
                    got = self.staged_crc(e)
                except TargetError:
                    got = None
                if got == exp:
                    break
                chunk = max(8, chunk // 2)
            else:
                shown = "no answer" if got is None else f"CRC 0x{got:08x}"
                raise TargetError(f"{self.url}: program load failed its check {retries} "
                                  f"times at slots {s}..{e - 1} ({shown}, expected "
                                  f"0x{exp:08x}); the running program is unchanged")
            s = e
        return n

    def commit_program(self, code: bytes, tries: int = 4) -> None:
        """Check staging once more against the image, then commit it between packets with the
        image's CRC as the key: the engine computes the CRC of staging [0, n) itself and
        commits only if it equals the key (else it refuses, and this retries)."""
        n, _, want = self._image_words(code)
        got = self.staged_crc(n)
        if got != want:
            raise TargetError(f"{self.url}: staged program changed before its commit (CRC "
                              f"0x{got:08x}, expected 0x{want:08x}); not committed")
        for _ in range(tries):
            before = _stable(lambda: self.reg(C.R_COMMITS), url=self.url)
            self.write_checked(C.REGS + C.R_COMMIT_KEY, [want])
            self.set_reg(C.R_COMMIT, n)
            self._wait_idle(R.STATUS.mask("commit_busy"),
                            2 * n + _stable(lambda: self.reg(C.R_BUDGET), url=self.url),
                            "the program commit")
            if _stable(lambda: self.reg(C.R_COMMITS), url=self.url) != before and \
                    _stable(lambda: self.reg(C.R_PROG_CRC), url=self.url) == want:
                return
        raise TargetError(f"{self.url}: the engine refused the commit {tries} times (its CRC "
                          f"of staging did not equal 0x{want:08x}; bad link?)")

    def clear_map_memory(self, n: int) -> None:
        """Zero map memory bytes [0, n) in hardware (8 bytes an access)."""
        self.write_checked(C.REGS + C.R_MAPCLR, [(n + 7) & ~7])
        self._wait_idle(R.STATUS.mask("mapclr_busy"), n // 8, "clearing map memory")

    def _wait_idle(self, bit: int, cycles: int, what: str) -> None:
        """Wait until STATUS `bit` clears (work of about `cycles` engine cycles); a simulation
        on a loaded machine may take long, so at least a minute."""
        t0 = time.time()
        limit = max(6 * self.timeout, 60.0)
        while self.reg(C.R_STATUS) & bit:
            if time.time() - t0 > limit:
                raise TargetError(f"{self.url}: {what} did not finish")

    def set_descriptors(self, descs: list[list[int]], map_len: int) -> None:
        if len(descs) > self.max_maps:
            raise TargetError(f"{len(descs)} maps; the engine holds {self.max_maps}")
        words = [w for d in descs for w in d]
        if words:
            self.write(C.MAPDESC, words)
        self.set_reg(C.R_NMAPS, len(descs), verify=True)
        self.set_reg(C.R_MAP_LEN, map_len, verify=True)

    # ------------------------------------------------------------------ map memory (bytes)
    def mem_read(self, off: int, n: int) -> bytes:
        a = off & ~3
        e = (off + n + 3) & ~3
        words = self.read(C.MAPMEM + a // 4, (e - a) // 4)
        raw = struct.pack(f"<{len(words)}I", *words)
        return raw[off - a:off - a + n]

    def mem_write(self, off: int, data: bytes) -> None:
        if not data:
            return
        a = off & ~3
        e = (off + len(data) + 3) & ~3
        if a != off or e != off + len(data):
            cur = bytearray(self.mem_read(a, e - a))
            cur[off - a:off - a + len(data)] = data
            data = bytes(cur)
        self.write(C.MAPMEM + a // 4, struct.unpack(f"<{len(data) // 4}I", data))

    # ------------------------------------------------------------------ packets
    def inject(self, frames: list[tuple[bytes, int]]) -> None:
        """Queue frames (bytes, in_port) into the inject ring; the engine takes them at its
        line rate, back to back. Waits for room."""
        if self._inj_wr is None:
            self._inj_wr = self.reg(C.R_INJ_WR)
            self._inj_rd = self.reg(C.R_INJ_RD)
        wr = self._inj_wr
        pend = []
        for frame, port in frames:
            nw = 1 + max(1, (len(frame) + 7) // 8)     # the engine reads >= 1 data word
            if nw > self.inj_words:
                raise TargetError(f"frame of {len(frame)} bytes exceeds the inject ring")
            t0 = time.time()
            while self.inj_words - ((wr - self._inj_rd) & 0xFFFF) < nw:
                if pend:
                    self.set_reg(C.R_INJ_WR, wr)
                    pend = []
                self._inj_rd = self.reg(C.R_INJ_RD)
                if time.time() - t0 > self.timeout:
                    raise TargetError(f"{self.url}: the inject ring does not drain")
            body = frame.ljust((nw - 1) * 8, b"\0")
            words64 = R.INJ_HDR.pack(len=len(frame), in_port=port) + \
                list(struct.unpack(f"<{nw - 1}Q", body))
            self._ring_write(wr, words64)
            wr = (wr + nw) & 0xFFFF
            pend.append(nw)
        self.set_reg(C.R_INJ_WR, wr)
        self._inj_wr = wr

    def _ring_write(self, start: int, words64: list[int]) -> None:
        depth = self.inj_words
        i = 0
        while i < len(words64):
            pos = (start + i) % depth
            n = min(len(words64) - i, depth - pos)
            flat = []
            for w in words64[i:i + n]:
                flat += [w & 0xFFFFFFFF, w >> 32]
            self.write(C.INJ_RING + 2 * pos, flat)
            i += n

    def _ring_read(self, start: int, n: int) -> list[int]:
        depth = self.out_words
        out = []
        i = 0
        while i < n:
            pos = (start + i) % depth
            k = min(n - i, depth - pos)
            flat = self.read(C.OUT_RING + 2 * pos, 2 * k)
            out += [flat[2 * j] | flat[2 * j + 1] << 32 for j in range(k)]
            i += k
        return out

    def _busy_cycles(self) -> list[int]:
        return self.read(C.COUNTERS + C.C_BUSY, self.cores)

    def results(self, want: int = 1, timeout: float = 30.0) -> list[dict]:
        """Read `want` records from the output ring (waiting for them). The wait ends with
        an error after `timeout` seconds in which no record came and no core ran: a packet
        that runs long (a simulated engine runs some 16,000 instructions a second, so a loop
        takes a minute to reach the instruction budget) is waited for while its core runs."""
        recs = []
        if self._out_rd is None:
            self._out_rd = self.reg(C.R_OUT_RD)
        rd = self._out_rd
        t0 = time.time()
        busy = None
        while len(recs) < want:
            wr = self.reg(C.R_OUT_WR)
            if wr == rd:
                if time.time() - t0 > timeout:
                    now = self._busy_cycles()
                    if busy is not None and now == busy or busy is None and \
                            self.reg(C.R_STATUS) & R.STATUS.mask("idle"):
                        raise TargetError(f"{self.url}: no result after {timeout} s "
                                          f"(no core running)")
                    busy, t0 = now, time.time()
                continue
            avail = (wr - rd) & 0xFFFF
            words = self._ring_read(rd, avail)
            i = 0
            while i < len(words):
                rec = R.RING_HDR.unpack(words[i:i + C.HDR_WORDS])
                ln = rec["len"]
                nb = (ln + 7) // 8
                i += C.HDR_WORDS
                body = b"".join(w.to_bytes(8, "little") for w in words[i:i + nb])
                rec["packet"] = body[:ln]
                recs.append(rec)
                i += nb
            rd = (rd + avail) & 0xFFFF
            self.set_reg(C.R_OUT_RD, rd)
            self._out_rd = rd
        return recs

    # ------------------------------------------------------------------ trace FIFO
    def trace_records(self) -> list[dict]:
        """Every record waiting in the trace FIFO (trace_printk calls, oldest first), and
        frees them. Layout: bpfpga/records.py TRACE_REC."""
        if not self.trace_depth:
            raise TargetError(f"{self.url}: the engine has no trace unit (built with "
                              f"trace_depth 0): trace_printk prints nothing there")
        wr = self.reg(C.R_TRACE_WR)
        rd = self.reg(C.R_TRACE_RD)
        n = (wr - rd) & 0xFFFF
        if n > self.trace_depth:
            raise TargetError(f"{self.url}: trace FIFO indexes out of range (written {wr}, "
                              f"read {rd}, depth {self.trace_depth})")
        recs = []
        for i in range(n):
            slot = (rd + i) % self.trace_depth
            flat = self.read(C.TRACE + 2 * C.TRACE_SLOT_WORDS * slot, 2 * C.TRACE_REC_WORDS)
            w = [flat[2 * j] | flat[2 * j + 1] << 32 for j in range(C.TRACE_REC_WORDS)]
            rec = R.TRACE_REC.unpack(w)
            rec["args"] = [rec.pop(f"arg{k}") for k in range(3)]
            recs.append(rec)
        if n:
            self.set_reg(C.R_TRACE_RD, wr)
        return recs

    def trace_text(self, rec: dict) -> str:
        """The line a trace record prints: the format string and %s strings are read from
        map memory now (.rodata, where clang puts bpf_printk's formats, is a map); ones that
        lie elsewhere (the stack, the packet) are gone by now and print as a marker."""
        from bpfpga import memmap
        from bpfpga.printk import STR_MAX, bprintf

        def in_maps(a, n):
            return memmap.MAP_BASE <= a and a + n <= memmap.MAP_BASE + self.map_bytes

        fmt, size = rec["fmt"], rec["fmt_size"]
        if not in_maps(fmt, size):
            return f"<trace_printk format at 0x{fmt:08x}: not in map memory>"

        def read_str(a):
            if not in_maps(a, 1):
                return f"<%s at 0x{a:x}>".encode()
            raw = self.mem_read(a - memmap.MAP_BASE,
                                min(STR_MAX, memmap.MAP_BASE + self.map_bytes - a))
            return raw.split(b"\0", 1)[0]

        text = bprintf(self.mem_read(fmt - memmap.MAP_BASE, size), rec["args"], read_str)
        return "<trace_printk: bad format>" if text is None else text


# ---------------------------------------------------------------------------- maps
EINVAL, ENOENT, E2BIG, EEXIST = 22, 2, 7, 17


class MapError(TargetError):
    def __init__(self, errno: int, msg: str):
        super().__init__(msg)
        self.errno = errno


class DeviceMap:
    """One map of a loaded image, read and written through raw map memory with the hardware's
    layout (compiler/link.py hw_layout) and hash (bpfpga/maphash.py key_hash). Call with the
    engine paused (Device.pause)."""

    def __init__(self, dev: Device, region, ncpus: int):
        from bpfpga.compiler.link import HW_HASH, HW_LPM
        from bpfpga.memmap import MAP_BASE
        self.dev, self.r, self.md = dev, region, region.md
        self.ncpus = region.cpus
        self.off = region.base - MAP_BASE
        self.koff = region.key_base - MAP_BASE if region.key_base else 0
        self.moff = region.meta_base - MAP_BASE if region.meta_base else 0
        self.is_hash = self.md.type in HW_HASH
        self.is_lpm = self.md.type == HW_LPM
        self.lru = self.md.type in (9, 10)

    # ---- raw slots
    def _vaddr(self, slot: int, cpu: int = 0) -> int:
        return self.off + (cpu * self.r.slots + slot) * self.r.stride

    def _read_val(self, slot: int):
        vs = self.md.value_size
        if self.md.percpu:
            return [self.dev.mem_read(self._vaddr(slot, c), vs) for c in range(self.ncpus)]
        return self.dev.mem_read(self._vaddr(slot), vs)

    def _write_val(self, slot: int, value) -> None:
        vs = self.md.value_size
        vals = value if isinstance(value, (list, tuple)) else [value] * self.ncpus
        if self.md.percpu and len(vals) != self.ncpus:
            # the kernel's per-CPU lists may be longer (possible CPUs) or shorter: the
            # engine's cores take the first values, the others zero
            vals = (list(vals) + [bytes(vs)] * self.ncpus)[:self.ncpus]
        for c in range(self.ncpus if self.md.percpu else 1):
            v = bytes(vals[c])
            if len(v) != vs:
                raise MapError(EINVAL, f"map '{self.md.name}': value is {len(v)} bytes, "
                                       f"expected {vs}")
            self.dev.mem_write(self._vaddr(slot, c), v.ljust(self.r.stride, b"\0"))

    def _key(self, key: bytes) -> bytes:
        key = bytes(key)
        if len(key) != self.md.key_size:
            raise MapError(EINVAL, f"map '{self.md.name}': key is {len(key)} bytes, expected "
                                   f"{self.md.key_size}")
        return key

    def _count(self) -> int:
        return int.from_bytes(self.dev.mem_read(self.moff, 4), "little")

    def _set_count(self, n: int) -> None:
        self.dev.mem_write(self.moff, n.to_bytes(4, "little"))

    def _states(self) -> bytes:
        return self.dev.mem_read(self.moff + 8, self.r.slots)

    def _slot_key(self, slot: int) -> bytes:
        return self.dev.mem_read(self.koff + slot * self.r.key_stride, self.md.key_size)

    def _find(self, key: bytes):
        """(slot or None, first free slot or None) along the key's probe sequence."""
        from bpfpga.maphash import key_hash
        n = self.r.slots
        s = key_hash(key) & (n - 1)
        free = None
        block = {}
        for _ in range(n):
            if s not in block:
                b0 = s - s % 64
                chunk = self.dev.mem_read(self.moff + 8 + b0, min(64, n - b0))
                block.update({b0 + i: v for i, v in enumerate(chunk)})
            st = block[s]
            if st == 0:
                return None, (free if free is not None else s)
            if st == 1:
                if self._slot_key(s) == key:
                    return s, free
            elif free is None:
                free = s
            s = (s + 1) & (n - 1)
        return None, free

    # ---- the Target interface's map operations
    def lookup(self, key: bytes):
        key = self._key(key)
        if self.is_hash:
            s, _ = self._find(key)
            return None if s is None else self._read_val(s)
        if self.is_lpm:
            best = self._lpm_match(key)
            return None if best is None else self._read_val(best)
        i = int.from_bytes(key[:4], "little")
        if i >= self.md.max_entries:
            return None
        if self.md.type == 14:
            return self._read_val(i) if self._states()[i] == 1 else None
        return self._read_val(i)

    def update(self, key: bytes, value, flags: int = 0) -> None:
        key = self._key(key)
        name = self.md.name
        if self.md.type == 13 and isinstance(value, int):
            value = value.to_bytes(4, "little")     # HASH_OF_MAPS: an inner map handle
        if self.is_hash:
            if flags & ~7 or flags & 3 == 3:
                raise MapError(EINVAL, f"map '{name}': bad flags {flags}")
            s, free = self._find(key)
            if s is not None:
                if flags & 3 == 1:
                    raise MapError(EEXIST, f"map '{name}': key exists")
                self._write_val(s, value)
                return
            if flags & 3 == 2:
                raise MapError(ENOENT, f"map '{name}': no such key")
            cnt = self._count()
            if cnt >= self.md.max_entries or free is None:
                raise MapError(E2BIG, f"map '{name}' is full ({self.md.max_entries})")
            self.dev.mem_write(self.koff + free * self.r.key_stride,
                               key.ljust(self.r.key_stride, b"\0"))
            self._write_val(free, value)
            self.dev.mem_write(self.moff + 8 + free, b"\x01")
            self._set_count(cnt + 1)
            return
        if self.is_lpm:
            plen = int.from_bytes(key[:4], "little")
            if plen > (self.md.key_size - 4) * 8:
                raise MapError(EINVAL, f"map '{name}': prefix length {plen}")
            ents = self._lpm_entries()
            canon = self._lpm_canon(key)
            for i, k in enumerate(ents):
                if self._lpm_canon(k) == canon:
                    if flags == 1:
                        raise MapError(EEXIST, f"map '{name}': key exists")
                    break
            else:
                if flags == 2:
                    raise MapError(ENOENT, f"map '{name}': no such key")
                if len(ents) >= self.md.max_entries:
                    raise MapError(28, f"map '{name}' is full")
                i = len(ents)
                self._set_count(i + 1)
            self.dev.mem_write(self.koff + i * self.r.key_stride,
                               key.ljust(self.r.key_stride, b"\0"))
            self._write_val(i, value)
            return
        i = int.from_bytes(key[:4], "little")
        if i >= self.md.max_entries:
            raise MapError(E2BIG, f"map '{name}': index out of range")
        if self.md.type == 2 or self.md.type == 6:
            if flags & ~4 > 2:
                raise MapError(EINVAL, f"map '{name}': bad flags {flags}")
            if flags & 1:
                raise MapError(EEXIST, f"map '{name}': array entries always exist")
            self._write_val(i, value)
            return
        # slot maps: PROG_ARRAY (program number + 1), ARRAY_OF_MAPS (handle), DEVMAP (value)
        if self.md.type == 14:
            self.dev.mem_write(self._vaddr(i), bytes(value)[:8].ljust(8, b"\0"))
            self.dev.mem_write(self.moff + 8 + i, b"\x01")
        else:
            self.dev.mem_write(self._vaddr(i), int(value).to_bytes(8, "little"))

    def delete(self, key: bytes) -> None:
        key = self._key(key)
        name = self.md.name
        if self.is_hash:
            s, _ = self._find(key)
            if s is None:
                raise MapError(ENOENT, f"map '{name}': no such key")
            self.dev.mem_write(self.moff + 8 + s, b"\x02")
            self._set_count(self._count() - 1)
            return
        if self.is_lpm:
            ents = self._lpm_entries()
            canon = self._lpm_canon(key)
            for i, k in enumerate(ents):
                if self._lpm_canon(k) == canon:
                    last = len(ents) - 1
                    if i != last:
                        self.dev.mem_write(self.koff + i * self.r.key_stride,
                                           ents[last].ljust(self.r.key_stride, b"\0"))
                        self._write_val(i, self._read_val(last))
                    self._set_count(last)
                    return
            raise MapError(ENOENT, f"map '{name}': no such key")
        if self.md.type in (3, 12, 14):
            i = int.from_bytes(key[:4], "little")
            if i >= self.md.max_entries:
                raise MapError(E2BIG, f"map '{name}': index out of range")
            self.dev.mem_write(self._vaddr(i), bytes(8))
            if self.md.type == 14:
                self.dev.mem_write(self.moff + 8 + i, b"\x00")
            return
        raise MapError(EINVAL, f"map '{name}': delete is not supported by {self.md.type_name}")

    def dump(self) -> list:
        if self.is_hash:
            st = self._states()
            valid = [i for i, v in enumerate(st) if v == 1]
            if not valid:
                return []
            bulk = len(valid) > max(16, self.r.slots // 8)     # else slot by slot
            keys = self.dev.mem_read(self.koff, self.r.key_stride * self.r.slots) \
                if bulk else None
            vals_all = None
            if bulk:
                span = self.r.stride * self.r.slots * self.r.cpus
                vals_all = self.dev.mem_read(self.off, span)
            out = []
            for s in valid:
                if keys is not None:
                    k = keys[s * self.r.key_stride:s * self.r.key_stride + self.md.key_size]
                else:
                    k = self._slot_key(s)
                if vals_all is not None:
                    def one(c):
                        o = (c * self.r.slots + s) * self.r.stride
                        return vals_all[o:o + self.md.value_size]
                    v = [one(c) for c in range(self.ncpus)] if self.md.percpu else one(0)
                else:
                    v = self._read_val(s)
                out.append((k, v))
            return out
        if self.is_lpm:
            return [(k, self._read_val(i)) for i, k in enumerate(self._lpm_entries())]
        n = self.md.max_entries
        span = self.r.stride * self.r.slots * self.r.cpus
        raw = self.dev.mem_read(self.off, span)
        out = []
        for i in range(n):
            if self.md.percpu:
                v = [raw[(c * self.r.slots + i) * self.r.stride:][:self.md.value_size]
                     for c in range(self.ncpus)]
            else:
                v = raw[i * self.r.stride:][:self.md.value_size]
            out.append((i.to_bytes(4, "little"), v))
        return out

    # ---- LPM helpers
    def _lpm_entries(self) -> list[bytes]:
        n = self._count()
        if not n:
            return []
        raw = self.dev.mem_read(self.koff, n * self.r.key_stride)
        return [raw[i * self.r.key_stride:i * self.r.key_stride + self.md.key_size]
                for i in range(n)]

    def _lpm_canon(self, key: bytes):
        plen = int.from_bytes(key[:4], "little")
        v = int.from_bytes(key[4:], "big")
        bits = (len(key) - 4) * 8
        m = ((1 << plen) - 1) << (bits - plen) if plen else 0
        return plen, v & m

    def _lpm_match(self, key: bytes):
        bits = (len(key) - 4) * 8
        plen = min(int.from_bytes(key[:4], "little"), bits)
        data = int.from_bytes(key[4:], "big")
        best = None
        for i, k in enumerate(self._lpm_entries()):
            p, d = self._lpm_canon(k)
            m = ((1 << p) - 1) << (bits - p) if p else 0
            if p <= plen and (data & m) == d and (best is None or p > best[0]):
                best = (p, i)
        return None if best is None else best[1]


# ---------------------------------------------------------------------------- loaded objects
# What is loaded is recorded on the device itself, in the top META_BYTES of map memory (above
# every map: the layout is linked into map_bytes - META_BYTES, and programs reach only the
# value window below MAP_LEN): "BPFM", u32 length, u32 CRC-32, then JSON naming the object
# (absolute path, SHA-256), its program and map sizes. Any host can then rebuild the map layout
# from the object (compiler/link.py hw_layout is deterministic) and checks it against the
# descriptors the device holds.
META_BYTES = 4096
META_MAGIC = b"BPFM"


def meta_offset(dev: Device) -> int:
    return dev.map_bytes - META_BYTES


def read_meta(dev: Device) -> dict | None:
    import json
    import zlib
    off = meta_offset(dev)
    head = dev.mem_read(off, 12)
    if head[:4] != META_MAGIC:
        return None
    n, crc = struct.unpack("<II", head[4:12])
    if n > META_BYTES - 12:
        return None
    body = dev.mem_read(off + 12, n)
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def write_meta(dev: Device, meta: dict | None, retries: int = 3) -> None:
    import json
    import zlib
    off = meta_offset(dev)
    if meta is None:
        dev.mem_write(off, bytes(12))
        return
    body = json.dumps(meta, sort_keys=True).encode()
    if len(body) > META_BYTES - 12:
        raise TargetError("load record too long for the device's metadata area")
    blob = META_MAGIC + struct.pack("<II", len(body), zlib.crc32(body) & 0xFFFFFFFF) + body
    for _ in range(retries):
        dev.mem_write(off, blob)
        if _stable(lambda: read_meta(dev), url=dev.url) == json.loads(body):
            return
    raise TargetError(f"{dev.url}: could not record the loaded object on the device")


def _same_value(got, want) -> bool:
    if isinstance(want, (list, tuple)):
        return isinstance(got, list) and all(bytes(g) == bytes(w) for g, w in zip(got, want))
    if isinstance(got, list):
        return all(bytes(g) == bytes(want) for g in got)
    if isinstance(want, int):
        return got is not None and int.from_bytes(bytes(got), "little") == \
            want & ((1 << (8 * len(got))) - 1)
    return got is not None and bytes(got) == bytes(want)


def _stable(fn, tries: int = 6, url: str | None = None):
    """fn() read until two reads agree: a reply garbled on the link does not pass
    for the device's state."""
    seen = [fn()]
    for _ in range(tries):
        cur = fn()
        if cur in seen:
            return cur
        seen.append(cur)
    raise TargetError(f"{url or 'the device'}: reads of the device do not agree (bad link?)")


def verified_update(dm: DeviceMap, key: bytes, value, flags: int = 0,
                    retries: int = 8) -> None:
    """DeviceMap.update, then read back (every read twice, until they agree): the entry must
    hold the value under the key, and a hash table must gain no other valid slot (a write
    garbled on the link could otherwise leave an entry under a wrong key). Such a slot is
    made invalid again and the update retried; after `retries` failures a TargetError. Call
    with the engine paused."""
    name = dm.md.name
    key = bytes(key)
    err = None
    for _ in range(retries):
        before = _stable(dm._states, url=dm.dev.url) if dm.is_hash else None
        try:
            dm.update(key, value, flags)
            err = None
        except MapError as e:
            # a garbled read (the count, a slot) can look like a full map or an existing
            # key: read again; the same answer every time is the map's own
            err = e
            continue
        ok = _same_value(_stable(lambda: dm.lookup(key), url=dm.dev.url), value)
        if dm.is_hash:
            after = _stable(dm._states, url=dm.dev.url)
            s, _ = _stable(lambda: dm._find(key), url=dm.dev.url)
            for i, (b, a) in enumerate(zip(before, after)):
                if i == s or a == b:
                    continue
                ok = False
                if a == 1:                       # valid without reason: invalidate it
                    dm.dev.mem_write(dm.moff + 8 + i, bytes([b if b != 1 else 2]))
            ok = ok and s is not None and \
                _stable(lambda: dm._slot_key(s), url=dm.dev.url) == key
            if not ok and s is not None and before[s] != 1:
                dm.dev.mem_write(dm.moff + 8 + s, bytes([before[s]]))
            valid = sum(1 for v in _stable(dm._states, url=dm.dev.url) if v == 1)
            if _stable(dm._count, url=dm.dev.url) != valid:
                dm._set_count(valid)
                ok = False
        if ok:
            return
        flags &= ~1                                # a retry may find its own earlier write
    if err is not None:
        raise err
    raise TargetError(f"{dm.dev.url}: map '{name}': update did not verify after {retries} "
                      f"tries (bad link?); the entry was not written")


def _final_check(ld, entries: dict, rounds: int = 4) -> None:
    """Before the commit: every map of `entries` read back whole (until two reads agree) must
    hold exactly its entries: a later garbled write (or a read-modify-write of a neighbour's
    state byte) can have spoiled an entry verified earlier or left one nobody wrote. Extra
    hash slots are invalidated, other entries written again; else a TargetError."""
    url = ld.dev.url
    for _ in range(rounds):
        clean = True
        for name, lst in entries.items():
            dm = ld.maps[name]
            want = {bytes(k): v for k, v in lst if not isinstance(v, tuple)}
            got = _stable(lambda: [(bytes(k), v) for k, v in dm.dump()], url=url)
            have = dict(got)
            for k, v in want.items():
                if not _same_value(have.get(k), v):
                    clean = False
                    verified_update(dm, k, v)
            extra = [k for k, v in got if k not in want and
                     (dm.is_hash or any(bytes(x) != bytes(len(bytes(x)))
                                        for x in (v if isinstance(v, list) else [v])))]
            if extra and dm.is_hash:
                clean = False
                st = _stable(dm._states, url=url)
                for i, state in enumerate(st):
                    if state == 1 and _stable(lambda: dm._slot_key(i), url=url) in extra:
                        dm.dev.mem_write(dm.moff + 8 + i, b"\x02")
                dm._set_count(sum(1 for v in _stable(dm._states, url=url) if v == 1))
            elif extra and dm.md.type in (2, 6) and \
                    all(len(k) == 4 for k in extra):
                clean = False
                for k in extra:
                    dm._write_val(int.from_bytes(k, "little"), bytes(dm.md.value_size))
        if clean:
            return
    raise TargetError(f"{url}: maps did not read back as loaded after {rounds} rounds (bad "
                      f"link?); not committed")


def _bulk_array(dm: DeviceMap, lst) -> list:
    """Write plain array entries back to back, read the map back once, and return the entries
    that do not read back as written (for verified_update one by one)."""
    todo = []
    for key, val in lst:
        i = int.from_bytes(bytes(key)[:4], "little")
        if isinstance(val, tuple) or i >= dm.md.max_entries or len(bytes(key)) != 4:
            todo.append((key, val))
            continue
        dm._write_val(i, val)
    got = dict(dm.dump())        # a garbled read only sends an entry to verified_update
    return todo + [(k, v) for k, v in lst if not isinstance(v, tuple) and
                   (k, v) not in todo and not _same_value(got.get(bytes(k)), v)]


class Loaded:
    """The object a device runs, rebuilt on the host: its image, maps (DeviceMap by name)
    and program numbers."""

    def __init__(self, dev: Device, obj, prog: str | None = None):
        from bpfpga.compiler.link import hw_layout
        from bpfpga.errors import LoadError
        from bpfpga.sim.rtl_xdp import link_image
        from bpfpga.compiler.select import xdp_view
        from bpfpga.compiler.check import check_readonly
        obj = xdp_view(obj)
        self.dev, self.obj = dev, obj
        try:
            self.entry = obj.program(prog)
        except (KeyError, IndexError):
            raise LoadError(f"{obj.path}: {obj.program_choices(prog)}") from None
        check_readonly(obj, self.entry)
        self.image, self.map_len = hw_layout(obj, dev.cores, meta_offset(dev))
        self.code, self.prog_no, self.spans = link_image(obj, self.entry, self.image)
        self.maps = {r.md.name: DeviceMap(dev, r, dev.cores) for r in self.image.regions}

    def descriptors(self) -> list[list[int]]:
        from bpfpga.compiler.link import hw_descriptor
        return [hw_descriptor(r) for r in self.image.regions]

    def map(self, name: str) -> DeviceMap:
        m = self.maps.get(name)
        if m is None:
            raise TargetError(f"no map named '{name}' in the loaded object (maps: "
                              f"{', '.join(self.maps) or 'none'})")
        return m

    def check_device(self) -> None:
        """The device's descriptors must be the ones this object links to."""
        want = self.descriptors()
        got = self.dev.read(C.MAPDESC, 8 * len(want)) if want else []
        flat = [w & 0xFFFFFFFF for d in want for w in d]
        if got != flat or self.dev.reg(C.R_NMAPS) != len(want) or \
                self.dev.reg(C.R_MAP_LEN) != self.map_len:
            raise TargetError(f"{self.dev.url}: the device's map descriptors do not match "
                              f"{self.obj.path}; load it again")


def check_capabilities(dev: Device, obj) -> None:
    """Refuse (LoadError), before anything is written, an object the device's engine cannot
    run: a program calling a helper it was not built with, a map of a type it was not built
    with (its capability registers, Device.helpers / map_types), keys beyond the helper
    unit's 64 bytes."""
    from bpfpga.errors import LoadError
    from bpfpga.helpers import HELPER_NAMES
    from bpfpga.obj import MAP_TYPE_NAMES
    for p in obj.programs:
        for h in p.helpers:
            if h not in dev.helpers:
                raise LoadError(f"{obj.path}: program '{p.name}' calls helper "
                                f"bpf_{HELPER_NAMES.get(h, str(h))} ({h}), which the engine "
                                f"of {dev.url} was not built with")
    for md in obj.maps:
        if md.type not in dev.map_types:
            users = [p.name for p in obj.programs if md.name in p.maps_used]
            used = f" (used by program '{users[0]}')" if users else ""
            have = ", ".join(MAP_TYPE_NAMES.get(t, str(t)) for t in sorted(dev.map_types))
            raise LoadError(f"{obj.path}: map '{md.name}'{used} is a {md.type_name} map, a "
                            f"type the engine of {dev.url} was not built with (it has: "
                            f"{have or 'none'})")
        if md.key_size > 64:
            raise LoadError(f"map '{md.name}': keys of {md.key_size} bytes exceed the "
                            f"helper unit's 64")


def install(dev: Device, obj, prog: str | None = None, entries: dict | None = None,
            budget: int | None = None, meta_extra: dict | None = None) -> Loaded:
    """Load an object onto a device: stage the program and check its CRC (the running
    program is untouched until then), pause, write the map descriptors, clear map memory,
    initialize maps (global data, program arrays, `entries` as from maps.json) with every
    entry read back, check staging once more, commit, record the load, resume."""
    import hashlib
    import os
    from bpfpga import memmap
    from bpfpga.errors import LoadError
    from bpfpga.obj import MAP_IN_MAP_TYPES, BPF_MAP_TYPE_PROG_ARRAY
    from bpfpga.compiler.select import xdp_view
    obj = xdp_view(obj)
    check_capabilities(dev, obj)
    names = {m.name: m for m in obj.maps}
    for name in (entries or {}):
        if name not in names:
            raise LoadError(f"maps file names map '{name}', which {obj.path} does not have "
                            f"(maps: {', '.join(names)})")
    ld = Loaded(dev, obj, prog)
    dev.stage_program(ld.code)
    dev.pause()
    write_meta(dev, None)
    descs = ld.descriptors()
    for _ in range(3):
        dev.set_descriptors(descs, ld.map_len)
        try:
            ld.check_device()
            break
        except TargetError:
            continue
    else:
        raise TargetError(f"{dev.url}: map descriptors did not verify; the engine is left "
                          f"paused, load again")
    dev.clear_map_memory(ld.image.size)
    dev.set_reg(C.R_BUDGET, budget or memmap.INSN_BUDGET, verify=True)
    for r in ld.image.regions:
        md = r.md
        dm = ld.maps[md.name]
        if md.data is not None:
            verified_update(dm, b"\0\0\0\0",
                            bytes(md.data).ljust(md.value_size, b"\0")[:md.value_size])
        for idx, target in md.init_slots.items():
            key = int(idx).to_bytes(4, "little")
            if md.type == BPF_MAP_TYPE_PROG_ARRAY:
                verified_update(dm, key, ld.prog_no[target] + 1)
            elif md.type in MAP_IN_MAP_TYPES:
                verified_update(dm, key, ld.image.region(target).handle)
    for name, lst in (entries or {}).items():
        dm = ld.maps[name]
        if dm.md.type in (2, 6):
            lst = _bulk_array(dm, lst)         # the entries that did not verify in bulk
        for key, val in lst:
            if isinstance(val, tuple):
                kind, what = val
                if kind == "prog":
                    val = ld.prog_no[what] + 1
                else:
                    val = ld.image.region(what).handle
            verified_update(dm, key, val)
    _final_check(ld, entries or {})
    dev.commit_program(ld.code)
    meta = {"object": os.path.abspath(obj.path),
            "sha256": hashlib.sha256(open(obj.path, "rb").read()).hexdigest(),
            "program": ld.entry.name, "section": ld.entry.section,
            "slots": len(ld.code) // 8, "maps": list(ld.maps),
            "loaded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    meta.update(meta_extra or {})
    try:
        write_meta(dev, meta)
    except TargetError as e:
        raise TargetError(f"{e}: {obj.path} is committed and its maps verified, but the engine "
                          f"is left paused (host tools need the record); load it again") from None
    dev.control(clear=True)
    dev.resume()
    return ld


def open_loaded(dev: Device) -> tuple[Loaded, dict]:
    """The object the device runs (from its load record), checked against the device."""
    import hashlib
    from bpfpga.compiler.elf import load_object
    meta = read_meta(dev)
    if meta is None:
        raise TargetError(f"{dev.url}: no program loaded by bpfpga (no load record on the "
                          f"device); run `bpfpga prog load OBJ`")
    path = meta["object"]
    try:
        data = open(path, "rb").read()
    except OSError as e:
        raise TargetError(f"{dev.url} runs {path}, which this host cannot read "
                          f"({e.strerror}); maps need the object's layout") from None
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise TargetError(f"{path} changed since it was loaded onto {dev.url}; load it again")
    obj = load_object(path, map_sizes=meta.get("map_sizes") or {})
    ld = Loaded(dev, obj, meta["program"])
    ld.check_device()
    return ld, meta
