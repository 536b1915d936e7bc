/* A BTF map of a type number the kernel does not define. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, 99);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 1);
} odd SEC(".maps");

SEC("xdp")
int badmaptype_prog(struct xdp_md *ctx)
{
	int k = 0;

	return bpf_map_lookup_elem(&odd, &k) ? XDP_PASS : XDP_DROP;
}
