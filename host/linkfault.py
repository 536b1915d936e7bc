"""One fault at one byte of a link, for tests and bench/link_faults.py of what the host leaves
on the engine when a load or a map command is interrupted at any byte.

``FaultAt`` wraps a pyserial-like port (a ``socket://`` connection to `bpfpga sim-board`, as
host/transport.py's FaultyPort does) and counts the bytes going out (tx: the host's commands)
or coming back (rx: the board's answers); at byte ``at`` of that direction it applies one of

- ``cut``: the connection is closed there (the bytes before it were delivered), for good;
- ``drop``: ``n`` bytes from there are lost;
- ``corrupt``: one bit of that byte is flipped;
- ``delay``: the bytes from there are held ``seconds`` (longer than the bridge's 100 ms idle
  reset on the way out, longer than the host's timeout on the way back).

``CountPort`` only counts, so a campaign can spread its faults over a clean run's bytes.
"""
from __future__ import annotations

import time

from bpfpga.host.transport import FaultyPort

KINDS = ("cut", "drop", "corrupt", "delay")


class CountPort(FaultyPort):
    """A port that only counts the bytes each way (a FaultyPort without faults)."""

    def __init__(self, port):
        super().__init__(port)
        self.sent = 0
        self.received = 0

    def write(self, data: bytes) -> int:
        self.sent += len(data)
        return self.port.write(data)

    def read(self, n: int) -> bytes:
        data = self.port.read(n)
        self.received += len(data)
        return data


class FaultAt(CountPort):
    def __init__(self, port, kind: str, at: int, direction: str = "tx", n: int = 3,
                 seconds: float = 1.2, bit: int = 3):
        super().__init__(port)
        if kind not in KINDS or direction not in ("tx", "rx"):
            raise ValueError(f"fault {kind!r} {direction!r}")
        self.kind, self.at, self.dir = kind, at, direction
        self.n, self.seconds, self.bit = n, seconds, bit
        self.fired = False
        self.cut = False

    def _apply(self, data: bytes, pos: int) -> tuple[bytes, int | None]:
        """`data`, which starts at byte `pos` of its direction, with the fault applied where
        it falls inside; and where a delay starts (an index into the result), else None."""
        if self.kind == "drop":
            lo, hi = max(self.at - pos, 0), min(self.at + self.n - pos, len(data))
            if lo >= hi:
                return data, None
            self.fired = True
            return data[:lo] + data[hi:], None
        k = self.at - pos
        if self.fired or not 0 <= k < len(data):
            return data, None
        self.fired = True
        if self.kind == "corrupt":
            return data[:k] + bytes([data[k] ^ (1 << self.bit)]) + data[k + 1:], None
        if self.kind == "delay":
            return data, k
        self.cut = True
        return data[:k], None

    def write(self, data: bytes) -> int:
        if self.cut:
            raise OSError(32, "connection cut by the fault")
        if self.dir != "tx":
            return super().write(data)
        out, k = self._apply(data, self.sent)
        self.sent += len(data)
        if k is not None:
            self.port.write(out[:k])
            time.sleep(self.seconds)
            out = out[k:]
        if out:
            self.port.write(out)
        if self.cut:
            self.port.close()
        return len(data)

    held = b""
    release = 0.0

    def read(self, n: int) -> bytes:
        if self.cut:
            return b""
        if self.held:
            # held bytes: silence until they are released, as a slow link would give
            wait = self.release - time.time()
            if wait > 0:
                time.sleep(min(wait, self.port.timeout or wait))
                return b""
            out, self.held = self.held[:n], self.held[n:]
            return out
        data = self.port.read(n)
        if self.dir != "rx" or not data:
            return data
        out, k = self._apply(data, self.received)
        self.received += len(data)
        if k is not None:
            out, self.held = out[:k], out[k:]
            self.release = time.time() + self.seconds
        if self.cut:
            self.port.close()
        return out

    def reset_input_buffer(self) -> None:
        if not self.cut:
            self.port.reset_input_buffer()

    def close(self) -> None:
        if not self.cut:
            self.port.close()


# ---------------------------------------------------------------------------- trials
def _dumps(ld) -> dict:
    from bpfpga.host.device import _stable
    return {n: _stable(lambda: sorted((bytes(k), repr(v)) for k, v in dm.dump()),
                       url=ld.dev.url) for n, dm in ld.maps.items()}


def _faulty_port(url: str, kind: str, at: int, direction: str, timeout: float):
    import serial
    raw = serial.serial_for_url(url, timeout=timeout)
    return FaultAt(raw, kind, at, direction) if kind != "count" else CountPort(raw)


def _device(url: str, port, timeout: float):
    from bpfpga.host.device import Device
    from bpfpga.host.transport import UartBridge
    # after a cut, the host may connect again (a second connection is clean)
    return Device(transport=UartBridge(url, timeout=timeout, retries=8, port=port),
                  timeout=10, reopen=lambda: UartBridge(url, timeout=timeout, retries=8))


def trial(url: str, op: str, kind: str, at: int, direction: str = "tx", obj_path=None,
          entries=None, update=None, timeout: float = 0.5) -> dict:
    """One operation over a link with one fault (kind "count": none, only counted), then a
    check over a clean link. op "load": install(obj_path, entries) beside the running object;
    op "update": map_update_atomic(update = (map, key, value)) on the running object.
    Returns what it found: the error (one line or None), which program runs ("old", "new",
    or "other"), whether the engine is enabled, whether the maps are exactly as they were
    (old) or exactly as loaded (new), and the bytes the link carried."""
    from bpfpga.compiler.elf import load_object
    from bpfpga.errors import TargetError
    from bpfpga.hdl import control as C
    from bpfpga.host.device import (Device, Loaded, _holds, _stable, _want, install,
                                    live_record, map_update_atomic, open_loaded, place)
    clean = Device(url, timeout=10)
    try:
        old_ld, _ = open_loaded(clean)
        old_crc, old_maps = old_ld.crc, _dumps(old_ld)
        if op == "load":
            new = place(clean, load_object(str(obj_path)), None, live_record(clean)[1])
            new_crc, want = new.crc, _want(new, entries or {})
        else:
            new_crc = None
    finally:
        clean.close()
    dev = port = None
    err = None
    try:
        port = _faulty_port(url, kind, at, direction, timeout)
        dev = _device(url, port, timeout)
        if op == "load":
            install(dev, load_object(str(obj_path)), entries=entries)
        else:
            ld, _ = open_loaded(dev)
            name, key, value = update
            map_update_atomic(ld.map(name), key, value)
    except TargetError as e:
        err = str(e)
    finally:
        if dev is not None:
            dev.close()
    time.sleep(0.3)                    # the bridge's parser resets after 100 ms idle
    clean = Device(url, timeout=10)
    try:
        crc = _stable(lambda: clean.reg(C.R_PROG_CRC), url=url)
        enabled = bool(_stable(lambda: clean.reg(C.R_CTRL), url=url) & C.CTRL_ENABLE)
        if crc == old_crc:
            state = "old"
            now = _dumps(open_loaded(clean)[0])
            if op == "update":
                name, key, value = update
                k = bytes(key)
                ok_new = dict(old_maps)
                ok_new[name] = sorted([(a, b) for a, b in old_maps[name] if a != k] +
                                      [(k, repr(bytes(value)))])
                intact = now == old_maps or now == ok_new
                state = "old" if now == old_maps else "updated"
            else:
                intact = now == old_maps
        elif crc == new_crc:
            state = "new"
            ld = Loaded(clean, load_object(str(obj_path)), None, new.map_base, new.first_map)
            intact = all(_holds(dm, want.get(n, [])) for n, dm in ld.maps.items())
        else:
            state, intact = "other", False
    finally:
        clean.close()
    return {"op": op, "kind": kind, "at": at, "dir": direction, "error": err,
            "fired": getattr(port, "fired", None), "state": state, "enabled": enabled,
            "intact": intact, "sent": port.sent if port else 0,
            "received": port.received if port else 0}


def good(r: dict) -> bool:
    """A trial's outcome as the loader promises it (docs/simboard.md): the engine enabled,
    the old program with its maps exactly as they were or the new one with its maps exactly
    as loaded (never anything else), an error of one line, and no error only when the
    operation was done."""
    return (r["enabled"] and r["intact"] and r["state"] != "other" and
            (r["error"] is None or "\n" not in r["error"]) and
            (r["error"] is not None or r["state"] in ("new", "updated")))
