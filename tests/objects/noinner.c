/* A map of maps declared without `values`: its inner map must be supplied at load time, as
 * GLB's director leaves it to the loader. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 2);
} tables SEC(".maps");

SEC("xdp")
int noinner_prog(struct xdp_md *ctx)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&tables, &k) ? XDP_PASS : XDP_DROP;
}
