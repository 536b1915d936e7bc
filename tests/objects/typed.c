/* Maps with structured keys and values for the typed map commands (compiler/btfvalue.py):
 * a service table keyed by (address, port, protocol) in network byte order, values with an
 * enum, a counter, a name, bitfields and a union; read-only configuration in .rodata. The
 * packet carries the key at offset 14 (addr, port, proto) as the service table stores it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum action { ACT_PASS = 2, ACT_DROP = 1, ACT_TX = 3 };

struct svc_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct svc {
	enum action act;
	__u32 hits;
	char name[8];
	__u8 weight : 3, zone : 5;
	__s8 bias;
	__u16 pad;
	union {
		__u32 v4;
		__u8 bytes[4];
	} gw;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct svc_key);
	__type(value, struct svc);
} services SEC(".maps");

const volatile __u32 default_verdict = XDP_PASS;
const volatile __u32 scale = 1;

SEC("xdp")
int typed(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct svc_key k = {};
	struct svc *s;

	if (data + 14 + 8 > end)
		return XDP_ABORTED;
	__builtin_memcpy(&k, data + 14, 7);
	s = bpf_map_lookup_elem(&services, &k);
	if (!s)
		return default_verdict;
	s->hits += scale + s->weight + s->bias;
	return s->act;
}
