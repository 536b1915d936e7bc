/* Programs of other types beside the XDP one (listed, never run), a map only they use of a
 * type bpfpga does not support (left out), a map sized at load time (max_entries 0) and a
 * devmap program (tests/test_maps_json.py). */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 0);
} sized_later SEC(".maps");

SEC("kprobe/do_nanosleep")
int on_sleep(void *ctx)
{
	__u32 *e = bpf_ringbuf_reserve(&events, 4, 0);

	if (e) {
		*e = 1;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

SEC("tc")
int tc_prog(void *ctx)
{
	return 0;
}

SEC("xdp")
int mixed_xdp(struct xdp_md *ctx)
{
	__u32 k = ctx->ingress_ifindex;
	__u64 one = 1;

	bpf_map_update_elem(&sized_later, &k, &one, BPF_ANY);
	return XDP_PASS;
}

SEC("xdp/devmap")
int mixed_devmap(struct xdp_md *ctx)
{
	return XDP_PASS;
}
