"""No data crosses packets (there is no verifier to refuse a read of uninitialised memory):
packet n writes a secret into its stack (four slots across the 512-byte frame), into the
headroom (bpf_xdp_adjust_head -64) and leaves it in the packet buffer beyond the next
packet's end; packet n + 1 reads those stack slots without writing them, grows the head by 64
and the tail by 100 bytes (bpf_xdp_adjust_tail) and sends all of it out. Every byte it sees
must be zero, on ref and on the engine, in one lane and across both."""
import pytest

from bpfpga import isa
from bpfpga.compiler.asm import assemble_insns
from bpfpga.obj import BpfObject, Program

SECRET = 0x5EC2E75EC2E75EC2
ETH = bytes.fromhex("020000000002" "020000000001" "0800")
WRITE = ETH + b"\x01" + SECRET.to_bytes(8, "little") * 24
READ = ETH + b"\x00" + bytes(range(45))
SEEN = bytes(64) + READ + bytes(100)       # what packet n + 1 must send

SRC = f"""
mov %r6, %r1
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r2, %r7
add %r2, 15
jgt %r2, %r8, out
ldxb %r1, [%r7+14]
jne %r1, 1, read
lddw %r3, {SECRET:#x}
stxdw [%r10-8], %r3
stxdw [%r10-64], %r3
stxdw [%r10-256], %r3
stxdw [%r10-512], %r3
mov %r1, %r6
mov %r2, -64
call 44
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r2, %r7
add %r2, 64
jgt %r2, %r8, out
""" + "".join(f"stxdw [%r7+{8 * k}], %r3\n" for k in range(8)) + """
mov %r0, 2
exit
read:
ldxdw %r9, [%r10-8]
ldxdw %r3, [%r10-64]
or %r9, %r3
ldxdw %r3, [%r10-256]
or %r9, %r3
ldxdw %r3, [%r10-512]
or %r9, %r3
mov %r1, %r6
mov %r2, -64
call 44
mov %r1, %r6
mov %r2, 100
call 65
ldxw %r7, [%r6+0]
ldxw %r8, [%r6+4]
mov %r2, %r7
add %r2, 24
jgt %r2, %r8, out
stxdw [%r7+16], %r9
mov %r0, 2
exit
out:
mov %r0, 2
exit
"""


def _obj():
    return BpfObject("secret.o", [Program("p", "xdp", isa.encode(assemble_insns(SRC)),
                                          helpers=[44, 65])], [], license="GPL")


def _check(results):
    wrote = [r for r in results if r.packet[64:64 + len(WRITE)] == WRITE]
    seen = [r for r in results if r not in wrote]
    assert wrote and seen
    assert all(SECRET.to_bytes(8, "little") in r.packet for r in wrote)   # it was written
    for r in seen:
        assert (r.verdict, r.trap) == (isa.XDP_PASS, 0)
        assert r.packet == SEEN, r.packet.hex()


def test_no_secret_crosses_packets_on_ref():
    from bpfpga.sim.xdp import XdpRef
    t = XdpRef(_obj())
    _check([t.run(p) for p in (WRITE, READ, WRITE, WRITE, READ, READ)])


def test_no_secret_crosses_packets_on_rtl(engine):
    from bpfpga.host.board import RtlTarget
    with RtlTarget(_obj(), url=engine) as t:
        one = [t.run(p) for p in (WRITE, READ, WRITE, READ)]       # one lane after the other
        both = t.run_batch([WRITE, WRITE, READ, READ, WRITE, READ])   # both lanes
    _check(one + both)
