"""The XDP engine's units (hdl/engine/), each alone in Amaranth's simulator (no Verilator):
the counter bank, dispatch, the egress crossbar, the output-ring writer, the trace FIFO, the
injector, the program loader, the control port and a lane. Records are read back with the
host's own unpack (bpfpga/records.py), so the engine's layouts and the host agree."""
import struct
import zlib
from dataclasses import replace

from bpfpga import records as R
from bpfpga.hdl import control as C
from bpfpga.hdl.config import DEFAULT
from bpfpga.hdl.engine.control import ControlPort
from bpfpga.hdl.engine.counters import CounterBank
from bpfpga.hdl.engine.dispatch import Dispatch
from bpfpga.hdl.engine.egress import EgressCrossbar
from bpfpga.hdl.engine.injector import Injector
from bpfpga.hdl.engine.loader import ProgramLoader
from bpfpga.hdl.engine.rings import RingWriter
from bpfpga.hdl.engine.trace import TraceFIFO
from conftest import simulate


def beats(frame: bytes):
    """(data, keep, first, last) of a frame, 8 bytes a beat"""
    out = []
    for i in range(0, len(frame), 8):
        b = frame[i:i + 8]
        out.append((int.from_bytes(b.ljust(8, b"\0"), "little"), (1 << len(b)) - 1,
                    int(i == 0), int(i + 8 >= len(frame))))
    return out


def set_beat(ctx, s, beat):
    d, k, f, la = beat
    ctx.set(s.payload.data, d)
    ctx.set(s.payload.keep, k)
    ctx.set(s.payload.first, f)
    ctx.set(s.payload.last, la)


def test_counter_bank_counts_every_event_and_clears():
    dut = CounterBank({3: 2, 7: 1})
    got = {}

    async def read(ctx, i):
        ctx.set(dut.rd, 1)
        ctx.set(dut.idx, i)
        await ctx.tick()
        ctx.set(dut.rd, 0)
        return ctx.get(dut.rdata)

    async def tb(ctx):
        for k in range(5):                  # both sources of counter 3, every cycle
            ctx.set(dut.ev3, 0b11)
            ctx.set(dut.ev7, k == 2)
            await ctx.tick()
        ctx.set(dut.ev3, 0)
        ctx.set(dut.ev7, 0)
        got["now"] = [await read(ctx, 3), await read(ctx, 7), await read(ctx, 5)]
        for _ in range(10):                 # folded into the RAM by the scanner
            await ctx.tick()
        got["later"] = [await read(ctx, 3), await read(ctx, 7)]
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        got["clear"] = [await read(ctx, 3), await read(ctx, 7)]

    simulate(dut, tb)
    assert got == {"now": [10, 1, 0], "later": [10, 1], "clear": [0, 0]}


def test_dispatch_gives_a_free_lane_and_drops_when_none_is():
    dut = Dispatch(2, 1)                    # a port and the injector, one lane
    frame = bytes(range(20))
    got = {"rx": [], "take": []}

    async def tb(ctx):
        ctx.set(dut.lane0.free, 1)
        ctx.set(dut.inj_port, 5)
        s, o = dut.i0, dut.i1
        for beat in beats(frame):
            ctx.set(s.valid, 1)
            set_beat(ctx, s, beat)
            while True:
                take = ctx.get(dut.lane0.take)
                if take:
                    got["take"].append((ctx.get(dut.lane0.port), ctx.get(dut.rx)))
                if ctx.get(dut.lane0.rx.valid):
                    got["rx"].append(ctx.get(dut.lane0.rx.payload.data))
                ready = ctx.get(s.ready)
                await ctx.tick()
                if take:
                    ctx.set(dut.lane0.free, 0)      # the lane took it
                if ready:
                    break
        ctx.set(s.valid, 0)
        # the injector's frame finds no free lane: dropped whole, never stalled
        ctx.set(o.valid, 1)
        set_beat(ctx, o, beats(frame)[0])
        got["nobuf"] = ctx.get(dut.nobuf)
        await ctx.tick()
        got["drop_ready"] = ctx.get(o.ready)

    simulate(dut, tb)
    assert got["take"] == [(0, 0b01)]
    assert got["rx"] == [b[0] for b in beats(frame)]
    assert got["nobuf"] == 0b10 and got["drop_ready"] == 1


def test_egress_crossbar_holds_an_output_for_one_lane_to_its_last_beat():
    dut = EgressCrossbar(1, 2)
    got = []

    async def tb(ctx):
        a, b = dut.l0, dut.l1
        for L, dest in ((a, 1), (b, 0)):    # lane 0 to the ring, lane 1 to port 0
            ctx.set(L.req, 1)
            ctx.set(L.dest, dest)
            ctx.set(L.s.valid, 1)
        ctx.set(dut.o0.ready, 1)
        ctx.set(dut.o1.ready, 1)
        set_beat(ctx, b.s, (0x1111, 0xFF, 1, 0))
        set_beat(ctx, a.s, (0x2222, 0xFF, 1, 1))
        await ctx.tick()                    # both outputs taken
        got.append((ctx.get(dut.o0.valid), ctx.get(dut.o0.payload.data), ctx.get(dut.tx),
                    ctx.get(dut.o1.valid), ctx.get(dut.o1.payload.data), ctx.get(dut.owner)))
        set_beat(ctx, b.s, (0x3333, 0x0F, 0, 1))
        got.append(ctx.get(dut.tx))

    simulate(dut, tb)
    assert got == [(1, 0x1111, 0, 1, 0x2222, 0), 1]


async def write_words(ctx, port, words):
    """64-bit words into a memory behind a HostPortSignature, 32 bits a write"""
    for i, w in enumerate(words):
        for half in range(2):
            ctx.set(port.addr, 2 * i + half)
            ctx.set(port.wdata, (w >> (32 * half)) & 0xFFFF_FFFF)
            ctx.set(port.we, 1)
            await ctx.tick()
    ctx.set(port.we, 0)


async def read_words(ctx, port, first, n):
    """64-bit words of a memory behind a HostPortSignature (its read is synchronous)"""
    out = []
    for w in range(first, first + n):
        ctx.set(port.addr, 2 * w)
        await ctx.tick()
        out.append(ctx.get(port.rdata))
    return out


def test_ring_writer_writes_the_header_the_host_unpacks():
    dut = RingWriter(64, 2)
    frame = bytes(range(100, 113))
    want = dict(len=len(frame), verdict=2, trap=0, in_port=1, core=1, redirect=7,
                r0=0x1_0000_0002, trap_pc=0, insns=44, cycles=91, tailcalls=3, seq=0xABCDE)
    got = {}

    async def tb(ctx):
        hdr = dut.hdr[1]
        for k, v in want.items():
            ctx.set(getattr(hdr, k), v)
        ctx.set(dut.owner, 1)
        ctx.set(dut.i.valid, 1)
        for beat in beats(frame):
            set_beat(ctx, dut.i, beat)
            while True:
                ready = ctx.get(dut.i.ready)
                await ctx.tick()
                if ready:
                    break
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        got["wr"] = ctx.get(dut.wr)
        got["words"] = await read_words(ctx, dut.host, 0, C.HDR_WORDS + 2)

    simulate(dut, tb)
    assert got["wr"] == C.HDR_WORDS + 2
    assert R.RING_HDR.unpack(got["words"]) == want
    body = b"".join(w.to_bytes(8, "little") for w in got["words"][C.HDR_WORDS:])
    assert body[:len(frame)] == frame


def test_trace_fifo_writes_records_and_drops_when_full():
    dut = TraceFIFO(2, 1)
    want = dict(fmt=0x4000_0010, fmt_size=12, core=0, len=9, seq=77, ktime=123456789,
                arg0=1, arg1=2 ** 64 - 1, arg2=3)
    got = {"acks": []}

    async def tb(ctx):
        for k, v in want.items():
            ctx.set(getattr(dut.l0.rec, k), v)
        for _ in range(3):                  # the third finds the FIFO full
            ctx.set(dut.l0.req, 1)
            n = 0
            while not ctx.get(dut.l0.ack):
                await ctx.tick()
                n += 1
            got["acks"].append((n, ctx.get(dut.dropped)))
            await ctx.tick()
            ctx.set(dut.l0.req, 0)
            await ctx.tick()
        got["wr"] = ctx.get(dut.wr)
        got["words"] = await read_words(ctx, dut.host, C.TRACE_SLOT_WORDS, C.TRACE_REC_WORDS)

    simulate(dut, tb)
    assert got["wr"] == 2
    assert [d for _, d in got["acks"]] == [0, 0, 1]
    assert R.TRACE_REC.unpack(got["words"]) == want


def test_injector_sends_the_frames_the_host_wrote():
    dut = Injector(16)
    frame = bytes(range(1, 12))
    words = R.INJ_HDR.pack(len=len(frame), in_port=2) + \
        list(struct.unpack("<2Q", frame.ljust(16, b"\0")))
    got = []

    async def tb(ctx):
        await write_words(ctx, dut.host, words)
        ctx.set(dut.wr, len(words))
        ctx.set(dut.o.ready, 1)
        for _ in range(20):
            if ctx.get(dut.o.valid):
                got.append((ctx.get(dut.o.payload.data), ctx.get(dut.o.payload.keep),
                            ctx.get(dut.o.payload.last), ctx.get(dut.port)))
            await ctx.tick()
        got.append(ctx.get(dut.rd))

    simulate(dut, tb)
    want = [(d, k, la, 2) for d, k, _, la in beats(frame)]
    assert got == want + [len(words)]


def test_program_loader_checks_and_commits_only_with_the_key():
    dut = ProgramLoader(8)
    code = bytes(range(24))                 # 3 slots
    slots = struct.unpack("<3Q", code)
    crc = zlib.crc32(code)
    got = {"pm": []}

    async def strobe(ctx, sig, arg):
        ctx.set(dut.arg, arg)
        ctx.set(sig, 1)
        await ctx.tick()
        ctx.set(sig, 0)

    async def wait(ctx, sig):
        for _ in range(100):
            if ctx.get(dut.pm_we):
                got["pm"].append((ctx.get(dut.pm_addr), ctx.get(dut.pm_data)))
            if not ctx.get(sig):
                return
            await ctx.tick()
        raise AssertionError("busy")

    async def tb(ctx):
        await write_words(ctx, dut.host, slots)
        await strobe(ctx, dut.check, 3)
        await wait(ctx, dut.check_busy)
        got["crc"] = ctx.get(dut.crc)
        await strobe(ctx, dut.key, crc ^ 1)     # the wrong key: refused
        await strobe(ctx, dut.commit, 3)
        await wait(ctx, dut.commit_busy)
        got["bad"] = (ctx.get(dut.refused), ctx.get(dut.commits), got["pm"][:])
        await strobe(ctx, dut.key, crc)
        await strobe(ctx, dut.commit, 3)
        await wait(ctx, dut.commit_busy)
        got["good"] = (ctx.get(dut.refused), ctx.get(dut.commits), ctx.get(dut.prog_len),
                       ctx.get(dut.prog_crc))

    simulate(dut, tb)
    assert got["crc"] == crc
    assert got["bad"] == (1, 0, [])
    assert got["good"] == (1, 1, 3, crc)
    assert got["pm"] == list(enumerate(slots))


def test_control_port_guards_writes_and_reads_registers():
    cfg = replace(DEFAULT, cores=2)
    dut = ControlPort(cfg)
    got = {}

    async def access(ctx, adr, dat=None):
        wb = dut.wb
        ctx.set(wb.cyc, 1)
        ctx.set(wb.stb, 1)
        ctx.set(wb.adr, adr)
        ctx.set(wb.we, dat is not None)
        ctx.set(wb.dat_w, dat or 0)
        for _ in range(10):
            await ctx.tick()
            if ctx.get(wb.ack):
                r = ctx.get(wb.dat_r)
                ctx.set(wb.cyc, 0)
                ctx.set(wb.stb, 0)
                await ctx.tick()
                return r
        raise AssertionError("no ack")

    async def tb(ctx):
        ctx.set(dut.lanes, 0b10)
        ctx.set(dut.idle, 1)
        await access(ctx, C.REGS + C.R_BUDGET, 77)          # no window: refused
        got["refused"] = await access(ctx, C.REGS + C.R_BUDGET)
        win = (C.WIN_TAG << 28) | (0 << 20) | (C.REGS + C.R_BUDGET)
        await access(ctx, C.REGS + C.R_WIN, win)
        await access(ctx, C.REGS + C.R_WIN_CHECK, ~win & 0xFFFF_FFFF)
        await access(ctx, C.REGS + C.R_BUDGET, 77)
        got["budget"] = await access(ctx, C.REGS + C.R_BUDGET)
        got["guard"] = await access(ctx, C.REGS + C.R_GUARD)
        got["info"] = R.INFO.unpack_int(await access(ctx, C.REGS + C.R_INFO))
        got["status"] = R.STATUS.unpack_int(await access(ctx, C.REGS + C.R_STATUS))
        got["ident"] = await access(ctx, C.REGS + C.R_IDENT)

    simulate(dut, tb)
    assert got["refused"] != 77 and got["budget"] == 77
    assert got["guard"] & 0xFFFF == 1 and (got["guard"] >> 16) & 0xFF == 1
    assert got["info"] == {"cores": 2, "ports": cfg.ports,
                           "log2_pm_depth": (cfg.pm_depth - 1).bit_length(),
                           "max_maps": cfg.max_maps}
    assert got["status"] == {"idle": 1, "commit_busy": 0, "check_busy": 0, "mapclr_busy": 0,
                             "lanes": 0b10}
    assert got["ident"] == C.IDENT


def test_lane_runs_a_frame_through_its_core_and_sends_it_back_out():
    from bpfpga.compiler.asm import assemble
    from bpfpga.hdl.engine.lane import Lane
    cfg = replace(DEFAULT, cores=1, ports=2, trace_depth=0)
    dut = Lane(cfg, 0)
    code = assemble("mov %r0, 3\nexit")             # XDP_TX
    frame = bytes(range(64))
    got = {"out": [], "verdicts": 0}

    async def tb(ctx):
        for i, w in enumerate(struct.unpack(f"<{len(code) // 8}Q", code)):
            ctx.set(dut.pm_we, 1)
            ctx.set(dut.pm_addr, i)
            ctx.set(dut.pm_data, w)
            await ctx.tick()
        ctx.set(dut.pm_we, 0)
        ctx.set(dut.prog_len, len(code) // 8)
        ctx.set(dut.budget, 1000)
        ctx.set(dut.enable, 1)
        assert ctx.get(dut.claim.free)
        ctx.set(dut.claim.take, 1)
        ctx.set(dut.claim.port, 1)
        ctx.set(dut.claim.seq, 9)
        await ctx.tick()
        ctx.set(dut.claim.take, 0)
        for beat in beats(frame):
            ctx.set(dut.claim.rx.valid, 1)
            set_beat(ctx, dut.claim.rx, beat)
            await ctx.tick()
        ctx.set(dut.claim.rx.valid, 0)
        ctx.set(dut.eg.s.ready, 1)
        for _ in range(200):
            if ctx.get(dut.ev.verdict):
                got["verdicts"] = ctx.get(dut.ev.verdict)
            if ctx.get(dut.eg.s.valid):
                got["dest"] = ctx.get(dut.eg.dest)
                got["out"].append(ctx.get(dut.eg.s.payload.data))
                if ctx.get(dut.eg.s.payload.last):
                    break
            await ctx.tick()
        got["hdr"] = {k: ctx.get(getattr(dut.hdr, k)) for k in ("len", "verdict", "in_port",
                                                                "seq", "insns")}

    simulate(dut, tb)
    assert got["verdicts"] == 1 << 3
    assert got["dest"] == 1
    assert b"".join(w.to_bytes(8, "little") for w in got["out"]) == frame
    # the lane does not count the image's trampoline jump (sim/rtl_xdp.py), absent here
    assert got["hdr"] == {"len": 64, "verdict": 3, "in_port": 1, "seq": 9, "insns": 1}
