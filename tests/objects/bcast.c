/* bpf_redirect_map on a DEVMAP with the flags of the packet's second byte: missing keys,
 * BPF_F_BROADCAST (REDIRECT whether the key exists or not), BPF_F_EXCLUDE_INGRESS and
 * flags the kernel refuses with XDP_ABORTED (tests/test_maps_json.py). */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(key_size, 4);
	__uint(value_size, 4);
	__uint(max_entries, 4);
} ports SEC(".maps");

SEC("xdp")
int bcast_prog(struct xdp_md *ctx)
{
	unsigned char *p = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u64 flags;

	if (p + 14 > end)
		return XDP_PASS;
	switch (p[1] & 7) {
	case 0: flags = p[2] & 3; break;
	case 1: flags = BPF_F_BROADCAST; break;
	case 2: flags = BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS; break;
	case 3: flags = BPF_F_EXCLUDE_INGRESS | (p[2] & 3); break;
	case 4: flags = BPF_F_BROADCAST | (p[2] & 3); break;
	case 5: flags = 1 << 2; break;
	case 6: flags = 1ULL << 5 | BPF_F_BROADCAST; break;
	default: flags = 1ULL << 40; break;
	}
	return bpf_redirect_map(&ports, p[0] & 7, flags);
}
