/* A legacy `maps` section (struct bpf_map_def, as old libbpf and samples/bpf declared it) next
 * to a BTF-defined map, as Cilium objects have both. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_hash = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = 8,
	.value_size = 16,
	.max_entries = 128,
};

struct bpf_map_def SEC("maps") legacy_arr = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.key_size = 4,
	.value_size = 8,
	.max_entries = 2,
	.map_flags = 0,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} modern SEC(".maps");

SEC("xdp")
int legacy_prog(struct xdp_md *ctx)
{
	__u64 k = ctx->ingress_ifindex;
	__u32 z = 0;
	void *a = bpf_map_lookup_elem(&legacy_hash, &k);
	void *b = bpf_map_lookup_elem(&legacy_arr, &z);
	void *c = bpf_map_lookup_elem(&modern, &z);

	return a && b && c ? XDP_PASS : XDP_DROP;
}
