/* String literals (.rodata.str1.1, a mergeable section) and bpf_printk's static format
 * string: global data that holds only static variables. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int strings_prog(struct xdp_md *ctx)
{
	const char *p = "abcdefgh";

	bpf_printk("queue %d", ctx->rx_queue_index);
	return p[ctx->rx_queue_index & 7] & 3;
}
