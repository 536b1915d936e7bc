"""Helper semantics of the reference machine checked against the kernel: the same small XDP
programs on the same random packets must give the same verdicts, packets and maps."""
import random

import pytest

from bpfpga import isa
from bpfpga.compiler.asm import assemble_insns
from bpfpga.obj import (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LPM_TRIE,
                        BPF_MAP_TYPE_LRU_HASH, BpfObject, MapDef, Program)
from bpfpga.sim.xdp import XdpRef


def kernel_or_skip():
    from bpfpga.host.kernel import kernel_available
    ok, why = kernel_available()
    if not ok:
        pytest.skip(why)
    from bpfpga.host.kernel import KernelTarget
    return KernelTarget


def build(src: str, maps=(), helpers=()):
    ins = assemble_insns(src)
    for i in ins:
        if i.spec.kind == isa.LDDW and i.imm < 16 and "map" in src:
            pass
    # `lddw %rX, MAPIDX` followed by a `# map` comment is not expressible in the asm syntax:
    # the tests mark map loads with immediates >= 0x10000000 + index
    for i in ins:
        if i.spec.kind == isa.LDDW and (i.imm >> 28) == 1:
            i.src = isa.BPF_PSEUDO_MAP_IDX
            i.imm &= 0xFFFF
    return BpfObject("t.o", [Program("p", "xdp", isa.encode(ins), helpers=list(helpers))],
                     list(maps), license="GPL")


PROLOG = """
mov %r6, %r1
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r2, %r7
add %r2, 16
jgt %r2, %r8, short
"""
SHORT = """
short:
mov %r0, 1
exit
"""

ADJUST_HEAD = PROLOG + """
ldxb %r9, [%r7+0]
lsh %r9, 56
arsh %r9, 55
mov %r1, %r6
mov %r2, %r9
call 44
mov %r9, %r0
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r2, %r7
add %r2, 8
jgt %r2, %r8, short
stxw [%r7+0], %r9
mov %r0, 3
exit
""" + SHORT

ADJUST_TAIL = PROLOG + """
ldxb %r9, [%r7+1]
lsh %r9, 56
arsh %r9, 54
mov %r1, %r6
mov %r2, %r9
call 65
mov %r9, %r0
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r2, %r7
add %r2, 8
jgt %r2, %r8, short
stxw [%r7+4], %r9
mov %r0, 3
exit
""" + SHORT

ADJUST_META = PROLOG + """
ldxb %r9, [%r7+2]
lsh %r9, 56
arsh %r9, 58
mov %r1, %r6
mov %r2, %r9
call 54
mov %r9, %r0
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
ldxw %r5, [%r6+8]
mov %r2, %r5
add %r2, 4
jgt %r2, %r7, nometa
stw [%r5+0], 0x5a5a5a5a
nometa:
mov %r2, %r7
add %r2, 8
jgt %r2, %r8, short
stxw [%r7+0], %r9
mov %r0, 2
exit
""" + SHORT

MAPS = PROLOG + """
ldxw %r1, [%r7+0]
and %r1, 7
stxw [%r10-4], %r1
ldxdw %r1, [%r7+8]
stxdw [%r10-16], %r1
ldxb %r9, [%r7+4]
mov %r2, %r9
and %r2, 3
jeq %r2, 3, delete
lddw %r1, 0x10000000
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -16
mov %r4, %r9
rsh %r4, 2
and %r4, 3
call 2
ja record
delete:
lddw %r1, 0x10000000
mov %r2, %r10
add %r2, -4
call 3
record:
stxdw [%r10-24], %r0
stw [%r10-28], 0
ldxb %r1, [%r7+5]
and %r1, 15
stxw [%r10-28], %r1
lddw %r1, 0x10000001
mov %r2, %r10
add %r2, -28
mov %r3, %r10
add %r3, -24
mov %r4, 0
call 2
lddw %r1, 0x10000000
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, miss
ldxdw %r1, [%r0+0]
add %r1, 1
stxdw [%r0+0], %r1
mov %r0, 3
exit
miss:
mov %r0, 2
exit
""" + SHORT

LPM = PROLOG + """
stw [%r10-8], 32
ldxw %r1, [%r7+0]
stxw [%r10-4], %r1
lddw %r1, 0x10000000
mov %r2, %r10
add %r2, -8
call 1
jeq %r0, 0, miss
ldxw %r1, [%r0+0]
stxw [%r7+8], %r1
mov %r0, 3
exit
miss:
mov %r0, 2
exit
""" + SHORT


def packets(seed, n=150):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ln = rng.choice([14, 15, 16, 20, 24, 40, 60, 64, 100, 200, 1500])
        p = bytes(rng.getrandbits(8) for _ in range(ln))
        out.append(p)
    return out


def compare(obj, pkts, maps=(), prefill=None):
    K = kernel_or_skip()
    ref, ker = XdpRef(obj), K(obj)
    try:
        if prefill:
            prefill(ref)
            prefill(ker)
        for i, p in enumerate(pkts):
            a, b = ref.run(p), ker.run(p)
            assert (a.verdict, a.retval) == (b.verdict, b.retval), f"packet {i}"
            assert a.packet == b.packet, f"packet {i}: {a.packet.hex()} != {b.packet.hex()}"
        for name in maps:
            assert sorted(ref.map_dump(name)) == sorted(ker.map_dump(name)), name
    finally:
        ker.close()


@pytest.mark.parametrize("src,helper", [(ADJUST_HEAD, 44), (ADJUST_TAIL, 65),
                                        (ADJUST_META, 54)], ids=["head", "tail", "meta"])
def test_adjust_helpers_match_kernel(src, helper):
    compare(build(src, helpers=[helper]), packets(helper))


@pytest.mark.parametrize("mtype", [BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY],
                         ids=["hash", "array"])
def test_map_helpers_match_kernel(mtype):
    maps = [MapDef("m", mtype, 4, 8, 6), MapDef("rets", BPF_MAP_TYPE_ARRAY, 4, 8, 16)]
    compare(build(MAPS, maps, [1, 2, 3]), packets(7, 300), ["m", "rets"])


def test_lru_hash_below_capacity_matches_kernel():
    maps = [MapDef("m", BPF_MAP_TYPE_LRU_HASH, 4, 8, 64),
            MapDef("rets", BPF_MAP_TYPE_ARRAY, 4, 8, 16)]
    compare(build(MAPS, maps, [1, 2, 3]), packets(8, 300), ["m", "rets"])


def test_lpm_trie_matches_kernel():
    maps = [MapDef("m", BPF_MAP_TYPE_LPM_TRIE, 8, 4, 32, map_flags=1)]
    rng = random.Random(3)
    entries = []
    for i in range(20):
        plen = rng.choice([0, 1, 8, 9, 16, 24, 31, 32])
        entries.append((plen.to_bytes(4, "little") + rng.getrandbits(32).to_bytes(4, "big"),
                        i.to_bytes(4, "little")))

    def fill(t):
        for k, v in entries:
            t.map_update("m", k, v)
    pk = []
    for p in packets(9, 200):
        if len(p) >= 16 and rng.random() < 0.5:
            k = rng.choice(entries)[0]
            p = k[4:] + p[4:]
        pk.append(p)
    compare(build(LPM, maps, [1]), pk, ["m"], prefill=fill)
