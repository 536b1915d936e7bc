"""``amaranth.lib.data`` layouts of the records the engine shares with the host, built from
the field tables of bpfpga/records.py (the host packs and unpacks with the same tables)."""
from __future__ import annotations

from amaranth.lib import data

from bpfpga import records


def layout(rec: records.Record) -> data.FlexibleLayout:
    """The record as a layout: each field at its offset; the gaps between fields read as 0
    when a view of it is built from a zeroed signal."""
    return data.FlexibleLayout(rec.bits, {f.name: data.Field(f.width, f.offset)
                                          for f in rec.fields})


RING_HDR = layout(records.RING_HDR)
INJ_HDR = layout(records.INJ_HDR)
TRACE_REC = layout(records.TRACE_REC)
MAP_DESC = layout(records.MAP_DESC)
STATUS = layout(records.STATUS)
INFO = layout(records.INFO)
