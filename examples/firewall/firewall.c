// SPDX-License-Identifier: GPL-2.0
/*
 * firewall: drops traffic from or to blocked IPv4/IPv6 prefixes (two LPM
 * tries) and traffic matching blocked flows (a hash of 5-tuples; a rule
 * whose source address and port are zero blocks a whole service, i.e. every
 * client of daddr:dport/proto). Malformed IP headers (bad version, IHL < 5)
 * are dropped too. Everything else, including non-IP and truncated frames,
 * is passed on. Per-reason counters live in a per-CPU array; per-rule hit
 * counters are updated atomically in the rule values themselves.
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

#define MAX_PREFIX_RULES 1024
#define MAX_FLOW_RULES   4096

enum {
	FW_PASS = 0,
	FW_DROP_FLOW,        /* exact 5-tuple rule */
	FW_DROP_SERVICE,     /* daddr:dport/proto rule */
	FW_DROP_SRC_PREFIX,
	FW_DROP_DST_PREFIX,
	FW_DROP_MALFORMED,
	FW_PASS_NOT_IP,
	FW_PASS_TRUNCATED,
	FW_FRAGMENT,         /* seen, either verdict */
	FW_STAT_MAX,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* addresses in network order; IPv4 uses saddr[0]/daddr[0], the rest zero */
struct flow_key {
	__u8 family;         /* 4 or 6 */
	__u8 proto;
	__be16 sport;
	__be16 dport;
	__u16 pad;
	__be32 saddr[4];
	__be32 daddr[4];
};

struct rule_hits {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FLOW_RULES);
	__type(key, struct flow_key);
	__type(value, struct rule_hits);
} blocked_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_PREFIX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);          /* rule id, index into prefix_hits */
} blocked_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_PREFIX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, __u32);
} blocked_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PREFIX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} prefix_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FW_STAT_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} fw_stats SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

static __always_inline int verdict(__u32 reason, __u64 len, int action)
{
	struct counter *c = bpf_map_lookup_elem(&fw_stats, &reason);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
	return action;
}

static __always_inline void count_fragment(__u64 len)
{
	verdict(FW_FRAGMENT, len, 0);
}

static __always_inline int prefix_hit(__u32 *rule)
{
	__u32 id = *rule;
	__u64 *hits = bpf_map_lookup_elem(&prefix_hits, &id);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	return 1;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct ethhdr *eth = data;
	struct flow_key key = {};
	struct rule_hits *hit;
	__u32 *rule;
	void *l4 = 0;
	void *cur;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return verdict(FW_PASS_TRUNCATED, len, XDP_PASS);
	proto = eth->h_proto;
	cur = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *vh = cur;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return verdict(FW_PASS_TRUNCATED, len, XDP_PASS);
		proto = vh->encap_proto;
		cur = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = cur;
		struct lpm_v4_key lk = { .prefixlen = 32 };

		if ((void *)(iph + 1) > data_end)
			return verdict(FW_PASS_TRUNCATED, len, XDP_PASS);
		if (iph->version != 4 || iph->ihl < 5)
			return verdict(FW_DROP_MALFORMED, len, XDP_DROP);

		__builtin_memcpy(lk.addr, &iph->saddr, 4);
		rule = bpf_map_lookup_elem(&blocked_v4, &lk);
		if (rule && prefix_hit(rule))
			return verdict(FW_DROP_SRC_PREFIX, len, XDP_DROP);
		__builtin_memcpy(lk.addr, &iph->daddr, 4);
		rule = bpf_map_lookup_elem(&blocked_v4, &lk);
		if (rule && prefix_hit(rule))
			return verdict(FW_DROP_DST_PREFIX, len, XDP_DROP);

		key.family = 4;
		key.proto = iph->protocol;
		key.saddr[0] = iph->saddr;
		key.daddr[0] = iph->daddr;
		if (iph->frag_off & bpf_htons(0x3fff)) {
			count_fragment(len);
			if (!(iph->frag_off & bpf_htons(0x1fff)))
				l4 = cur + iph->ihl * 4;
		} else {
			l4 = cur + iph->ihl * 4;
		}
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		struct lpm_v6_key lk = { .prefixlen = 128 };
		__u8 nh;

		if ((void *)(ip6 + 1) > data_end)
			return verdict(FW_PASS_TRUNCATED, len, XDP_PASS);
		if (ip6->version != 6)
			return verdict(FW_DROP_MALFORMED, len, XDP_DROP);

		__builtin_memcpy(lk.addr, &ip6->saddr, 16);
		rule = bpf_map_lookup_elem(&blocked_v6, &lk);
		if (rule && prefix_hit(rule))
			return verdict(FW_DROP_SRC_PREFIX, len, XDP_DROP);
		__builtin_memcpy(lk.addr, &ip6->daddr, 16);
		rule = bpf_map_lookup_elem(&blocked_v6, &lk);
		if (rule && prefix_hit(rule))
			return verdict(FW_DROP_DST_PREFIX, len, XDP_DROP);

		key.family = 6;
		__builtin_memcpy(key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(key.daddr, &ip6->daddr, 16);
		nh = ip6->nexthdr;
		l4 = ip6 + 1;
		if (nh == IPPROTO_FRAGMENT) {
			struct ipv6_frag *fh = l4;

			if ((void *)(fh + 1) > data_end)
				return verdict(FW_PASS_TRUNCATED, len, XDP_PASS);
			count_fragment(len);
			nh = fh->nexthdr;
			l4 = (fh->frag_off & bpf_htons(0xfff8)) ? 0 : fh + 1;
		}
		key.proto = nh;
	} else {
		return verdict(FW_PASS_NOT_IP, len, XDP_PASS);
	}

	/* ports, when this packet has them; later fragments match with zero ports */
	if (l4 && (key.proto == IPPROTO_TCP || key.proto == IPPROTO_UDP)) {
		struct udphdr *uh = l4;    /* ports sit at the same offsets in TCP */

		if ((void *)(uh + 1) > data_end)
			return verdict(FW_PASS_TRUNCATED, len, XDP_PASS);
		key.sport = uh->source;
		key.dport = uh->dest;
	}

	hit = bpf_map_lookup_elem(&blocked_flows, &key);
	if (hit) {
		__sync_fetch_and_add(&hit->packets, 1);
		__sync_fetch_and_add(&hit->bytes, len);
		return verdict(FW_DROP_FLOW, len, XDP_DROP);
	}
	/* a service rule: any client of daddr:dport */
	__builtin_memset(key.saddr, 0, sizeof(key.saddr));
	key.sport = 0;
	hit = bpf_map_lookup_elem(&blocked_flows, &key);
	if (hit) {
		__sync_fetch_and_add(&hit->packets, 1);
		__sync_fetch_and_add(&hit->bytes, len);
		return verdict(FW_DROP_SERVICE, len, XDP_DROP);
	}
	return verdict(FW_PASS, len, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
