/* Counts every packet and its bytes into a PERCPU_ARRAY, by length class (runts included):
 * the object of the diff's runt test (tests/test_diff.py). */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct count {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct count);
} pkt_count SEC(".maps");

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;
	__u32 key = len < 14 ? 0 : len < 64 ? 1 : len < 512 ? 2 : 3;
	struct count *c = bpf_map_lookup_elem(&pkt_count, &key);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
	return XDP_PASS;
}
