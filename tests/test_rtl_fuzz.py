"""Differential fuzzing: 2,000 hypothesis-generated programs on rtl and on the reference
machine, in one Verilator run; r0, trap reason, trap pc, executed instructions and the final
mem must agree (stack contents are folded into r0 by each program's epilogue)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.rtl


def test_rtl_agrees_with_reference_on_2000_programs():
    from bpfpga.sim.rtl_fuzz import collect, compare
    jobs = collect(2000)
    assert len(jobs) == 2000
    diffs, stats = compare(jobs)
    assert not diffs, f"{len(diffs)} of {len(jobs)} programs differ:\n" + "\n".join(diffs[:10])
    # the generator must reach the interesting outcomes, or the comparison proves little
    assert stats["traps"].get(0, 0) > 500
    for trap in (3, 5, 7):         # memory, budget, unknown helper
        assert stats["traps"].get(trap, 0) > 10, stats
