"""The host library of the XDP engine's control port (hdl/xdp.py; register map in
hdl/control.py and docs/registers.md): the same code drives a board over a UART and the
simulated board over TCP (pyserial's ``socket://127.0.0.1:PORT``).

Transport: LiteX's UART bridge protocol (litex/soc/cores/uart.py): 0x01 write / 0x02 read, a
length byte (words), a 32-bit big-endian word address, big-endian 32-bit words. Commands are
pipelined: a burst read of many words sends every command first and then collects the
answers.

Maps: the host works on raw map memory with the hardware's own layout and hash function
(compiler/link.py ``hw_layout``, hdl/maps_hw.py ``key_hash``), with the engine paused (no core
runs a program while the host changes a map; packets wait in their buffers).
"""
from __future__ import annotations

import struct
import time

from bpfpga.errors import TargetError
from bpfpga.hdl import control as C

MAX_BURST = 255


class Device:
    def __init__(self, url: str, base: int = 0, timeout: float = 60.0):
        import serial
        try:
            self.port = serial.serial_for_url(url, timeout=timeout)
        except (serial.SerialException, OSError) as e:
            raise TargetError(f"cannot open the control port at {url}: {e}") from None
        self.base = base
        self.url = url
        self.timeout = timeout
        ident = self.reg(C.R_IDENT)
        if ident != C.IDENT:
            raise TargetError(f"{url}: not a bpfpga XDP engine (ident 0x{ident:08x})")
        info = self.reg(C.R_INFO)
        self.cores = info & 0xFF
        self.ports = (info >> 8) & 0xFF
        self.pm_depth = 1 << ((info >> 16) & 0xFF)
        self.max_maps = info >> 24
        self.map_bytes = self.reg(C.R_MAP_BYTES)
        self.pkt_bytes = self.reg(C.R_PKT_BYTES)
        self.inj_words = self.reg(C.R_INJ_WORDS)
        self.out_words = self.reg(C.R_OUT_WORDS)
        self.ns_per_cycle = self.reg(C.R_NS_PER_CYCLE)
        self._inj_wr = self._inj_rd = self._out_rd = None     # ring indexes the host owns

    def close(self):
        self.port.close()

    # ------------------------------------------------------------------ raw words
    def _recv(self, n: int) -> bytes:
        data = self.port.read(n)
        if len(data) != n:
            raise TargetError(f"{self.url}: the device did not answer ({len(data)} of {n} "
                              f"bytes in {self.timeout} s)")
        return data

    def write(self, addr: int, words) -> None:
        words = list(words)
        out = bytearray()
        for i in range(0, len(words), MAX_BURST):
            chunk = words[i:i + MAX_BURST]
            out += struct.pack(">BBI", 0x01, len(chunk), self.base + addr + i)
            out += struct.pack(f">{len(chunk)}I", *chunk)
        self.port.write(bytes(out))

    def read(self, addr: int, n: int) -> list[int]:
        if n <= 0:
            return []
        out = bytearray()
        for i in range(0, n, MAX_BURST):
            out += struct.pack(">BBI", 0x02, min(MAX_BURST, n - i), self.base + addr + i)
        self.port.write(bytes(out))
        return list(struct.unpack(f">{n}I", self._recv(4 * n)))

    def reg(self, r: int) -> int:
        return self.read(C.REGS + r, 1)[0]

    def set_reg(self, r: int, v: int) -> None:
        self.write(C.REGS + r, [v & 0xFFFFFFFF])

    # ------------------------------------------------------------------ engine control
    def control(self, enable: bool | None = None, capture: bool | None = None,
                clear: bool = False) -> None:
        cur = self.reg(C.R_CTRL)
        if enable is not None:
            cur = (cur & ~C.CTRL_ENABLE) | (C.CTRL_ENABLE if enable else 0)
        if capture is not None:
            cur = (cur & ~C.CTRL_CAPTURE) | (C.CTRL_CAPTURE if capture else 0)
        self.set_reg(C.R_CTRL, cur | (C.CTRL_CLEAR if clear else 0))

    def pause(self, timeout: float = 5.0) -> None:
        """Stop starting programs and wait until no core runs one."""
        self.control(enable=False)
        t0 = time.time()
        while not self.reg(C.R_STATUS) & 1:
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
        import zlib
        if len(code) % 8:
            raise TargetError("program image is not a whole number of slots")
        n = len(code) // 8
        if n > self.pm_depth:
            raise TargetError(f"program image of {n} slots does not fit the program memory "
                              f"({self.pm_depth} slots)")
        words = struct.unpack(f"<{2 * n}I", code)
        want = zlib.crc32(code) & 0xFFFFFFFF
        for _ in range(retries):
            self.write(C.PM_STAGE, words)
            self.set_reg(C.R_CHECK, n)
            while self.reg(C.R_STATUS) & 4:
                pass
            got = self.reg(C.R_CRC)
            if got == want:
                before = self.reg(C.R_COMMITS)
                self.set_reg(C.R_COMMIT, n)
                t0 = time.time()
                while self.reg(C.R_COMMITS) == before:
                    if time.time() - t0 > self.timeout:
                        raise TargetError(f"{self.url}: program commit did not finish")
                return
        raise TargetError(f"{self.url}: program load failed its check {retries} times "
                          f"(CRC 0x{got:08x}, expected 0x{want:08x})")

    def clear_map_memory(self, n: int) -> None:
        """Zero map memory bytes [0, n) in hardware (8 bytes an access)."""
        self.set_reg(C.R_MAPCLR, (n + 7) & ~7)
        t0 = time.time()
        while self.reg(C.R_STATUS) & 8:
            if time.time() - t0 > self.timeout:
                raise TargetError(f"{self.url}: clearing map memory did not finish")

    def set_descriptors(self, descs: list[list[int]], map_len: int) -> None:
        if len(descs) > self.max_maps:
            raise TargetError(f"{len(descs)} maps; the engine holds {self.max_maps}")
        words = [w for d in descs for w in d]
        if words:
            self.write(C.MAPDESC, words)
        self.set_reg(C.R_NMAPS, len(descs))
        self.set_reg(C.R_MAP_LEN, map_len)

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
            words64 = [len(frame) | (port << 16)] + list(struct.unpack(f"<{nw - 1}Q", body))
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

    def results(self, want: int = 1, timeout: float = 30.0) -> list[dict]:
        """Read `want` records from the output ring (waiting for them)."""
        recs = []
        if self._out_rd is None:
            self._out_rd = self.reg(C.R_OUT_RD)
        rd = self._out_rd
        t0 = time.time()
        while len(recs) < want:
            wr = self.reg(C.R_OUT_WR)
            if wr == rd:
                if time.time() - t0 > timeout:
                    raise TargetError(f"{self.url}: no result after {timeout} s")
                continue
            avail = (wr - rd) & 0xFFFF
            words = self._ring_read(rd, avail)
            i = 0
            while i < len(words):
                h0, h1, h2, h3 = words[i:i + 4]
                ln = h0 & 0xFFFF
                nb = (ln + 7) // 8
                body = b"".join(w.to_bytes(8, "little") for w in words[i + 4:i + 4 + nb])
                recs.append({"len": ln, "verdict": (h0 >> 16) & 7, "trap": (h0 >> 20) & 0xF,
                             "in_port": (h0 >> 24) & 0xF, "core": (h0 >> 28) & 0xF,
                             "redirect": h0 >> 32, "r0": h1, "trap_pc": h2 & 0xFFFFFFFF,
                             "insns": h2 >> 32, "cycles": h3 & 0xFFFFFFFF,
                             "tailcalls": (h3 >> 32) & 0xFF, "seq": h3 >> 40,
                             "packet": body[:ln]})
                i += 4 + nb
            rd = (rd + avail) & 0xFFFF
            self.set_reg(C.R_OUT_RD, rd)
            self._out_rd = rd
        return recs


# ---------------------------------------------------------------------------- maps
EINVAL, ENOENT, E2BIG, EEXIST = 22, 2, 7, 17


class MapError(TargetError):
    def __init__(self, errno: int, msg: str):
        super().__init__(msg)
        self.errno = errno


class DeviceMap:
    """One map of a loaded image, read and written through raw map memory with the hardware's
    layout (compiler/link.py hw_layout) and hash (hdl/maps_hw.py key_hash). Call with the
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
        from bpfpga.hdl.maps_hw import key_hash
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
            keys = self.dev.mem_read(self.koff, self.r.key_stride * self.r.slots) \
                if len(valid) > 16 else None
            vals_all = None
            if len(valid) > 16:
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
