/* BTF kinds clang emits only on request: DECL_TAG, TYPE_TAG, FLOAT, ENUM, FWD, RESTRICT,
 * bitfields, unions, FUNC_PROTO with parameters. */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))

enum color { RED = -1, GREEN = 2, BLUE = 0x7fffffff };
struct opaque;

struct shape {
	unsigned int kind : 3;
	unsigned int big : 1;
	__u32 __tag("counter") count;
	union {
		__u64 u;
		double d;
	} val;
	enum color c;
	struct opaque *op;
	int __ttag("user") *uptr;
	char name[6];
	void *restrict rp;
	float f;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct shape);
	__uint(max_entries, 2);
} shapes SEC(".maps");

SEC("xdp")
int __tag("entry") tags_prog(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct shape *s = bpf_map_lookup_elem(&shapes, &k);

	return s && s->kind == 2 ? XDP_PASS : XDP_DROP;
}
