/* A program the kernel's verifier refuses and the engine must end XDP_ABORTED: r0 takes the
 * verdict named by the frame's byte 14 (XDP_PASS for a frame too short to have one), then a
 * load from address 0 faults (trap 3, memory_access). tests/test_traps.py runs it through
 * the simulated board: every frame must come back ABORTED, none leave a port. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int fault(struct xdp_md *ctx)
{
	asm volatile(
		"r2 = *(u32 *)(r1 + 0)\n"
		"r3 = *(u32 *)(r1 + 4)\n"
		"r4 = r2\n"
		"r4 += 15\n"
		"r0 = 2\n"
		"if r4 > r3 goto +1\n"
		"r0 = *(u8 *)(r2 + 14)\n"
		"r1 = 0\n"
		"r1 = *(u64 *)(r1 + 0)\n"
		"exit\n"
		::: "r0", "r1", "r2", "r3", "r4");
	return XDP_PASS;
}
