// SPDX-License-Identifier: GPL-2.0
/*
 * parser: walks Ethernet, up to two VLAN tags (802.1Q / 802.1ad), IPv4
 * (with options and fragments), IPv6 (with up to three extension headers,
 * fragment header included) and the first L4 header, and counts packets
 * and bytes per protocol in a per-CPU array. Every frame is passed on.
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

enum {
	CNT_ETH = 0,      /* every frame with a full Ethernet header */
	CNT_RUNT,         /* frame ends inside a header we parse */
	CNT_VLAN,         /* at least one VLAN tag */
	CNT_QINQ,         /* two VLAN tags */
	CNT_ARP,
	CNT_IPV4,
	CNT_IPV4_OPTS,    /* IHL > 5 */
	CNT_IPV4_FRAG,    /* MF set or fragment offset != 0 */
	CNT_IPV6,
	CNT_IPV6_EXT,     /* per extension header walked */
	CNT_IPV6_FRAG,
	CNT_TCP,
	CNT_UDP,
	CNT_ICMP,
	CNT_ICMPV6,
	CNT_OTHER_L3,     /* unknown EtherType, or more than two tags */
	CNT_OTHER_L4,     /* unknown IP protocol / next header */
	CNT_MALFORMED,    /* bad IP version or IHL < 5 */
	CNT_MAX,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} proto_stats SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;      /* in 8-byte units, not counting the first 8 */
};

struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;  /* offset << 3 | M */
	__be32 id;
};

static __always_inline void count(__u32 idx, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&proto_stats, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline int is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

SEC("xdp")
int xdp_parser(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct ethhdr *eth = data;
	void *cur;
	__be16 proto;
	__u8 l4;
	int tags = 0;

	if ((void *)(eth + 1) > data_end)
		goto runt;
	count(CNT_ETH, len);
	proto = eth->h_proto;
	cur = eth + 1;

#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *vh = cur;

		if (!is_vlan(proto))
			break;
		if ((void *)(vh + 1) > data_end)
			goto runt;
		proto = vh->encap_proto;
		cur = vh + 1;
		tags++;
	}
	if (tags)
		count(CNT_VLAN, len);
	if (tags == 2)
		count(CNT_QINQ, len);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = cur;
		__u32 hl;

		if ((void *)(iph + 1) > data_end)
			goto runt;
		if (iph->version != 4 || iph->ihl < 5) {
			count(CNT_MALFORMED, len);
			return XDP_PASS;
		}
		count(CNT_IPV4, len);
		hl = iph->ihl * 4;
		if (hl > sizeof(*iph))
			count(CNT_IPV4_OPTS, len);
		if (cur + hl > data_end)
			goto runt;
		if (iph->frag_off & bpf_htons(0x3fff)) {
			count(CNT_IPV4_FRAG, len);
			/* only the first fragment carries the L4 header */
			if (iph->frag_off & bpf_htons(0x1fff))
				return XDP_PASS;
		}
		l4 = iph->protocol;
		cur += hl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;

		if ((void *)(ip6 + 1) > data_end)
			goto runt;
		if (ip6->version != 6) {
			count(CNT_MALFORMED, len);
			return XDP_PASS;
		}
		count(CNT_IPV6, len);
		l4 = ip6->nexthdr;
		cur = ip6 + 1;
#pragma unroll
		for (int i = 0; i < 3; i++) {
			if (l4 == IPPROTO_HOPOPTS || l4 == IPPROTO_ROUTING ||
			    l4 == IPPROTO_DSTOPTS) {
				struct ipv6_ext *ext = cur;

				if ((void *)(ext + 1) > data_end)
					goto runt;
				count(CNT_IPV6_EXT, len);
				l4 = ext->nexthdr;
				cur += (ext->hdrlen + 1) * 8;
			} else if (l4 == IPPROTO_FRAGMENT) {
				struct ipv6_frag *fh = cur;

				if ((void *)(fh + 1) > data_end)
					goto runt;
				count(CNT_IPV6_EXT, len);
				count(CNT_IPV6_FRAG, len);
				if (fh->frag_off & bpf_htons(0xfff8))
					return XDP_PASS;
				l4 = fh->nexthdr;
				cur = fh + 1;
			} else {
				break;
			}
		}
	} else if (proto == bpf_htons(ETH_P_ARP)) {
		count(CNT_ARP, len);
		return XDP_PASS;
	} else {
		count(CNT_OTHER_L3, len);
		return XDP_PASS;
	}

	switch (l4) {
	case IPPROTO_TCP:
		if (cur + sizeof(struct tcphdr) > data_end)
			goto runt;
		count(CNT_TCP, len);
		break;
	case IPPROTO_UDP:
		if (cur + sizeof(struct udphdr) > data_end)
			goto runt;
		count(CNT_UDP, len);
		break;
	case IPPROTO_ICMP:
		if (cur + 4 > data_end)
			goto runt;
		count(CNT_ICMP, len);
		break;
	case IPPROTO_ICMPV6:
		if (cur + 4 > data_end)
			goto runt;
		count(CNT_ICMPV6, len);
		break;
	default:
		count(CNT_OTHER_L4, len);
		break;
	}
	return XDP_PASS;

runt:
	count(CNT_RUNT, len);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
