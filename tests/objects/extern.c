/* A __kconfig extern, which bpfpga does not resolve. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int LINUX_KERNEL_VERSION __kconfig;

SEC("xdp")
int extern_prog(struct xdp_md *ctx)
{
	return LINUX_KERNEL_VERSION > 5 ? XDP_PASS : XDP_DROP;
}
