/* Calls a helper id the kernel does not define. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static long (*no_such_helper)(void) = (void *)9999;

SEC("xdp")
int badhelper_prog(struct xdp_md *ctx)
{
	return no_such_helper() ? XDP_PASS : XDP_DROP;
}
