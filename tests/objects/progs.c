/* Several programs in one section and in several sections; .text subprograms (static and
 * global, nested), a call between functions of one section, and a callback (bpf_loop). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

static __attribute__((noinline)) int leaf(int x)
{
	return x * 3 + (int)bpf_get_prandom_u32();
}

static __attribute__((noinline)) int middle(int x)
{
	return leaf(x) + leaf(x + 1);
}

__attribute__((noinline)) int global_sub(int x)
{
	return x ^ (int)bpf_ktime_get_ns();
}

SEC("xdp")
int first(struct xdp_md *ctx)
{
	return middle(ctx->ingress_ifindex) > 7 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int second(struct xdp_md *ctx)
{
	return global_sub(ctx->rx_queue_index) & 1 ? XDP_TX : XDP_PASS;
}

SEC("xdp/extra")
int third(struct xdp_md *ctx)
{
	return XDP_PASS;
}

static __attribute__((noinline)) SEC("xdp.frags") int same_section_helper(int v)
{
	return v + (int)bpf_get_smp_processor_id();
}

SEC("xdp.frags")
int fourth(struct xdp_md *ctx)
{
	return same_section_helper(ctx->rx_queue_index) == 2 ? XDP_DROP : XDP_PASS;
}

static long loop_cb(__u32 index, void *data)
{
	*(int *)data += index;
	return 0;
}

SEC("xdp/loop")
int with_callback(struct xdp_md *ctx)
{
	int sum = 0;

	bpf_loop(4, loop_cb, &sum, 0);
	return sum == 6 ? XDP_PASS : XDP_DROP;
}
