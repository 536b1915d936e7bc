"""The kernel target: bpf() through ctypes. Every test that needs the syscall skips with the
reason when it is unavailable (not root, seccomp, no BPF)."""
from __future__ import annotations

import errno
import json
import re
import socket
import struct
from pathlib import Path

import pytest

from bpfpga import isa
from bpfpga import obj as O
from bpfpga.errors import TargetError
from bpfpga.isa import Insn
from bpfpga.obj import BpfObject, MapDef, Program
from bpfpga.target import XdpContext
from bpfpga.host import bpfsys as S
from bpfpga.host import kernel as K

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=False)
def kernel():
    ok, why = K.kernel_available()
    if not ok:
        pytest.skip(why)


# --- a tiny encoder over isa.Insn -----------------------------------------------------------
def mov(dst, imm):
    return Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_K, dst, 0, 0, imm)


def movr(dst, src):
    return Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_X, dst, src)


def addi(dst, imm):
    return Insn(isa.BPF_ALU64 | isa.BPF_ADD | isa.BPF_K, dst, 0, 0, imm)


def ldx(size, dst, src, off):
    return Insn(isa.BPF_LDX | isa.BPF_MEM | size, dst, src, off)


def st(size, dst, off, imm):
    return Insn(isa.BPF_ST | isa.BPF_MEM | size, dst, 0, off, imm)


def jgt(dst, src, off):
    return Insn(isa.BPF_JMP | isa.BPF_JGT | isa.BPF_X, dst, src, off)


def jeqi(dst, imm, off):
    return Insn(isa.BPF_JMP | isa.BPF_JEQ | isa.BPF_K, dst, 0, off, imm)


def map_ref(dst, idx):
    return Insn(isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW, dst, isa.BPF_PSEUDO_MAP_IDX, 0, idx)


def map_value(dst, idx, off):
    return Insn(isa.BPF_LD | isa.BPF_IMM | isa.BPF_DW, dst, isa.BPF_PSEUDO_MAP_IDX_VALUE, 0,
                idx | (off << 32))


def call(helper):
    return Insn(isa.BPF_JMP | isa.BPF_CALL, 0, 0, 0, helper)


def xadd64(dst, off, src):
    return Insn(isa.BPF_STX | isa.BPF_ATOMIC | isa.BPF_DW, dst, src, off, isa.BPF_ADD)


EXIT = Insn(isa.BPF_JMP | isa.BPF_EXIT)
PKT = bytes(range(64))


def prog(name, *insns, section="xdp"):
    return Program(name, section, isa.encode(list(insns)))


def obj(*programs, maps=(), license="GPL"):
    return BpfObject("test.o", list(programs), list(maps), license=license)


def ret(v):
    return prog(f"ret{v}", mov(0, v), EXIT)


def key32(i):
    return struct.pack("<I", i)


# a program that counts packets in map 0 under key 0 (a value of at least 8 bytes)
def counter_prog():
    return prog("count",
                st(isa.BPF_W, 10, -4, 0),
                map_ref(1, 0), movr(2, 10), addi(2, -4), call(1),   # map_lookup_elem
                jeqi(0, 0, 2),
                mov(1, 1), xadd64(0, 0, 1),
                mov(0, isa.XDP_PASS), EXIT)


# --- without the kernel -------------------------------------------------------------------------
def test_relocate_maps_rewrites_by_index():
    code = isa.encode([map_ref(1, 1), map_value(2, 0, 12), EXIT])
    out = K.relocate_maps(code, [7, 9])
    ins = isa.decode(out)
    assert (ins[0].src, ins[0].imm) == (isa.BPF_PSEUDO_MAP_FD, 9)
    assert (ins[1].src, ins[1].imm & 0xFFFFFFFF, ins[1].imm >> 32) == \
        (isa.BPF_PSEUDO_MAP_VALUE, 7, 12)
    with pytest.raises(TargetError, match="map index 1"):
        K.relocate_maps(code, [7])


def test_verifier_reason_takes_the_last_meaningful_lines():
    log = ("func#0 @0\n0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\n"
           "processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0\n")
    assert K.verifier_reason(log) == "R0 !read_ok (at 0: (95) exit)"


def test_unavailable_message(monkeypatch):
    def refuse(cmd, attr, what):
        raise S.BpfError(errno.EPERM, what)
    monkeypatch.setattr(S, "bpf", refuse)
    monkeypatch.setattr(K, "_available", None)
    ok, why = K.kernel_available()
    assert not ok
    assert why.startswith("the bpf() syscall is unavailable: permission denied")
    with pytest.raises(TargetError, match="unavailable"):
        K.KernelTarget(obj(ret(2)))
    monkeypatch.setattr(K, "_available", None)   # the next test probes for real again


def test_possible_cpus():
    assert S.n_possible_cpus() >= 1


# --- programs -----------------------------------------------------------------------------------
@pytest.mark.parametrize("verdict", sorted(isa.XDP_VERDICTS))
def test_verdicts(kernel, verdict):
    with K.KernelTarget(obj(ret(verdict))) as t:
        r = t.run(PKT)
        assert r.verdict == verdict and r.retval == verdict
        assert r.packet == PKT
        assert r.redirect is None


def test_packet_write(kernel):
    p = prog("write",
             ldx(isa.BPF_W, 2, 1, 0), ldx(isa.BPF_W, 3, 1, 4),     # data, data_end
             movr(4, 2), addi(4, 14), jgt(4, 3, 4),
             st(isa.BPF_B, 2, 0, 0xAB), st(isa.BPF_H, 2, 12, 0x0608),
             mov(0, isa.XDP_TX), EXIT,
             mov(0, isa.XDP_DROP), EXIT)
    with K.KernelTarget(obj(p)) as t:
        r = t.run(PKT)
        assert r.verdict == isa.XDP_TX
        assert r.packet == b"\xab" + PKT[1:12] + b"\x08\x06" + PKT[14:]
        assert t.run(PKT).packet == r.packet      # a fresh buffer each run
        assert t.ns_per_packet(PKT, 100) > 0


def test_runt_and_ctx(kernel):
    p = prog("ifindex", ldx(isa.BPF_W, 0, 1, 12), EXIT)        # xdp_md.ingress_ifindex
    with K.KernelTarget(obj(p)) as t:
        with pytest.raises(TargetError, match="shorter than 14 bytes"):
            t.run(bytes(10))
        assert t.run(PKT).verdict == 1                           # default: lo
        if K.ctx_supported():
            others = [i for i, _ in socket.if_nameindex() if i != 1]
            if others:
                assert t.run(PKT, XdpContext(others[0], 0)).verdict == others[0]
            with pytest.raises(TargetError, match="no network device"):
                t.run(PKT, XdpContext(987654, 0))


def test_verifier_rejection(kernel):
    with pytest.raises(TargetError, match=r"rejected program 'bad': R0 !read_ok"):
        K.KernelTarget(obj(prog("bad", EXIT)))
    # out-of-bounds packet read without a bounds check
    p = prog("oob", ldx(isa.BPF_W, 2, 1, 0), ldx(isa.BPF_B, 0, 2, 0), EXIT)
    with pytest.raises(TargetError, match=r"invalid access to packet, off=0 size=1.*outside of the packet \(at 1: \(71\)"):
        K.KernelTarget(obj(p))


def test_unknown_program(kernel):
    with pytest.raises(TargetError, match="no XDP program 'nope'"):
        K.KernelTarget(obj(ret(2)), "nope")


# --- maps ---------------------------------------------------------------------------------------
PLAIN = [
    MapDef("hash", O.BPF_MAP_TYPE_HASH, 4, 8, 16),
    MapDef("array", O.BPF_MAP_TYPE_ARRAY, 4, 8, 4),
    MapDef("lru", O.BPF_MAP_TYPE_LRU_HASH, 4, 8, 16),
    MapDef("pc_array", O.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 12, 4),
    MapDef("pc_hash", O.BPF_MAP_TYPE_PERCPU_HASH, 4, 12, 16),
    MapDef("lru_pc", O.BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 12, 16),
]


@pytest.mark.parametrize("md", PLAIN, ids=lambda m: m.type_name)
def test_map_roundtrip(kernel, md):
    with K.KernelTarget(obj(ret(2), maps=[md])) as t:
        n = S.n_possible_cpus()
        v = bytes(range(1, md.value_size + 1))
        val = [v] + [bytes(md.value_size)] * (n - 1) if md.percpu else v
        t.map_update(md.name, key32(2), val)
        assert t.map_lookup(md.name, key32(2)) == val
        dump = t.map_dump(md.name)
        if md.type in (O.BPF_MAP_TYPE_ARRAY, O.BPF_MAP_TYPE_PERCPU_ARRAY):
            assert [k for k, _ in dump] == [key32(i) for i in range(md.max_entries)]
            assert dict(dump)[key32(2)] == val
        else:
            assert dump == [(key32(2), val)]
            assert t.map_lookup(md.name, key32(3)) is None
            t.map_delete(md.name, key32(2))
            assert t.map_dump(md.name) == []
        with pytest.raises(TargetError, match="key of 2 bytes"):
            t.map_lookup(md.name, b"\0\0")


def test_lpm_trie(kernel):
    md = MapDef("prefixes", O.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16)   # NO_PREALLOC added
    with K.KernelTarget(obj(ret(2), maps=[md])) as t:
        k = struct.pack("<I", 24) + bytes([10, 1, 2, 0])
        t.map_update("prefixes", k, key32(7))
        assert t.map_lookup("prefixes", k) == key32(7)
        assert t.map_dump("prefixes") == [(k, key32(7))]


def test_devmap(kernel):
    md = MapDef("tx_ports", O.BPF_MAP_TYPE_DEVMAP, 4, 4, 4)
    with K.KernelTarget(obj(ret(2), maps=[md])) as t:
        t.map_update("tx_ports", key32(0), key32(1))          # lo
        assert t.map_lookup("tx_ports", key32(0)) == key32(1)


def test_global_data(kernel):
    ro = MapDef("test.rodata", O.BPF_MAP_TYPE_ARRAY, 4, 8, 1, data=b"\0\0\0\0\x03\0\0\0",
                section=".rodata")
    rw = MapDef("test.data", O.BPF_MAP_TYPE_ARRAY, 4, 8, 1, data=b"\x01" * 8, section=".data")
    # r0 = *(u32 *)(&rodata + 4): the verdict comes from .rodata through a map-value lddw
    p = prog("glob", map_value(1, 0, 4), ldx(isa.BPF_W, 0, 1, 0), EXIT)
    with K.KernelTarget(obj(p, maps=[ro, rw])) as t:
        assert t.run(PKT).verdict == isa.XDP_TX
        assert t.map_lookup("test.rodata", key32(0)) == ro.data
        assert t.map_lookup("test.data", key32(0)) == rw.data
        with pytest.raises(TargetError, match="test.rodata"):   # frozen
            t.map_update("test.rodata", key32(0), bytes(8))
        t.map_update("test.data", key32(0), bytes(8))


def test_map_program_by_index(kernel):
    md = MapDef("counters", O.BPF_MAP_TYPE_ARRAY, 4, 8, 2)
    with K.KernelTarget(obj(counter_prog(), maps=[md])) as t:
        for _ in range(3):
            assert t.run(PKT).verdict == isa.XDP_PASS
        assert t.map_lookup("counters", key32(0)) == struct.pack("<Q", 3)


def test_percpu_map_read_back(kernel):
    md = MapDef("stats", O.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1)
    with K.KernelTarget(obj(counter_prog(), maps=[md])) as t:
        for _ in range(5):
            t.run(PKT)
        with K.pinned_cpu() as cpu:
            pass
        vals = t.map_lookup("stats", key32(0))
        assert len(vals) == S.n_possible_cpus()
        assert vals[cpu] == struct.pack("<Q", 5)
        assert all(v == bytes(8) for i, v in enumerate(vals) if i != cpu)


def test_smp_processor_id_is_pinned(kernel):
    with K.KernelTarget(obj(prog("cpu", call(8), EXIT))) as t:
        with K.pinned_cpu() as cpu:
            pass
        assert {t.run(PKT).verdict for _ in range(5)} == {cpu}


def test_tail_call(kernel):
    jt = MapDef("jmp_table", O.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, init_slots={1: "ret3"})
    entry = prog("entry", map_ref(2, 0), mov(3, 1), call(12),   # bpf_tail_call(ctx, jt, 1)
                 mov(0, isa.XDP_DROP), EXIT)
    with K.KernelTarget(obj(entry, ret(3), maps=[jt])) as t:
        assert set(t.progs) == {"entry", "ret3"}
        assert t.run(PKT).verdict == isa.XDP_TX
        assert t.map_lookup("jmp_table", key32(1)) == key32(S.prog_id(t.progs["ret3"]))
        assert [k for k, _ in t.map_dump("jmp_table")] == [key32(1)]
        t.map_delete("jmp_table", key32(1))
        assert t.run(PKT).verdict == isa.XDP_DROP


@pytest.mark.parametrize("outer_type", [O.BPF_MAP_TYPE_ARRAY_OF_MAPS,
                                        O.BPF_MAP_TYPE_HASH_OF_MAPS])
def test_map_in_map(kernel, outer_type):
    inner_t = MapDef("inner_t", O.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    inner = MapDef("inner", O.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    outer = MapDef("outer", outer_type, 4, 4, 4, inner=inner_t, init_slots={0: "inner"})
    # return inner[0] of outer[0]
    p = prog("mim",
             st(isa.BPF_W, 10, -4, 0),
             map_ref(1, 1), movr(2, 10), addi(2, -4), call(1),
             jeqi(0, 0, 6),
             movr(1, 0), movr(2, 10), addi(2, -4), call(1),
             jeqi(0, 0, 2),
             ldx(isa.BPF_W, 0, 0, 0), EXIT,
             mov(0, isa.XDP_ABORTED), EXIT)
    with K.KernelTarget(obj(p, maps=[inner, outer])) as t:
        t.map_update("inner", key32(0), key32(isa.XDP_TX))
        assert t.run(PKT).verdict == isa.XDP_TX
        inner_id = S.map_id(t.maps["inner"][0])
        assert t.map_lookup("outer", key32(0)) == key32(inner_id)
        assert t.map_dump("outer") == [(key32(0), key32(inner_id))]


# --- conformance in the kernel ----------------------------------------------------------------
def test_conformance_in_kernel(kernel, suite):
    rows = [json.loads(line) for line in (suite / "assembled.jsonl").read_text().splitlines()]
    assert len(rows) == 313
    passed = 0
    for r in rows:
        try:
            r0 = K.run_conformance_program(bytes.fromhex(r["program_hex"]),
                                           bytes.fromhex(r["mem_hex"]))
        except TargetError as e:
            assert "syscall is unavailable" not in str(e)
            continue
        assert r0 == int(r["expected_r0"], 0) & (2**64 - 1), r["name"]
        passed += 1
    doc = (REPO / "docs/kernel-conformance.md").read_text()
    m = re.search(r"\*\*(\d+) of (\d+) pass\*\*", doc)
    assert m and (int(m.group(1)), int(m.group(2))) == (passed, len(rows))


def test_packet_sizes(kernel):
    # r0 = data_end - data: the bytes the program sees
    from bpfpga.isa import BPF_SUB, BPF_X, BPF_ALU64
    p = prog("len", ldx(isa.BPF_W, 2, 1, 0), ldx(isa.BPF_W, 0, 1, 4),
             Insn(BPF_ALU64 | BPF_SUB | BPF_X, 0, 2), EXIT)
    n = K.linear_max()
    assert 1500 <= n < 65536
    with K.KernelTarget(obj(p)) as t:
        assert t.run(bytes(14)).verdict == 14
        assert t.run(bytes(n)).verdict == n
        with pytest.raises(TargetError, match=f"at most {n} bytes"):
            t.run(bytes(n + 1))
