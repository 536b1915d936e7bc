// SPDX-License-Identifier: GPL-2.0
/* pass: the smallest XDP program. Every frame goes on to the network stack. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
