"""Commands that talk to a device (a board or the simulated board), in bpftool's shape:
``device info``, ``prog load``, ``prog show`` (without OBJ), ``map list|dump|lookup|update|
delete``, ``stats``, ``trace``, and ``sim-board`` which serves the simulated one.

Every device command takes ``--device URL`` (or $BPFPGA_DEVICE): a serial device
(``/dev/ttyUSB1[@BAUD]``), a pyserial URL (``socket://127.0.0.1:PORT`` for ``bpfpga
sim-board``) or Etherbone (``udp://HOST[:PORT]``); and ``-j`` for JSON. Keys and values are
hex (spaces allowed), in the map's in-memory byte order, as maps.json writes them.

What is loaded is recorded on the device (host/device.py, META_BYTES at the top of map
memory), so map commands from any host find the map layout: they re-link the recorded object
and check the result against the descriptors the device holds.
"""
from __future__ import annotations

import functools
import json
import time

import click

from bpfpga.errors import BpfpgaError, TargetError, escape

VERDICTS = ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"]


def device_options(f):
    @click.option("--device", "-d", "device", envvar="BPFPGA_DEVICE", metavar="URL",
                  required=True, help="Device: /dev/ttyUSB1[@BAUD], socket://HOST:PORT, "
                  "udp://HOST[:PORT] (default: $BPFPGA_DEVICE).")
    @click.option("--timeout", type=float, default=10.0, show_default=True,
                  help="Seconds to wait for an answer (then retried).")
    @click.option("-j", "--json", "as_json", is_flag=True, help="JSON output, as bpftool -j.")
    @click.option("--key", "device_key", default=None, metavar="HEX|FILE",
                  help="The device's 128-bit key (32 hex digits, or a file of them readable "
                  "by its owner only), for an authenticated link: a simulated board (whose "
                  "key file is found by its URL for the user who started it) or Etherbone "
                  "(default: $BPFPGA_KEY).")
    @functools.wraps(f)
    def wrapper(*a, device_key=None, **kw):
        # device_key, not key: the map commands' KEY argument is `key`
        import os
        if device_key:
            from bpfpga.auth import parse_key
            parse_key(device_key, "--key")          # a bad key is one line, here
            os.environ["BPFPGA_KEY"] = device_key   # the key of every transport opened here
        return f(*a, **kw)
    return wrapper


def open_device(url: str, timeout: float):
    from bpfpga.host.device import Device
    return Device(url, timeout=timeout)


def _val_json(v):
    if isinstance(v, list):
        return {"values": [bytes(x).hex() for x in v]}
    return {"value": bytes(v).hex()}


def _types(ld, m):
    from bpfpga.compiler.btfvalue import MapTypes
    return MapTypes.of(ld.obj, m.md)


def _row(mt, k, v) -> dict:
    """An entry as `bpftool map dump -j` gives it with BTF: hex, and "formatted" in the
    map's BTF types when the object has them."""
    r = {"key": bytes(k).hex(), **_val_json(v)}
    if mt.typed:
        f = {}
        if mt.key_tid:
            f["key"] = mt.show_key(k)
        if mt.value_tid:
            f["values" if isinstance(v, list) else "value"] = \
                [mt.show_value(x) for x in v] if isinstance(v, list) else mt.show_value(v)
        r["formatted"] = f
    return r


def _row_text(r: dict) -> str:
    f = r.get("formatted", {})
    k = json.dumps(f["key"]) if "key" in f else r["key"]
    if "value" in f or "values" in f:
        v = json.dumps(f.get("value", f.get("values")))
    else:
        v = r.get("value") or " ".join(r["values"])
    return f"key: {k}  value: {v}"


def _out(as_json: bool, data, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def device_info(dev) -> dict:
    """What the gateware is: ident, sizes, clock, and the helpers and map types it was built
    with (the loader refuses objects that need others)."""
    from bpfpga.hdl import control as C
    from bpfpga.helpers import HELPER_NAMES
    from bpfpga.obj import MAP_TYPE_NAMES
    ident = dev.reg(C.R_IDENT)
    return {"device": dev.url, "ident": f"0x{ident:08x}",
            "gateware": ident.to_bytes(4, "big").decode("ascii", "replace"),
            "version": dev.version, "cores": dev.cores, "ports": dev.ports,
            "program_slots": dev.pm_depth, "max_maps": dev.max_maps,
            "map_bytes": dev.map_bytes, "packet_bytes": dev.pkt_bytes,
            "inject_ring_words": dev.inj_words, "output_ring_words": dev.out_words,
            "clock_mhz": round(1000 / dev.ns_per_cycle, 3) if dev.ns_per_cycle else None,
            "ns_per_cycle": dev.ns_per_cycle, "trace_depth": dev.trace_depth,
            "helpers": [f"bpf_{HELPER_NAMES.get(h, str(h))}" for h in sorted(dev.helpers)],
            "map_types": [MAP_TYPE_NAMES.get(t, str(t)) for t in sorted(dev.map_types)]}


def stats(dev) -> dict:
    from bpfpga.hdl import control as C
    from bpfpga.traps import TRAP_NAMES
    c = dev.counters()
    return {"verdicts": {VERDICTS[i]: c[C.C_VERDICT + i] for i in range(5)},
            "rx": {**{f"port{p}": c[C.C_RX + p] for p in range(dev.ports)},
                   "inject": c[C.C_RX + dev.ports]},
            "tx": {f"port{p}": c[C.C_TX + p] for p in range(dev.ports)},
            "dropped": {"runt": c[C.C_RUNT], "oversize": c[C.C_OVERSIZE],
                        "no_buffer": c[C.C_NOBUF], "output_ring_full": c[C.C_HOST_DROP]},
            "output_ring_records": c[C.C_HOST], "tail_calls": c[C.C_TAILCALL],
            "trace": {"records": c[C.C_TRACE], "lost": c[C.C_TRACE_DROP]},
            "traps": {TRAP_NAMES.get(r, str(r)): c[C.C_TRAP + r] for r in range(1, 16)
                      if r in TRAP_NAMES or c[C.C_TRAP + r]},
            "cores": [{"core": k, "packets": c[C.C_PKTS + k], "busy_cycles": c[C.C_BUSY + k]}
                      for k in range(dev.cores)],
            "refused": dict(zip(("writes", "commits"), dev.guard()[1:]))}


def _stats_text(s: dict) -> str:
    lines = ["verdicts:   " + "  ".join(f"{k} {v}" for k, v in s["verdicts"].items()),
             "rx:         " + "  ".join(f"{k} {v}" for k, v in s["rx"].items()),
             "tx:         " + "  ".join(f"{k} {v}" for k, v in s["tx"].items()),
             "dropped:    " + "  ".join(f"{k} {v}" for k, v in s["dropped"].items()),
             f"output ring records {s['output_ring_records']}  tail calls {s['tail_calls']}"
             f"  trace records {s['trace']['records']} (lost {s['trace']['lost']})",
             "traps:      " + "  ".join(f"{k} {v}" for k, v in s["traps"].items()),
             f"refused by the write guard (mod 256, since power-on): writes "
             f"{s['refused']['writes']}  commits {s['refused']['commits']}"]
    for c in s["cores"]:
        lines.append(f"core {c['core']}:     packets {c['packets']}  busy cycles "
                     f"{c['busy_cycles']}")
    return "\n".join(lines)


def _paused(dev, fn):
    with dev.paused():
        return fn()


def register(group: click.Group) -> None:
    # ------------------------------------------------------------------ device
    @group.group("device")
    def device():
        """The device's gateware and its sizes."""

    @device.command("info")
    @device_options
    def info(device, timeout, as_json):
        """Gateware ident and version, cores, ports, memory sizes, clock, helpers, map types."""
        dev = open_device(device, timeout)
        try:
            d = device_info(dev)
        finally:
            dev.close()
        _out(as_json, d, "\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}"
                                    for k, v in d.items()))

    # ------------------------------------------------------------------ prog
    prog = group.commands["prog"]

    @prog.command("load")
    @click.argument("obj", type=click.Path(dir_okay=False))
    @click.option("--section", "-s", "section", default=None,
                  help="Program (section or function name) to run; default the first.")
    @click.option("--maps", "maps_json", type=click.Path(dir_okay=False), default=None,
                  help="maps.json with entries to write before the program starts.")
    @click.option("--map-size", "map_size", multiple=True, metavar="NAME=ENTRIES",
                  help="Override a map's max_entries (repeatable).")
    @device_options
    def load(obj, section, maps_json, map_size, device, timeout, as_json):
        """Link OBJ for the device, load it (CRC-checked by the hardware), fill its maps
        (every entry read back) and commit it between packets."""
        from bpfpga.compiler.elf import load_object
        from bpfpga.host.cmd_prog import parse_map_sizes
        from bpfpga.host.device import install
        sizes = parse_map_sizes(map_size)
        o = load_object(obj, map_sizes=sizes)
        prog_name = None
        if section is not None:
            for p in o.programs:
                if section in (p.section, p.name):
                    prog_name = p.name
                    break
            else:
                raise BpfpgaError(f"{obj}: no program in section '{section}' (sections: "
                                  f"{', '.join(p.section for p in o.programs)})")
        entries = None
        if maps_json:
            # maps.json's own maps and .rodata bytes go into the object before load
            from bpfpga.compiler import mapsjson
            o, entries = mapsjson.for_load(o, mapsjson.read(maps_json))
        dev = open_device(device, timeout)
        try:
            t0 = time.time()
            ld = install(dev, o, prog_name, entries, meta_extra={"map_sizes": sizes})
            d = {"device": dev.url, "object": obj, "program": ld.entry.name,
                 "section": ld.entry.section, "slots": len(ld.code) // 8,
                 "maps": list(ld.maps),
                 "entries": sum(len(v) for v in (entries or {}).values()),
                 "seconds": round(time.time() - t0, 2)}
        finally:
            dev.close()
        _out(as_json, d, f"loaded {obj} ({d['program']}, section {d['section']}, "
                         f"{d['slots']} slots, {len(d['maps'])} maps, {d['entries']} map "
                         f"entries) onto {dev.url} in {d['seconds']} s")

    # ------------------------------------------------------------------ map
    @group.group("map")
    def map_():
        """Maps of the program loaded on a device."""

    def with_map(fn):
        @functools.wraps(fn)
        def wrapper(device, timeout, as_json, **kw):
            from bpfpga.host.device import open_loaded
            dev = open_device(device, timeout)
            try:
                ld, meta = open_loaded(dev)
                return fn(dev, ld, as_json, **kw)
            finally:
                dev.close()
        return wrapper

    @map_.command("list")
    @device_options
    @with_map
    def map_list(dev, ld, as_json):
        """Maps of the loaded object (bpftool map show)."""
        rows = [{"name": n, "type": m.md.type_name, "bytes_key": m.md.key_size,
                 "bytes_value": m.md.value_size, "max_entries": m.md.max_entries,
                 "flags": m.md.map_flags} for n, m in ld.maps.items()]
        _out(as_json, rows, "\n".join(
            f"{r['name']}: {r['type']}  key {r['bytes_key']}B  value {r['bytes_value']}B  "
            f"max_entries {r['max_entries']}" for r in rows) or "no maps")

    @map_.command("dump")
    @click.argument("name")
    @device_options
    @with_map
    def map_dump(dev, ld, as_json, name):
        """Every entry of map NAME (as maps.json lists them)."""
        m = ld.map(name)
        mt = _types(ld, m)
        ents = _paused(dev, m.dump)
        rows = [_row(mt, k, v) for k, v in ents]
        _out(as_json, rows, "\n".join(_row_text(r) for r in rows) +
             f"\nFound {len(rows)} element(s)")

    @map_.command("lookup")
    @click.argument("name")
    @click.argument("key")
    @device_options
    @with_map
    def map_lookup(dev, ld, as_json, name, key):
        """The value of KEY in map NAME (hex, or JSON / text in the key's BTF type)."""
        from bpfpga.host.device import ENOENT, MapError
        m = ld.map(name)
        mt = _types(ld, m)
        k = mt.key(key)
        v = _paused(dev, lambda: m.lookup(k))
        if v is None:
            raise MapError(ENOENT, f"map '{name}': no such key {key}")
        r = _row(mt, k, v)
        _out(as_json, r, _row_text(r))

    @map_.command("update")
    @click.argument("name")
    @click.argument("key")
    @click.argument("value")
    @click.option("--flags", type=click.Choice(["any", "noexist", "exist"]), default="any",
                  help="BPF_ANY, BPF_NOEXIST or BPF_EXIST.")
    @device_options
    @with_map
    def map_update(dev, ld, as_json, name, key, value, flags):
        """Set KEY to VALUE in map NAME (hex, or JSON / text in the map's BTF types, e.g.
        '{"vip": "10.0.0.1", "port": 80}'; for a program array a program name); the entry
        is read back before the engine resumes."""
        from bpfpga.host.device import map_update_atomic
        m = ld.map(name)
        mt = _types(ld, m)
        k = mt.key(key)
        if m.md.type == 3 and value in ld.prog_no:
            v = ld.prog_no[value] + 1
        else:
            v = mt.value(value)
        fl = {"any": 0, "noexist": 1, "exist": 2}[flags]
        map_update_atomic(m, k, v, fl)
        _out(as_json, {"map": name, "key": k.hex(), "updated": True},
             f"map '{name}': key {k.hex()} updated")

    @map_.command("delete")
    @click.argument("name")
    @click.argument("key")
    @device_options
    @with_map
    def map_delete(dev, ld, as_json, name, key):
        """Delete KEY (hex, or JSON / text in the key's BTF type) from map NAME."""
        m = ld.map(name)
        k = _types(ld, m).key(key)

        def go():
            m.delete(k)
            if m.lookup(k) is not None and (m.is_hash or m.is_lpm):
                raise TargetError(f"map '{name}': key {k.hex()} still present after delete")
        _paused(dev, go)
        _out(as_json, {"map": name, "key": k.hex(), "deleted": True},
             f"map '{name}': key {k.hex()} deleted")

    # ------------------------------------------------------------------ stats, trace
    @group.command("stats")
    @click.option("--watch", "watch", type=float, default=None, is_flag=False,
                  flag_value=1.0, metavar="[SECONDS]",
                  help="Print again every SECONDS (default 1) until Ctrl-C.")
    @device_options
    def stats_cmd(watch, device, timeout, as_json):
        """Counters: frames per verdict, per port, drops, traps by reason, per-core
        packets and busy cycles."""
        dev = open_device(device, timeout)
        try:
            while True:
                s = stats(dev)
                if as_json:
                    click.echo(json.dumps(s, indent=None if watch else 2))
                else:
                    click.echo(_stats_text(s))
                if not watch:
                    break
                time.sleep(watch)
                if not as_json:
                    click.echo("")
        except KeyboardInterrupt:
            pass
        finally:
            dev.close()

    @group.command("trace")
    @click.option("--follow", "-f", is_flag=False, flag_value=0.5, default=None, type=float,
                  metavar="[SECONDS]", help="Keep reading (every SECONDS, default 0.5) "
                  "until Ctrl-C.")
    @device_options
    def trace(follow, device, timeout, as_json):
        """trace_printk output of the running program, read from the engine's trace FIFO
        (each record once: reading frees it). Formats and %s strings are read from map
        memory when printed."""
        from bpfpga.hdl import control as C
        dev = open_device(device, timeout)
        try:
            lost0 = dev.counters()[C.C_TRACE_DROP]
            while True:
                for rec in dev.trace_records():
                    text = dev.trace_text(rec)
                    if as_json:
                        click.echo(json.dumps({**rec, "text": text}))
                    else:
                        click.echo(f"[{rec['core']:03d}] {rec['ktime'] / 1e9:.9f}: frame "
                                   f"{rec['seq']}: {escape(text)}")
                if follow is None:
                    break
                time.sleep(follow)
        except KeyboardInterrupt:
            pass
        finally:
            lost = dev.counters()[C.C_TRACE_DROP]
            dev.close()
        if lost and not as_json:
            click.echo(f"{lost} trace record(s) lost (trace FIFO full) since the counters "
                       f"were cleared{'' if lost == lost0 else f', {lost - lost0} just now'}",
                       err=True)

    # ------------------------------------------------------------------ sim-board
    @group.command("sim-board")
    @click.option("--listen", default="127.0.0.1:0", show_default=True, metavar="HOST:PORT",
                  help="Where to serve the UART bridge (port 0: any free port, printed).")
    @click.option("--port0-pcap", "pcap0", type=click.Path(dir_okay=False, exists=True),
                  default=None, help="Frames to replay into port 0 (through the inject ring).")
    @click.option("--capture", type=click.Path(file_okay=False), default=None,
                  help="Directory for port<N>.pcap, host.pcap and results.json.")
    @click.option("--replay-on", type=click.Choice(["load", "signal"]), default="load",
                  show_default=True, help="Start the replay when a program is loaded, or on "
                  "SIGUSR1 (kill -USR1 PID: after maps are filled).")
    @click.option("--inflight", type=int, default=1, show_default=True,
                  help="Replayed frames in the engine at once (at most one per core).")
    @click.option("--tap", "taps", multiple=True, metavar="[PORT=]NAME",
                  help="Attach engine port PORT (default 0) to a new Linux TAP device NAME "
                  "(needs root or CAP_NET_ADMIN); repeat for port 1.")
    @click.option("--key", "key", default=None, metavar="HEX|FILE",
                  help="The key clients must prove (default: a new one, written to a key "
                  "file only this user can read, named after the URL; removed at exit).")
    def sim_board(listen, pcap0, capture, replay_on, inflight, taps, key):
        """Run the XDP engine in Verilator as a board: its control port on a TCP port,
        until Ctrl-C."""
        import os
        import signal

        from bpfpga.auth import parse_key
        from bpfpga.sim.simboard import SimBoard
        host, _, port = listen.rpartition(":")
        try:
            port = int(port)
        except ValueError:
            raise BpfpgaError(f"--listen {listen!r}: expected HOST:PORT") from None
        tap_ports = {}
        for t in taps:
            p, sep, name = t.rpartition("=")
            if not sep:
                p = "0"
            if not p.isdigit():
                raise BpfpgaError(f"--tap {t!r}: expected NAME or PORT=NAME (PORT a number)")
            if int(p) in tap_ports:
                raise BpfpgaError(f"--tap {t!r}: port {p} is already attached to "
                                  f"{tap_ports[int(p)]}")
            tap_ports[int(p)] = name
        click.echo("starting the simulated board (Verilator model of the XDP engine)...",
                   err=True)
        board = SimBoard(host or "127.0.0.1", port, pcap0, capture, replay_on,
                         log=lambda m: click.echo(m, err=True), inflight=inflight,
                         taps=tap_ports, key=parse_key(key, "--key") if key else None)
        signal.signal(signal.SIGUSR1, lambda *_: board.replay_go.set())
        # Ctrl-C and SIGTERM end the serve loop (also when started from a script, where a
        # background job inherits SIGINT ignored)
        signal.signal(signal.SIGTERM, lambda *_: board.stop.set())
        signal.signal(signal.SIGINT, lambda *_: board.stop.set())
        click.echo(f"sim-board: serving {board.url} (pid {os.getpid()}); "
                   f"export BPFPGA_DEVICE={board.url}")
        if board.key_file is not None:
            click.echo(f"sim-board: clients authenticate with the key in {board.key_file} "
                       f"(mode 0600; found by the CLI for this URL)", err=True)
        import sys
        sys.stdout.flush()
        try:
            board.serve()
        except KeyboardInterrupt:
            pass
        finally:
            board.close()
            click.echo("sim-board: stopped", err=True)


def show_loaded(url: str, timeout: float, as_json: bool) -> None:
    """`prog show` without OBJ: the device's load record and what the hardware reports."""
    from bpfpga.hdl import control as C
    from bpfpga.host.device import read_meta
    dev = open_device(url, timeout)
    try:
        meta = read_meta(dev)
        d = {"device": dev.url, "slots": dev.reg(C.R_PROG_LEN),
             "commits": dev.reg(C.R_COMMITS), "crc": f"0x{dev.reg(C.R_PROG_CRC):08x}",
             "enabled": bool(dev.reg(C.R_CTRL) & C.CTRL_ENABLE),
             "budget": dev.reg(C.R_BUDGET), "maps": dev.reg(C.R_NMAPS)}
        if meta is not None:
            d.update({"object": meta["object"], "sha256": meta["sha256"],
                      "name": meta["program"], "section": meta["section"],
                      "map_names": meta["maps"], "loaded_at": meta["loaded"]})
    finally:
        dev.close()
    if as_json:
        click.echo(json.dumps(d, indent=2))
    elif meta is None:
        click.echo(f"{d['device']}: no program loaded by bpfpga ({d['slots']} slots "
                   f"committed, {d['commits']} commits)")
    else:
        click.echo(f"{d['name']}  section {d['section']}  {d['slots']} slots  "
                   f"{'running' if d['enabled'] else 'paused'}\n"
                   f"  object {d['object']} (sha256 {(d['sha256'] or 'none')[:16]}...)\n"
                   f"  committed image CRC-32 {d['crc']} (checked by the engine)\n"
                   f"  loaded {d['loaded_at']}  budget {d['budget']} insns  "
                   f"maps: {', '.join(d['map_names']) or 'none'}")
