// SPDX-License-Identifier: GPL-2.0
/*
 * calls: a packet classifier built from bpf-to-bpf calls and global data.
 *
 *   .rodata  proto_class[256]  IP protocol -> class (a const lookup table)
 *            hot_ports[8]      TCP/UDP ports of the "service" class
 *            drop_class        the class whose packets are dropped
 *   .data    drop_budget       how many more packets may be dropped (counts down)
 *            class_weight[]    bytes-per-packet weights, read and rewritten
 *   .bss     pkt_count, byte_count, class_count[], last_hash, max_len
 *
 * parse_l3() and l4_ports() take packet pointers and so stay static (verified
 * in their caller's context); classify() and flow_mix() are global functions
 * with scalar arguments, verified on their own. Packets of drop_class are
 * dropped while drop_budget lasts; everything else passes.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum {
	C_NONE = 0,     /* not IP */
	C_TCP,
	C_UDP,
	C_ICMP,
	C_TUNNEL,       /* GRE, IPIP, IPv6-in-IP, ESP */
	C_ROUTING,      /* OSPF, VRRP, PIM */
	C_SERVICE,      /* TCP/UDP to one of hot_ports */
	C_OTHER,
	C_MAX,
};

struct parsed {
	__u8 family;    /* 0, 4, 6 */
	__u8 proto;
	__u16 l4_off;   /* 0: no L4 header in this packet */
	__u32 saddr;    /* IPv4 address, or the IPv6 address folded to 32 bits */
	__u32 daddr;
};

static const __u8 proto_class[256] = {
	[IPPROTO_ICMP] = C_ICMP,
	[IPPROTO_IGMP] = C_ROUTING,
	[IPPROTO_IPIP] = C_TUNNEL,
	[IPPROTO_TCP] = C_TCP,
	[IPPROTO_UDP] = C_UDP,
	[IPPROTO_IPV6] = C_TUNNEL,
	[IPPROTO_GRE] = C_TUNNEL,
	[IPPROTO_ESP] = C_TUNNEL,
	[58] = C_ICMP,          /* ICMPv6 */
	[89] = C_ROUTING,       /* OSPF */
	[103] = C_ROUTING,      /* PIM */
	[112] = C_ROUTING,      /* VRRP */
	[IPPROTO_SCTP] = C_OTHER,
};

static const __u16 hot_ports[8] = { 22, 53, 80, 123, 443, 853, 3306, 6379 };
const volatile __u32 drop_class = C_ROUTING;

__u64 drop_budget = 40;
__u32 class_weight[C_MAX] = { 1, 2, 2, 3, 5, 8, 13, 21 };

__u64 pkt_count;
__u64 byte_count;
__u64 class_count[C_MAX];
__u32 last_hash;
__u32 max_len;

static __noinline int parse_l3(void *data, void *data_end, struct parsed *p)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end || iph->ihl < 5)
			return -1;
		p->family = 4;
		p->proto = iph->protocol;
		p->saddr = iph->saddr;
		p->daddr = iph->daddr;
		p->l4_off = (iph->frag_off & bpf_htons(0x1fff)) ? 0 :
			    sizeof(*eth) + iph->ihl * 4;
		return 0;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u32 *s, *d;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		s = ip6->saddr.in6_u.u6_addr32;
		d = ip6->daddr.in6_u.u6_addr32;
		p->family = 6;
		p->proto = ip6->nexthdr;
		p->saddr = s[0] ^ s[1] ^ s[2] ^ s[3];
		p->daddr = d[0] ^ d[1] ^ d[2] ^ d[3];
		p->l4_off = sizeof(*eth) + sizeof(*ip6);
		return 0;
	}
	return 1;
}

/* both ports in one word (dest << 16 | source, host order), 0 if absent */
static __noinline __u32 l4_ports(void *data, void *data_end, __u64 off)
{
	__be16 *ports;

	if (off == 0 || off > 128)
		return 0;
	ports = data + off;
	if ((void *)(ports + 2) > data_end)
		return 0;
	return ((__u32)bpf_ntohs(ports[1]) << 16) | bpf_ntohs(ports[0]);
}

__noinline int classify(__u32 proto, __u32 dport)
{
	int cls = proto_class[proto & 0xff];

	if (cls == C_TCP || cls == C_UDP) {
		for (int i = 0; i < 8; i++)
			if (hot_ports[i] == dport)
				return C_SERVICE;
	}
	if (cls == C_NONE)
		cls = C_OTHER;
	return cls;
}

__noinline __u32 flow_mix(__u32 a, __u32 b, __u32 c, __u32 d, __u32 e)
{
	__u32 h = a * 0x9e3779b1;

	h = (h ^ b) * 0x85ebca6b;
	h = (h ^ c) * 0xc2b2ae35;
	h = (h ^ d) * 0x27d4eb2f;
	h ^= e;
	return h ^ (h >> 16);
}

static __noinline void account(__u32 cls, __u32 len)
{
	if (cls >= C_MAX)
		return;
	pkt_count++;
	byte_count += len;
	class_count[cls]++;
	/* the weight table decays towards 1 as a class gets busy */
	if (class_weight[cls] > 1 && (class_count[cls] & 15) == 0)
		class_weight[cls]--;
	if (len > max_len)
		max_len = len;
}

SEC("xdp")
int xdp_calls(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	struct parsed p = {};
	__u32 ports, cls;
	int r;

	r = parse_l3(data, data_end, &p);
	if (r < 0) {
		account(C_OTHER, len);
		return XDP_PASS;
	}
	if (r > 0) {
		account(C_NONE, len);
		return XDP_PASS;
	}
	ports = l4_ports(data, data_end, p.l4_off);
	cls = classify(p.proto, ports >> 16);
	last_hash = flow_mix(p.saddr, p.daddr, ports, p.proto, class_weight[cls & 7]);
	account(cls, len);
	if (cls == drop_class && drop_budget > 0) {
		drop_budget--;
		return XDP_DROP;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
