/* Read-only data a loader sets before load (maps.json gives .rodata's bytes), and a
 * program that writes it, which every target refuses (tests/test_maps_json.py). */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 cfg_verdict = XDP_PASS;
const volatile __u32 cfg_drop_byte = 0xff;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} seen SEC(".maps");

SEC("xdp")
int rodata_prog(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&seen, &k);

	if (c)
		__sync_fetch_and_add(c, 1);
	if (p + 1 <= end && p[0] == cfg_drop_byte)
		return XDP_DROP;
	return cfg_verdict;
}

SEC("xdp/writer")
int rodata_writer(struct xdp_md *ctx)
{
	*(volatile __u32 *)&cfg_verdict = XDP_DROP;
	return XDP_PASS;
}
