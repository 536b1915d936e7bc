/* bpf_trace_printk: every conversion bpfpga supports, widths and flags, and formats the kernel
 * refuses with -EINVAL; each return value is kept in the map `rets`, so `bpfpga diff` compares
 * them with the kernel's (tests/test_trace.py also compares the printed text). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __s64);
} rets SEC(".maps");

static void put(__u32 k, long v)
{
	__s64 *p = bpf_map_lookup_elem(&rets, &k);

	if (p)
		*p = v;
}

static const char bad_prec[] = "bad %5.2d";
static const char bad_four[] = "%d %d %d %d";
static const char bad_conv[] = "%q";
static const char bad_char[] = "\x01 x";
static const char no_nul[] = "abcdefgh";
static const char tab[] = "tab\t%lx";

SEC("xdp")
int trace_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	unsigned char *b = data;
	long long neg;

	if (data + 16 > end)
		return XDP_ABORTED;
	neg = -(long long)b[12] * 1000000007LL;
	put(0, bpf_printk("len %d proto %x q %u", (int)(end - data), b[12] << 8 | b[13],
			  ctx->rx_queue_index));
	put(1, bpf_printk("neg %lld %llu %llx", neg, neg, neg));
	put(2, bpf_printk("w [%5d] [%-4u] [%08x]", b[14], b[15], b[14]));
	put(3, bpf_printk("%c%c 100%% %s", 'o', 'k', "done"));
	put(4, bpf_printk("%d %i %ld", -1, 7, (long)b[13] - 300));
	put(5, bpf_printk("[%+d] [% d] [%X]", b[14], b[15], 0xabcdef ^ b[14]));
	put(6, bpf_printk("[%+05d] [%-6x] [%3c]", -(int)b[14], b[15], 'z'));
	put(7, bpf_printk("%px", (long)b[14] << 40));
	put(8, bpf_trace_printk(bad_prec, sizeof(bad_prec), 1));
	put(9, bpf_trace_printk(bad_four, sizeof(bad_four), 1, 2, 3));
	put(10, bpf_trace_printk(bad_conv, sizeof(bad_conv), 1));
	put(11, bpf_trace_printk(bad_char, sizeof(bad_char)));
	put(12, bpf_trace_printk(no_nul, 4));
	put(13, bpf_trace_printk(tab, sizeof(tab), (long)b[15] << 33));
	return b[14] & 1 ? XDP_PASS : XDP_DROP;
}
