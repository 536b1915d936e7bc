/* A kfunc call (an extern __ksym function), which bpfpga refuses by name. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
SEC("xdp")
int kf_prog(struct xdp_md *ctx)
{
	__u64 t = 0;
	bpf_xdp_metadata_rx_timestamp(ctx, &t);
	return t ? XDP_PASS : XDP_DROP;
}
char LICENSE[] SEC("license") = "GPL";
