"""bpfpga/records.py: the records the engine and the host share, one field table each; the
host reads them without Amaranth, and the engine's layouts (hdl/layouts.py) are the tables'."""
import subprocess
import sys

import pytest
from bpfpga import records as R


def test_the_host_side_imports_no_amaranth():
    code = ("import sys; import bpfpga.records, bpfpga.maphash, bpfpga.hdl.control, "
            "bpfpga.compiler.link; assert 'amaranth' not in sys.modules, 'amaranth imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("rec", [R.RING_HDR, R.INJ_HDR, R.TRACE_REC, R.MAP_DESC, R.STATUS,
                                 R.INFO])
def test_pack_unpack_round_trip_and_layout_agree(rec):
    from bpfpga.hdl.layouts import layout
    vals = {f.name: (0x5A5A_5A5A_5A5A_5A5A + 3 * i) & f.mask for i, f in enumerate(rec.fields)}
    words = rec.pack(**vals)
    assert len(words) == rec.words and all(w >> rec.word_bits == 0 for w in words)
    assert rec.unpack(words) == vals
    lay = layout(rec)
    assert lay.size == rec.bits
    v = rec.pack_int(**vals)
    view = lay.const(vals)
    assert view.as_value().value == v


def test_values_are_cut_to_their_field():
    assert R.RING_HDR.unpack(R.RING_HDR.pack(len=0x1_0005))["len"] == 5
    assert R.STATUS.mask("mapclr_busy") == 8


def test_hw_descriptor_words():
    from bpfpga.compiler.link import hw_descriptor
    from types import SimpleNamespace as NS
    md = NS(type=1, key_size=4, value_size=16, max_entries=64)
    r = NS(md=md, base=0x4000_0100, stride=16, key_stride=8, cpus=1, slots=128,
           key_base=0x4000_1000, meta_base=0x4000_2000, nslots=128)
    d = hw_descriptor(r)
    assert d == [1 | 4 << 8 | 16 << 16, 64, 0x100, 16 | 8 << 16, 0, 0x1000, 0x2000, 127]
    assert R.MAP_DESC.unpack(d)["mask"] == 127
