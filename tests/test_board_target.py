"""The board target (host/board.py) on `bpfpga sim-board`: `bpfpga diff --targets ref,board
--device socket://...` and `bpfpga run --target board` through the one loader; the engine's
image linked by compiler/link.py with the ISA's encoder; the loader's placement beside the
running object; the link-fault port (host/linkfault.py)."""
import json
import sys
import time
from pathlib import Path

import pytest

from bpfpga import isa, memmap
from bpfpga.compiler.elf import load_object
from bpfpga.compiler.link import hw_layout, link_image, program_pc
from bpfpga.compiler.select import xdp_view

ROOT = Path(__file__).resolve().parents[1]
LB = ROOT / "examples" / "lb"
TAIL = ROOT / "examples" / "tailcall"


def test_link_image_trampoline_and_placement():
    o = xdp_view(load_object(str(next(TAIL.glob("*.o")))))
    img, map_len = hw_layout(o, 2, 1 << 19, map_base=4096, first_map=3)
    code, prog_no, spans = link_image(o, o.programs[0], img)
    ins = isa.decode(code)
    assert (ins[0].opcode, ins[0].dst, ins[0].imm) == (isa.BPF_JMP | isa.BPF_JNE, 2, 0)
    table = 1 + ins[0].off
    assert table == spans[-1][1]
    # the table: jeq r2, k + 1 to each program's first slot, then r0 = 0; exit
    slots = [0]
    for i in ins:
        slots.append(slots[-1] + i.slots)
    at = {s: i for s, i in zip(slots, ins)}
    for k, (s, _, name) in enumerate(spans):
        j = at[table + k]
        assert (j.opcode, j.imm, table + k + 1 + j.off) == (isa.BPF_JMP | isa.BPF_JEQ, k + 1, s)
        assert prog_no[name] == k and program_pc(spans, s + 1) == (name, 1)
    assert [at[table + len(spans)].opcode, at[table + len(spans) + 1].opcode] == \
        [isa.BPF_ALU64 | isa.BPF_MOV, isa.BPF_JMP | isa.BPF_EXIT]
    # map references resolved to the placed handles and addresses
    handles = {r.handle for r in img.regions}
    placed = handles | {r.base + k for r in img.regions for k in range(r.md.value_size)}
    refs = 0
    for s, _, name in spans:
        pc = s
        for i in isa.decode(bytes(o.program(name).insns), strict=False):
            if i.slots == 2 and i.src in (isa.BPF_PSEUDO_MAP_IDX, isa.BPF_PSEUDO_MAP_IDX_VALUE):
                assert at[pc].src == 0 and at[pc].imm in placed
                refs += 1
            pc += i.slots
    assert refs
    assert min(r.n for r in img.regions) == 3
    assert min(r.base for r in img.regions) == memmap.MAP_BASE + 4096
    assert map_len > 4096


def test_fault_port_kinds():
    from bpfpga.host.linkfault import FaultAt

    class Pipe:
        timeout = 0.01

        def __init__(self):
            self.out, self.back = b"", b""

        def write(self, d):
            self.out += d

        def read(self, n):
            d, self.back = self.back[:n], self.back[n:]
            return d

        def reset_input_buffer(self):
            pass

        def close(self):
            self.closed = True

    data = bytes(range(20))
    for kind, want in (("drop", data[:5] + data[8:]), ("corrupt", data[:5] + b"\x0d" + data[6:]),
                       ("cut", data[:5])):
        p = Pipe()
        f = FaultAt(p, kind, 5, "tx", n=3, bit=3)
        f.write(data[:3])
        f.write(data[3:])
        assert p.out == want and f.fired, kind
    p = Pipe()
    p.back = data
    f = FaultAt(p, "delay", 5, "rx", seconds=0.2)
    assert f.read(8) == data[:5]
    assert f.read(8) == b""                     # silence while held
    time.sleep(0.25)
    assert f.read(20) == data[5:8] and f.read(20) == data[8:]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    from tests.test_simboard import Board
    b = Board(tmp_path_factory.mktemp("board"))
    yield b
    b.close()


def test_diff_ref_board_on_sim_board(board):
    r = board.cli("diff", str(LB / "lb.o"), "--targets", "ref,board", "--device", board.url,
                  "--maps", str(LB / "maps.json"), "--pcap", str(LB / "traffic.pcap"),
                  "--max-packets", "24", "-j", check=False)
    assert r.returncode == 0, r.stderr + r.stdout
    d = json.loads(r.stdout)
    assert d["targets"] == ["ref", "board"] and d["compared"] == 24
    assert d["divergences"] == [] and d["map_divergences"] == []
    assert d["cycles_per_packet"]["board"]["packets"] == 24


def test_run_board_and_placement(board, tmp_path):
    from bpfpga.hdl import control as C
    from bpfpga.host.device import Device, live_record
    out = tmp_path / "out.pcap"
    r = board.cli("run", str(LB / "lb.o"), "--target", "board", "--maps",
                  str(LB / "maps.json"), "--pcap", str(LB / "traffic.pcap"), "--out", str(out),
                  "-j")
    d = json.loads(r.stdout)
    ref = board.cli("run", str(LB / "lb.o"), "--target", "ref", "--maps",
                    str(LB / "maps.json"), "--pcap", str(LB / "traffic.pcap"), "-j")
    assert [p["verdict"] for p in d["packets"]] == \
        [p["verdict"] for p in json.loads(ref.stdout)["packets"]]
    dev = Device(board.url, timeout=10)
    try:
        _, a = live_record(dev)
        board.cli("prog", "load", str(LB / "lb.o"))
        slot, b = live_record(dev)
        # the second load went beside the first: other map memory, other descriptors
        assert b["seq"] == a["seq"] + 1
        assert b["map_base"] >= a["map_end"] or b["map_end"] <= a["map_base"]
        assert b["first_map"] >= a["first_map"] + a["nmaps"] or \
            b["first_map"] + b["nmaps"] <= a["first_map"]
        assert dev.reg(C.R_PROG_CRC) == b["prog_crc"]
        assert dev.reg(C.R_CTRL) & C.CTRL_ENABLE
    finally:
        dev.close()


def test_link_faults_short(board):
    """Two trials of each fault kind for a load and for a map update (bench/link_faults.py
    runs the 50-trial campaign): every outcome as docs/simboard.md promises."""
    sys.path.insert(0, str(ROOT))
    from bench.link_faults import campaign
    res = campaign(board.url, 2)
    bad = [r for r in res if not r["good"]]
    assert not bad, bad
    # the fault lands inside the operation (a run placed elsewhere may carry fewer bytes
    # than the counted one, so a fault near the end can miss it)
    for op in ("load", "update"):
        for kind in ("cut", "drop", "corrupt", "delay"):
            assert any(r["fired"] for r in res if (r["op"], r["kind"]) == (op, kind)), \
                (op, kind)
