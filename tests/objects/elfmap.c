/* iproute2's struct bpf_elf_map, with a map-in-map whose inner map is named by id. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct bpf_elf_map {
	__u32 type;
	__u32 size_key;
	__u32 size_value;
	__u32 max_elem;
	__u32 flags;
	__u32 id;
	__u32 pinning;
	__u32 inner_id;
	__u32 inner_idx;
};

struct bpf_elf_map SEC("maps") map_inner = {
	.type = BPF_MAP_TYPE_ARRAY,
	.size_key = 4,
	.size_value = 4,
	.max_elem = 1,
	.id = 42,
	.inner_idx = 1,
};

struct bpf_elf_map SEC("maps") map_outer = {
	.type = BPF_MAP_TYPE_ARRAY_OF_MAPS,
	.size_key = 4,
	.size_value = 4,
	.max_elem = 2,
	.inner_id = 42,
};

struct bpf_elf_map SEC("maps") pinned_lru = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.size_key = 4,
	.size_value = 8,
	.max_elem = 1000,
	.pinning = 2,
};

SEC("xdp")
int elfmap_prog(struct xdp_md *ctx)
{
	__u32 k = 1;
	void *inner = bpf_map_lookup_elem(&map_outer, &k);
	__u64 *v = bpf_map_lookup_elem(&pinned_lru, &k);

	if (!inner)
		return XDP_ABORTED;
	return v ? XDP_PASS : XDP_DROP;
}
