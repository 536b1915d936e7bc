/* A load balancer's connection-rate counter: TCP SYNs per second, the counter reset when
 * bpf_ktime_get_ns() passes a one-second boundary, beside a count of packets per TCP
 * destination port that depends on nothing but the packets (tests/test_diff.py). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct rate {
	__u64 second;        /* ktime / 1e9 of the current window */
	__u64 new_conns;     /* SYNs seen in it */
	__u64 windows;       /* windows started */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rate);
} conn_rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u64);
} port_packets SEC(".maps");

SEC("xdp")
int xdp_connrate(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct tcphdr *th;
	__u32 zero = 0;
	__u16 port;
	__u64 one = 1, *n;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    iph->ihl != 5 || iph->protocol != IPPROTO_TCP)
		return XDP_PASS;
	th = (void *)(iph + 1);
	if ((void *)(th + 1) > data_end)
		return XDP_PASS;
	port = bpf_ntohs(th->dest);
	n = bpf_map_lookup_elem(&port_packets, &port);
	if (n)
		(*n)++;
	else
		bpf_map_update_elem(&port_packets, &port, &one, BPF_NOEXIST);
	if (th->syn && !th->ack) {
		struct rate *r = bpf_map_lookup_elem(&conn_rate, &zero);
		__u64 sec = bpf_ktime_get_ns() / 1000000000ULL;

		if (r) {
			if (r->second != sec) {
				r->second = sec;
				r->new_conns = 0;
				r->windows++;
			}
			r->new_conns++;
		}
	}
	return XDP_PASS;
}
