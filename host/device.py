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

import contextlib
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
                 transport=None, retries: int = 3, reopen=None):
        from bpfpga.host.transport import open_transport
        # a new transport after the link broke (reopen()): the URL's again, or `reopen()`
        self._reopen = reopen or (None if transport is not None else
                                  lambda: open_transport(url, timeout=timeout, retries=retries))
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

    def reopen(self) -> bool:
        """Open the link again (after a cut connection); False when this Device cannot."""
        if self._reopen is None:
            return False
        try:
            self.t.close()
        except Exception:
            pass
        try:
            t = self._reopen()
        except TargetError:
            return False
        if hasattr(t, "canary"):
            t.canary = getattr(self.t, "canary", None)
        self.t = t
        return True

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
        """Words at a word address, a burst (MAX_BURST words) per request: each request is
        retried on its own, so on a noisy link a long read (a whole map read back) costs a
        burst per fault, not the whole read (a 16 KiB read at 0.05 % byte drops never once
        came back whole)."""
        out: list[int] = []
        for i in range(0, max(n, 0), MAX_BURST):
            out += self.t.read(self.base + addr + i, min(MAX_BURST, n - i))
        return out

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

    @contextlib.contextmanager
    def paused(self):
        """The engine paused for the block (map operations of the host), enabled again after
        it, also when the block or the pause itself fails and the link still works or can be
        opened again (a cut connection); when it cannot, the error says the engine may be
        left paused."""
        try:
            self.pause()
            yield
        except BaseException as e:
            self._enable_again(e)
            raise
        self._enable_again(None)

    def _enable_again(self, failed: BaseException | None) -> None:
        try:
            try:
                self.resume()
            except TargetError:
                if not self.reopen():
                    raise
                time.sleep(0.15)          # the bridge's parser resets after 100 ms idle
                self.resume()
        except TargetError as e:
            if failed is not None and not isinstance(failed, TargetError):
                return                    # the block's own exception goes on
            first = failed if failed is not None else e
            done = "" if failed is not None else " after the operation was done"
            raise TargetError(f"{first}; the engine may be left paused (the link failed"
                              f"{done}: `bpfpga stats` shows it, a load or map command "
                              f"enables it)") from None

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

    def empty_spans(self) -> list[tuple[int, int]]:
        """(offset, bytes) of map memory that is zero in the empty map: the values of an
        array or slot map, the count and slot states of a hash, LPM or DEVMAP."""
        out = []
        if not (self.is_hash or self.is_lpm):
            out.append((self.off, self.r.stride * self.r.slots * self.r.cpus))
        if self.moff:
            out.append((self.moff, 8 + self.r.slots))
        return out

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
# every map: objects are linked below map_bytes - META_BYTES, and programs reach only the
# value window below MAP_LEN): two record slots of META_SLOT bytes, each "BPFM", u32 length,
# u32 CRC-32, then JSON naming the object (absolute path, SHA-256), its program, map sizes,
# where it was placed (map_base, map_end, first_map, nmaps), the CRC-32 of its image
# (prog_crc) and a load number (seq). The live record is the one whose prog_crc is the
# engine's PROG_CRC (the highest seq if both are): a load writes its record into the other
# slot before its commit, so the commit itself switches program, maps and record at once. Any
# host can then rebuild the map layout from the object (compiler/link.py hw_layout is
# deterministic) and checks it against the descriptors the device holds.
META_BYTES = 4096
META_SLOT = 2048
META_MAGIC = b"BPFM"


def meta_offset(dev: Device, slot: int = 0) -> int:
    """Where record slot `slot` lies; slot 0 is also the end of the memory maps may use."""
    return dev.map_bytes - META_BYTES + slot * META_SLOT


def read_record(dev: Device, slot: int) -> dict | None:
    import json
    import zlib
    off = meta_offset(dev, slot)
    head = dev.mem_read(off, 12)
    if head[:4] != META_MAGIC:
        return None
    n, crc = struct.unpack("<II", head[4:12])
    if n > META_SLOT - 12:
        return None
    body = dev.mem_read(off + 12, n)
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        return None
    try:
        meta = json.loads(body)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def live_record(dev: Device) -> tuple[int | None, dict | None]:
    """(slot, record) of the object the engine runs: the record whose prog_crc is PROG_CRC
    (each read until two reads agree); (None, None) when no record describes it."""
    crc = _stable(lambda: dev.reg(C.R_PROG_CRC), url=dev.url)
    best = (None, None)
    for k in (0, 1):
        m = _stable(lambda: read_record(dev, k), url=dev.url)
        if m is not None and m.get("prog_crc") == crc and \
                (best[1] is None or m.get("seq", 0) > best[1].get("seq", 0)):
            best = (k, m)
    return best


def read_meta(dev: Device) -> dict | None:
    """The live load record (live_record), or None."""
    return live_record(dev)[1]


def write_meta(dev: Device, slot: int, meta: dict | None, retries: int = 3) -> None:
    """Write (and read back) record slot `slot`; None clears it."""
    import json
    import zlib
    off = meta_offset(dev, slot)
    if meta is None:
        blob = bytes(12)
        want = None
    else:
        body = json.dumps(meta, sort_keys=True).encode()
        if len(body) > META_SLOT - 12:
            raise TargetError(f"load record too long for the device's metadata area "
                              f"({len(body)} bytes, {META_SLOT - 12} at most)")
        blob = META_MAGIC + struct.pack("<II", len(body), zlib.crc32(body) & 0xFFFFFFFF) + body
        want = json.loads(body)
    for _ in range(retries):
        dev.mem_write(off, blob)
        if _stable(lambda: read_record(dev, slot), url=dev.url) == want:
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


def map_update_atomic(dm: DeviceMap, key: bytes, value, flags: int = 0) -> None:
    """A map update from the host (`bpfpga map update`): under a pause of the engine
    (Device.paused: enabled again on every path where the link works), the old entry read
    first, then verified_update; when that fails, the old entry is put back (or the new key
    deleted), so the map holds the new entry or exactly the old one."""
    dev = dm.dev
    key = bytes(key)
    with dev.paused():
        old = _stable(lambda: dm.lookup(key), url=dev.url)
        try:
            verified_update(dm, key, value, flags)
        except MapError:
            raise
        except TargetError as e:
            try:
                if old is not None:
                    verified_update(dm, key, old)
                elif _stable(lambda: dm.lookup(key), url=dev.url) is not None:
                    dm.delete(key)
                    if _stable(lambda: dm.lookup(key), url=dev.url) is not None:
                        raise TargetError("delete did not take")
            except TargetError:
                raise TargetError(f"{e}; the old entry could not be put back (the link "
                                  f"failed): map '{dm.md.name}' may hold a partial entry") \
                    from None
            raise TargetError(f"{e}; map '{dm.md.name}' holds the old entry") from None


def _want(ld, entries: dict) -> dict[str, list]:
    """What each map of a load must hold, by name: global data, program-array and map-in-map
    slots, then `entries` (maps.json), with program and map names resolved."""
    from bpfpga.obj import MAP_IN_MAP_TYPES, BPF_MAP_TYPE_PROG_ARRAY
    out: dict[str, dict] = {}
    for r in ld.image.regions:
        md = r.md
        cur = out.setdefault(md.name, {})
        if md.data is not None:
            cur[b"\0\0\0\0"] = bytes(md.data).ljust(md.value_size, b"\0")[:md.value_size]
        for idx, target in md.init_slots.items():
            key = int(idx).to_bytes(4, "little")
            if md.type == BPF_MAP_TYPE_PROG_ARRAY:
                cur[key] = ld.prog_no[target] + 1
            elif md.type in MAP_IN_MAP_TYPES:
                cur[key] = ld.image.region(target).handle
    for name, lst in (entries or {}).items():
        cur = out.setdefault(name, {})
        for key, val in lst:
            if isinstance(val, tuple):
                kind, what = val
                val = ld.prog_no[what] + 1 if kind == "prog" else ld.image.region(what).handle
            cur[bytes(key)] = val
    return {n: list(d.items()) for n, d in out.items()}


def _holds(dm: DeviceMap, want: list) -> bool:
    """The map, read back whole (until two reads agree), holds exactly `want`: those entries
    and, in an array, zeros everywhere else."""
    got = _stable(lambda: [(bytes(k), v) for k, v in dm.dump()], url=dm.dev.url)
    w = dict(want)
    have = dict(got)
    if any(not _same_value(have.get(k), v) for k, v in w.items()):
        return False
    for k, v in got:
        if k in w:
            continue
        if dm.is_hash or dm.is_lpm:
            return False
        if any(bytes(x) != bytes(len(bytes(x))) for x in (v if isinstance(v, list) else [v])):
            return False
    return True


def _fill(dm: DeviceMap, want: list, zero: bool) -> None:
    """Write a map of a load: its empty state (zero=True: the host writes the zeros; else map
    memory was cleared in hardware), then its entries, each read back."""
    if zero:
        for off, n in dm.empty_spans():
            dm.dev.mem_write(off, bytes(n))
    lst = _bulk_array(dm, want) if dm.md.type in (2, 6) else want
    for key, val in lst:
        verified_update(dm, key, val)


def _final_check(ld, want: dict, rounds: int = 4) -> None:
    """Before the commit: every map of the load read back whole must hold exactly what the
    load wrote (`want`): a later garbled write (or a read-modify-write of a neighbour's state
    byte) can have spoiled an entry verified earlier or left one nobody wrote; a map that
    does not is written again from its empty state. Else a TargetError."""
    bad = list(ld.maps)
    for _ in range(rounds):
        bad = [n for n in bad if not _holds(ld.maps[n], want.get(n, []))]
        if not bad:
            return
        for n in bad:
            _fill(ld.maps[n], want.get(n, []), zero=True)
    raise TargetError(f"{ld.dev.url}: map '{bad[0]}' did not read back as loaded after "
                      f"{rounds} rounds (bad link?)")


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
    """An object as linked for a device, at a place in its map memory and descriptor table
    (`map_base`, `first_map`; docs/simboard.md): its image, maps (DeviceMap by name) and
    program numbers."""

    def __init__(self, dev: Device, obj, prog: str | None = None, map_base: int = 0,
                 first_map: int = 0):
        from bpfpga.compiler.link import hw_layout, link_image
        from bpfpga.errors import LoadError
        from bpfpga.compiler.select import xdp_view
        from bpfpga.compiler.check import check_readonly
        self.dev = dev
        self.obj = obj = xdp_view(obj)
        try:
            self.entry = obj.program(prog)
        except (KeyError, IndexError):
            raise LoadError(f"{obj.path}: {obj.program_choices(prog)}") from None
        check_readonly(obj, self.entry)
        self.map_base, self.first_map = map_base, first_map
        self.replaces = False          # placed over the running object's maps (place)
        self.image, self.map_len = hw_layout(obj, dev.cores, meta_offset(dev), map_base,
                                             first_map)
        self.code, self.prog_no, self.spans = link_image(obj, self.entry, self.image)
        self.maps = {r.md.name: DeviceMap(dev, r, dev.cores) for r in self.image.regions}

    @property
    def crc(self) -> int:
        import zlib
        return zlib.crc32(self.code) & 0xFFFFFFFF

    def descriptors(self) -> list[list[int]]:
        from bpfpga.compiler.link import hw_descriptor
        return [hw_descriptor(r) for r in self.image.regions]

    def map(self, name: str) -> DeviceMap:
        m = self.maps.get(name)
        if m is None:
            raise TargetError(f"no map named '{name}' in the loaded object (maps: "
                              f"{', '.join(self.maps) or 'none'})")
        return m

    def check_device(self, window: bool = True) -> None:
        """The device's descriptors must be the ones this object links to (and with
        `window`, MAP_LEN must cover its values)."""
        want = self.descriptors()
        got = self.dev.read(C.MAPDESC + 8 * self.first_map, 8 * len(want)) if want else []
        flat = [w & 0xFFFFFFFF for d in want for w in d]
        if got != flat or self.dev.reg(C.R_NMAPS) < self.first_map + len(want) or \
                window and self.dev.reg(C.R_MAP_LEN) < self.map_len:
            raise TargetError(f"{self.dev.url}: the device's map descriptors do not match "
                              f"{self.obj.path}; load it again")


def place(dev: Device, obj, prog: str | None, live: dict | None,
          replace: bool = False) -> Loaded:
    """The object linked beside the running one (`live`, its load record): its maps in map
    memory and its descriptors where the running program's are not, at 0 when they fit
    below, else just above. When they do not fit beside: a LoadError, or with `replace` the
    object at 0 (install then loads it in the running one's place)."""
    from bpfpga.errors import LoadError
    trial = Loaded(dev, obj, prog)
    size, n = trial.image.size, len(trial.image.regions)
    if live is None:
        return trial
    lb, le = live.get("map_base", 0), live.get("map_end", 0)
    fb, fe = live.get("first_map", 0), live.get("first_map", 0) + live.get("nmaps", 0)
    mb = 0 if size <= lb else (le + 63) & ~63
    fm = 0 if n <= fb else fe
    end = meta_offset(dev)
    if mb + size > end or fm + n > dev.max_maps:
        if replace:
            trial.replaces = True
            return trial
        raise LoadError(f"{obj.path}: its maps ({n} maps, {size} bytes) do not fit beside those "
                        f"of the running program ({live.get('nmaps', 0)} maps, {le - lb} bytes; "
                        f"the engine has {dev.max_maps} maps, {end} bytes): load a program "
                        f"with fewer maps first (examples/pass/pass.o has none), or shrink one "
                        f"with --map-size")
    if (mb, fm) == (0, 0):
        return trial
    return Loaded(dev, obj, prog, mb, fm)


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
            budget: int | None = None, meta_extra: dict | None = None,
            replace: bool = False) -> Loaded:
    """Load an object onto a device without stopping it: link it beside the running object
    (place), stage its program and check its CRC, write its maps into map memory the running
    program does not use (cleared, then global data, program arrays, `entries` as from
    maps.json, every entry read back, every map read back whole), its descriptors into
    table entries the running program does not use, its load record into the other record
    slot; then one keyed COMMIT switches program, maps and record at once, between packets.
    The engine is never paused: a failure at any byte before the commit leaves the old
    program running with its maps as they were (the error says so); after it, the new one
    with its maps complete.

    An object whose maps do not fit beside the running object's is refused (LoadError), or
    with `replace` (the rtl and board targets, which own the engine for their run) loaded in
    its place with the engine paused: a failure then says the old program's maps may be
    spoiled."""
    import os
    from bpfpga import memmap
    from bpfpga.errors import LoadError
    from bpfpga.compiler.select import xdp_view
    obj = xdp_view(obj)
    check_capabilities(dev, obj)
    names = {m.name: m for m in obj.maps}
    for name in (entries or {}):
        if name not in names:
            raise LoadError(f"maps file names map '{name}', which {obj.path} does not have "
                            f"(maps: {', '.join(names)})")
    budget = budget or memmap.INSN_BUDGET
    ld = None
    try:
        slot, live = live_record(dev)
        ld = place(dev, obj, prog, live, replace)
        if ld.replaces:
            dev.pause()
        want = _want(ld, entries or {})
        n = len(ld.image.regions)
        dev.stage_program(ld.code)
        hw_clear = ld.map_base == 0 and ld.image.size > 0
        if hw_clear:       # [0, size) lies below the running object's maps (place)
            dev.clear_map_memory(ld.image.size)
        descs = ld.descriptors()
        nmaps0 = _stable(lambda: dev.reg(C.R_NMAPS), url=dev.url)
        for _ in range(3):
            if descs:
                dev.write(C.MAPDESC + 8 * ld.first_map, [w for d in descs for w in d])
            if nmaps0 < ld.first_map + n:
                dev.set_reg(C.R_NMAPS, ld.first_map + n, verify=True)
            try:
                ld.check_device(window=False) if descs else None
                break
            except TargetError:
                continue
        else:
            raise TargetError(f"{dev.url}: map descriptors did not verify")
        for name, dm in ld.maps.items():
            _fill(dm, want.get(name, []), zero=not hw_clear)
        _final_check(ld, want)
        seq = (live or {}).get("seq", 0) + 1
        meta = {"object": os.path.abspath(obj.path),
                "sha256": _sha256(obj.path),
                "program": ld.entry.name, "section": ld.entry.section,
                "slots": len(ld.code) // 8, "maps": list(ld.maps),
                "map_base": ld.map_base, "map_end": ld.map_base + ld.image.size,
                "first_map": ld.first_map, "nmaps": n, "prog_crc": ld.crc, "seq": seq,
                "loaded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        meta.update(meta_extra or {})
        new_slot = 0 if slot is None else 1 - slot
        write_meta(dev, new_slot, meta)
        # the running program may reach [0, MAP_LEN): widened now, narrowed after the commit
        if _stable(lambda: dev.reg(C.R_MAP_LEN), url=dev.url) < ld.map_len:
            dev.set_reg(C.R_MAP_LEN, ld.map_len, verify=True)
        if _stable(lambda: dev.reg(C.R_BUDGET), url=dev.url) != budget:
            dev.set_reg(C.R_BUDGET, budget, verify=True)
        dev.commit_program(ld.code)
        if ld.replaces:
            dev.resume()
    except TargetError as e:
        if ld is not None and ld.replaces:
            with contextlib.suppress(TargetError):
                dev.resume()
            raise TargetError(f"{e}; {_state(dev, ld)} (loaded in its place: they may be "
                              f"spoiled)") from None
        raise TargetError(f"{e}; {_state(dev, ld)}") from None
    # committed: the rest tidies up; the new program runs with its maps complete either way
    try:
        dev.set_reg(C.R_MAP_LEN, ld.map_len, verify=True)
        dev.set_reg(C.R_NMAPS, ld.first_map + n, verify=True)
        dev.control(enable=True, clear=True)
    except TargetError as e:
        raise TargetError(f"{e}; {obj.path} is committed with its maps verified (the engine "
                          f"may not be enabled, its counters not cleared)") from None
    return ld


def _sha256(path) -> str | None:
    """The object file's SHA-256; None for an object built in memory (an assembled test
    program: map commands cannot re-link it, its record still names what runs)."""
    import hashlib
    try:
        return hashlib.sha256(open(path, "rb").read()).hexdigest()
    except OSError:
        return None


def _state(dev: Device, ld) -> str:
    """What a failed load left, for its error: the engine's program, read if the link allows."""
    try:
        crc = _stable(lambda: dev.reg(C.R_PROG_CRC), url=dev.url)
        on = bool(_stable(lambda: dev.reg(C.R_CTRL), url=dev.url) & C.CTRL_ENABLE)
    except TargetError:
        return ("the link failed: the engine was not paused and runs the old program with its "
                "maps as they were, or the new one with its maps complete if the commit got "
                "through")
    run = "running" if on else "paused (it was paused before this load)"
    if ld is not None and crc == ld.crc:
        return f"{ld.obj.path} is committed and {run}, with its maps complete"
    return f"the old program is {run}, with its maps as they were"


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
    if meta.get("sha256") is None or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise TargetError(f"{path} changed since it was loaded onto {dev.url}; load it again")
    obj = load_object(path, map_sizes=meta.get("map_sizes") or {})
    ld = Loaded(dev, obj, meta["program"], meta.get("map_base", 0), meta.get("first_map", 0))
    ld.check_device()
    return ld, meta
