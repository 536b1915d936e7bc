/* Maps of maps whose inner maps the loader supplies (no __array(values, ...)): a
 * HASH_OF_MAPS and an ARRAY_OF_MAPS, filled from maps.json (tests/test_maps_json.py). */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(key_size, 4);
	__uint(max_entries, 8);
} by_tenant SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(key_size, 4);
	__uint(max_entries, 2);
} by_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} hits SEC(".maps");

static void count(__u32 k)
{
	__u64 *c = bpf_map_lookup_elem(&hits, &k);

	if (c)
		__sync_fetch_and_add(c, 1);
}

SEC("xdp")
int mapinmap_prog(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 tenant, key, port;
	__u32 *v;
	void *inner;

	if (p + 16 > end)
		return XDP_ABORTED;
	tenant = p[0] & 7;
	key = p[1] & 7;
	port = p[2] & 1;
	inner = bpf_map_lookup_elem(&by_tenant, &tenant);
	if (inner) {
		v = bpf_map_lookup_elem(inner, &key);
		count(0);
		if (v)
			return *v & 3;
		return XDP_PASS;
	}
	inner = bpf_map_lookup_elem(&by_port, &port);
	if (!inner) {
		count(1);
		return XDP_DROP;
	}
	v = bpf_map_lookup_elem(inner, &key);
	count(2);
	if (v) {
		__sync_fetch_and_add(v, 1);
		return XDP_TX;
	}
	count(3);
	return XDP_DROP;
}
