// SPDX-License-Identifier: GPL-2.0
/*
 * tailcall: a three-stage pipeline chained through a PROG_ARRAY.
 *
 *   xdp_entry    parses Ethernet / VLAN / IP and leaves its findings in XDP
 *                metadata (bpf_xdp_adjust_meta) in front of the packet,
 *   xdp_classify reads the metadata and the L4 header and picks a class,
 *   xdp_act      applies the class's policy (class_policy: pass, drop, or
 *                reflect = swap MACs, IP addresses and UDP/TCP ports and
 *                XDP_TX), counts it, and removes the metadata again.
 *
 * If a tail call fails (empty slot) the calling stage removes the metadata
 * and passes the packet.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum { STAGE_CLASSIFY = 0, STAGE_ACT = 1, STAGE_MAX = 4 };

enum {
	CLS_OTHER = 0,      /* IP, but nothing below matched */
	CLS_NON_IP,
	CLS_MALFORMED,      /* truncated or bad IP header */
	CLS_FRAGMENT,       /* non-first fragment: no L4 header */
	CLS_ICMP,           /* ICMP or ICMPv6 */
	CLS_WEB,            /* TCP 80, 443 */
	CLS_SSH,            /* TCP 22 */
	CLS_TELNET,         /* TCP 23 */
	CLS_DNS,            /* UDP 53 */
	CLS_ECHO,           /* UDP 7 */
	CLS_TCP_OTHER,
	CLS_UDP_OTHER,
	CLS_MAX = 16,
};

enum { ACT_PASS = 0, ACT_DROP = 1, ACT_REFLECT = 2 };

/* lives in the XDP metadata area, directly in front of the Ethernet header */
struct meta {
	__u16 l3_off;
	__u16 l4_off;       /* 0: no L4 header */
	__be16 eth_proto;   /* after VLAN tags */
	__u8 l4_proto;
	__u8 cls;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/*
 * The stage table is declared here and initialised after the stages (at the
 * end of the file): clang lays functions out in the order it first meets
 * them, and xdp_entry must come first to be the object's default program.
 */
struct stage_table {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, STAGE_MAX);
	__type(key, __u32);
	__array(values, int (void *));
};

extern struct stage_table stages;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CLS_MAX);
	__type(key, __u32);
	__type(value, __u32);      /* ACT_* */
} class_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLS_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} class_stats SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

static __always_inline int drop_meta(struct xdp_md *ctx, int action)
{
	if (bpf_xdp_adjust_meta(ctx, (int)sizeof(struct meta)))
		return XDP_ABORTED;
	return action;
}

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	void *data, *data_end;
	struct meta *m;
	struct ethhdr *eth;
	void *cur;
	__be16 proto;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct meta)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > data)
		return XDP_PASS;
	m->l3_off = 0;
	m->l4_off = 0;
	m->eth_proto = 0;
	m->l4_proto = 0;
	m->cls = CLS_OTHER;

	eth = data;
	if ((void *)(eth + 1) > data_end) {
		m->cls = CLS_MALFORMED;
		goto next;
	}
	proto = eth->h_proto;
	cur = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *vh = cur;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end) {
			m->cls = CLS_MALFORMED;
			goto next;
		}
		proto = vh->encap_proto;
		cur = vh + 1;
	}
	m->eth_proto = proto;
	m->l3_off = cur - data;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = cur;

		if ((void *)(iph + 1) > data_end || iph->ihl < 5 || iph->version != 4) {
			m->cls = CLS_MALFORMED;
			goto next;
		}
		m->l4_proto = iph->protocol;
		if (iph->frag_off & bpf_htons(0x1fff))
			m->cls = CLS_FRAGMENT;
		else
			m->l4_off = m->l3_off + iph->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6) {
			m->cls = CLS_MALFORMED;
			goto next;
		}
		m->l4_proto = ip6->nexthdr;
		m->l4_off = m->l3_off + sizeof(*ip6);
	} else {
		m->cls = CLS_NON_IP;
	}
next:
	bpf_tail_call(ctx, &stages, STAGE_CLASSIFY);
	return drop_meta(ctx, XDP_PASS);
}

SEC("xdp")
int xdp_classify(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct meta *m = (void *)(long)ctx->data_meta;
	struct tcphdr *th;
	struct udphdr *uh;
	__u16 off;

	if ((void *)(m + 1) > data)
		return XDP_PASS;
	if (m->cls != CLS_OTHER || !m->l4_off)
		goto next;
	off = m->l4_off;
	if (off > 128) {       /* keeps the verifier's range small; headers never reach this */
		m->cls = CLS_MALFORMED;
		goto next;
	}

	switch (m->l4_proto) {
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		m->cls = CLS_ICMP;
		break;
	case IPPROTO_TCP:
		th = data + off;
		if ((void *)(th + 1) > data_end) {
			m->cls = CLS_MALFORMED;
			break;
		}
		if (th->dest == bpf_htons(80) || th->dest == bpf_htons(443))
			m->cls = CLS_WEB;
		else if (th->dest == bpf_htons(22))
			m->cls = CLS_SSH;
		else if (th->dest == bpf_htons(23))
			m->cls = CLS_TELNET;
		else
			m->cls = CLS_TCP_OTHER;
		break;
	case IPPROTO_UDP:
		uh = data + off;
		if ((void *)(uh + 1) > data_end) {
			m->cls = CLS_MALFORMED;
			break;
		}
		if (uh->dest == bpf_htons(53))
			m->cls = CLS_DNS;
		else if (uh->dest == bpf_htons(7))
			m->cls = CLS_ECHO;
		else
			m->cls = CLS_UDP_OTHER;
		break;
	}
next:
	bpf_tail_call(ctx, &stages, STAGE_ACT);
	return drop_meta(ctx, XDP_PASS);
}

/* swap MACs, IP addresses and ports: checksums stay valid (sums commute) */
static __always_inline int reflect(void *data, void *data_end, struct meta *m)
{
	struct ethhdr *eth = data;
	__u8 mac[ETH_ALEN];
	__u16 l3 = m->l3_off, l4 = m->l4_off;
	struct udphdr *uh;
	__be16 port;

	if ((void *)(eth + 1) > data_end || l3 > 64 || l4 > 128)
		return 0;
	if (m->eth_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + l3;
		__be32 a;

		if ((void *)(iph + 1) > data_end)
			return 0;
		a = iph->saddr;
		iph->saddr = iph->daddr;
		iph->daddr = a;
	} else if (m->eth_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l3;
		struct in6_addr a;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
	} else {
		return 0;
	}
	uh = data + l4;
	if (l4 && (m->l4_proto == IPPROTO_UDP || m->l4_proto == IPPROTO_TCP) &&
	    (void *)(uh + 1) <= data_end) {
		port = uh->source;
		uh->source = uh->dest;
		uh->dest = port;
	}
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return 1;
}

SEC("xdp")
int xdp_act(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct meta *m = (void *)(long)ctx->data_meta;
	struct counter *c;
	__u32 cls, *policy, action = ACT_PASS;

	if ((void *)(m + 1) > data)
		return XDP_PASS;
	cls = m->cls;
	c = bpf_map_lookup_elem(&class_stats, &cls);
	if (c) {
		c->packets++;
		c->bytes += data_end - data;
	}
	policy = bpf_map_lookup_elem(&class_policy, &cls);
	if (policy)
		action = *policy;

	if (action == ACT_DROP)
		return drop_meta(ctx, XDP_DROP);
	if (action == ACT_REFLECT && reflect(data, data_end, m))
		return drop_meta(ctx, XDP_TX);
	return drop_meta(ctx, XDP_PASS);
}

struct stage_table stages SEC(".maps") = {
	.values = {
		[STAGE_CLASSIFY] = (void *)&xdp_classify,
		[STAGE_ACT] = (void *)&xdp_act,
	},
};

char LICENSE[] SEC("license") = "GPL";
