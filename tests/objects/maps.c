/* BTF-defined maps of every kind a load balancer uses, a PROG_ARRAY filled through `values`,
 * and map-in-map with an inner map template and initial slots. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct flow {
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u8 proto;
};

struct backend {
	__u32 addr;
	__u32 flags;
	__u64 packets;
};

typedef struct backend backend_t;

struct lpm_v4 {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow);
	__type(value, backend_t);
	__uint(max_entries, 1024);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 24);
	__uint(max_entries, 4);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct flow);
	__type(value, const volatile __u32);
	__uint(max_entries, 65536);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_v4);
	__type(value, __u8);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 8);
} ports SEC(".maps");

struct inner_arr {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_arr);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [2] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 100);
		__type(key, __u64);
		__type(value, __u16);
	});
} outer_hash SEC(".maps");

int tail_a(struct xdp_md *ctx);
int tail_b(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jumps SEC(".maps") = {
	.values = { [1] = (void *)&tail_a, [3] = (void *)&tail_b },
};

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	struct flow f = { .saddr = ctx->ingress_ifindex, .proto = 6 };
	backend_t *b;
	__u32 k = 0, *v;
	__u64 *c;
	void *in;

	b = bpf_map_lookup_elem(&flows, &f);
	if (b)
		b->packets++;
	c = bpf_map_lookup_elem(&counters, &k);
	if (c)
		__sync_fetch_and_add(c, 1);
	in = bpf_map_lookup_elem(&outer, &k);
	if (in) {
		v = bpf_map_lookup_elem(in, &k);
		if (v)
			return *v;
	}
	bpf_tail_call(ctx, &jumps, 1);
	return bpf_redirect_map(&ports, 0, XDP_PASS);
}

SEC("xdp")
int tail_a(struct xdp_md *ctx)
{
	__u32 k = 1;
	__u64 *c = bpf_map_lookup_elem(&counters, &k);

	if (c)
		*c += 1;
	return XDP_PASS;
}

SEC("xdp")
int tail_b(struct xdp_md *ctx)
{
	return XDP_DROP;
}
