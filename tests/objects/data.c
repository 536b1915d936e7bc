/* Global data: .rodata (const volatile config), .data, .bss, a named .rodata.config section,
 * and __noinline subprograms that touch them. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 drop_port = 53;
const volatile __u64 magic = 0x1122334455667788ULL;
__u32 seen = 7;
__u64 hits[4];
__u32 misses;
const volatile __u8 mode SEC(".rodata.config") = 2;
/* statics: clang relocates against the section symbol with the offset in the lddw imm */
static volatile __u64 static_pad = 1;
static volatile __u32 static_count = 9;

static __attribute__((noinline)) int count(__u32 i)
{
	hits[i & 3]++;
	return seen + i;
}

SEC("xdp")
int data_prog(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;

	if (q == drop_port)
		return XDP_DROP;
	if (magic == 1 || mode == 3)
		misses++;
	static_count += static_pad;
	return count(q) > 10 ? XDP_PASS : XDP_TX;
}
