// SPDX-License-Identifier: GPL-2.0
/*
 * lb: an L4 load balancer in the style of Katran.
 *
 *  1. Parse Ethernet + IPv4/IPv6 + TCP/UDP. VLAN-tagged and non-IP frames,
 *     and IP packets that are not TCP/UDP, go to the stack (XDP_PASS).
 *     Fragments and malformed IP/L4 headers are dropped.
 *  2. Look the destination up in vip_map (addr, port, proto); a VIP with
 *     port 0 takes every port. No VIP: XDP_PASS.
 *  3. The connection table (LRU hash of 5-tuples) keeps an existing flow on
 *     its backend. A new flow hashes its 5-tuple (flow_hash below; the
 *     source port is left out for VIPs with F_HASH_NO_SRC_PORT) into the
 *     VIP's Maglev ring: ch_rings[vip_num * RING_SIZE + hash % RING_SIZE].
 *  4. Encapsulate towards the backend: IPv4 in IPv4 (IPIP, header checksum
 *     through bpf_csum_diff), IPv4 in IPv6, or IPv6 in IPv6, with the
 *     gateway's MAC as the new destination, and send it back out (XDP_TX).
 *     A backend flagged BACKEND_F_L2 sits on the balancer's own L2 segment
 *     with the VIP on its loopback (direct routing, as IPVS's DR mode): the
 *     frame goes out unchanged but for its destination MAC, the backend's.
 *     Either way the backend answers the client directly (DSR).
 *
 * conn_table values hold last_seen_ns from bpf_ktime_get_ns(): the only
 * field in this program that depends on time; nothing else reaches a map or
 * a packet from it.
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

#define MAX_VIPS        8
#define RING_SIZE       257      /* prime, as Maglev wants */
#define MAX_BACKENDS    64
#define CONN_TABLE_SIZE 4096
#define OUTER_TTL       64

/* vip_meta.flags */
#define F_LRU_BYPASS        (1U << 0)  /* no connection table for this VIP */
#define F_HASH_NO_SRC_PORT  (1U << 1)  /* one client address -> one backend */

/* backend.flags */
#define BACKEND_F_IPV6      (1U << 0)
#define BACKEND_F_L2        (1U << 1)  /* direct routing: MAC in addr bytes 4..9 */

enum {
	LB_RX = 0,            /* every frame */
	LB_TX_IPIP,           /* IPv4 in IPv4 */
	LB_TX_IP4IP6,         /* IPv4 in IPv6 */
	LB_TX_IP6IP6,         /* IPv6 in IPv6 */
	LB_PASS,              /* not for a VIP */
	LB_DROP_MALFORMED,
	LB_DROP_FRAG,
	LB_DROP_NO_BACKEND,   /* empty ring slot, empty backend, or family mismatch */
	LB_CONN_HIT,
	LB_CONN_MISS,
	LB_DROP_ADJUST,       /* bpf_xdp_adjust_head failed */
	LB_TX_L2,             /* direct routing: new destination MAC only */
	LB_VIP_BASE = 16,     /* + vip_num: per-VIP packets/bytes */
	LB_STAT_MAX = LB_VIP_BASE + MAX_VIPS,
};

struct vip_key {
	__be32 addr[4];       /* IPv4 in addr[0], rest zero */
	__be16 port;          /* 0: any port */
	__u8 proto;
	__u8 family;          /* 4 or 6 */
};

struct vip_meta {
	__u32 flags;
	__u32 vip_num;        /* < MAX_VIPS */
};

struct backend {
	__be32 addr[4];       /* IPv4 in addr[0]; BACKEND_F_L2: its MAC in bytes 4..9 */
	__u32 flags;
};

struct flow_key {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

struct conn {
	__u32 backend;        /* index into backends */
	__u32 pad;
	__u64 last_seen_ns;   /* bpf_ktime_get_ns() of the last packet */
};

struct lb_config {
	__u8 gw_mac[ETH_ALEN];  /* next hop towards the backends */
	__u16 pad;
	__be32 src_v4;          /* outer source addresses */
	__be32 src_v6[4];
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vip_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_VIPS * RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);       /* backend index */
} ch_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CONN_TABLE_SIZE);
	__type(key, struct flow_key);
	__type(value, struct conn);
} conn_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
} lb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_STAT_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} lb_stats SEC(".maps");

static __always_inline void count(__u32 idx, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(&lb_stats, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline int finish(__u32 idx, __u64 bytes, int action)
{
	count(idx, bytes);
	return action;
}

static __always_inline __u32 mix32(__u32 h, __u32 w)
{
	h ^= w;
	h *= 0x9e3779b1;
	return h ^ (h >> 15);
}

/* multiply-xorshift over the flow key's ten 32-bit words, in memory order */
static __always_inline __u32 flow_hash(const struct flow_key *k, int no_sport)
{
	__u32 ports = ((__u32)k->dport << 16) | (no_sport ? 0 : k->sport);
	__u32 h = 0x2545f491;

#pragma unroll
	for (int i = 0; i < 4; i++)
		h = mix32(h, k->src[i]);
#pragma unroll
	for (int i = 0; i < 4; i++)
		h = mix32(h, k->dst[i]);
	h = mix32(h, ports);
	h = mix32(h, k->proto | ((__u32)k->family << 8));
	h ^= h >> 13;
	h *= 0x85ebca6b;
	return h ^ (h >> 16);
}

static __always_inline __u16 csum_fold(__u64 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return ~csum;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct ethhdr *eth = data;
	struct flow_key fk = {};
	struct vip_key vk = {};
	struct vip_meta *vip;
	struct backend *be;
	struct lb_config *cfg;
	struct conn *cn;
	__u8 our_mac[ETH_ALEN];
	__u16 inner_len;          /* IPv4 total length or IPv6 payload length */
	__u8 tos;
	__u32 idx, hash, zero = 0;
	struct udphdr *uh;
	void *l4;

	count(LB_RX, len);
	if ((void *)(eth + 1) > data_end)
		return finish(LB_DROP_MALFORMED, len, XDP_DROP);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);
		__u16 tot;

		if ((void *)(iph + 1) > data_end)
			return finish(LB_DROP_MALFORMED, len, XDP_DROP);
		if (iph->version != 4 || iph->ihl < 5)
			return finish(LB_DROP_MALFORMED, len, XDP_DROP);
		tot = bpf_ntohs(iph->tot_len);
		if (tot < iph->ihl * 4 || (void *)iph + tot > data_end)
			return finish(LB_DROP_MALFORMED, len, XDP_DROP);
		if (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP)
			return finish(LB_PASS, len, XDP_PASS);
		if (iph->frag_off & bpf_htons(0x3fff))
			return finish(LB_DROP_FRAG, len, XDP_DROP);
		fk.family = 4;
		fk.proto = iph->protocol;
		fk.src[0] = iph->saddr;
		fk.dst[0] = iph->daddr;
		inner_len = tot;
		tos = iph->tos;
		l4 = (void *)iph + iph->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return finish(LB_DROP_MALFORMED, len, XDP_DROP);
		if (ip6->version != 6)
			return finish(LB_DROP_MALFORMED, len, XDP_DROP);
		inner_len = bpf_ntohs(ip6->payload_len);
		if ((void *)(ip6 + 1) + inner_len > data_end)
			return finish(LB_DROP_MALFORMED, len, XDP_DROP);
		if (ip6->nexthdr == IPPROTO_FRAGMENT)
			return finish(LB_DROP_FRAG, len, XDP_DROP);
		if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
			return finish(LB_PASS, len, XDP_PASS);
		fk.family = 6;
		fk.proto = ip6->nexthdr;
		__builtin_memcpy(fk.src, &ip6->saddr, 16);
		__builtin_memcpy(fk.dst, &ip6->daddr, 16);
		tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		l4 = ip6 + 1;
	} else {
		/* ARP, VLAN-tagged, anything else: the stack's business */
		return finish(LB_PASS, len, XDP_PASS);
	}

	uh = l4;   /* the ports sit at the same offsets in TCP and UDP */
	if ((void *)(uh + 1) > data_end)
		return finish(LB_DROP_MALFORMED, len, XDP_DROP);
	if (fk.proto == IPPROTO_TCP && l4 + sizeof(struct tcphdr) > data_end)
		return finish(LB_DROP_MALFORMED, len, XDP_DROP);
	fk.sport = uh->source;
	fk.dport = uh->dest;

	__builtin_memcpy(vk.addr, fk.dst, sizeof(vk.addr));
	vk.port = fk.dport;
	vk.proto = fk.proto;
	vk.family = fk.family;
	vip = bpf_map_lookup_elem(&vip_map, &vk);
	if (!vip) {
		vk.port = 0;
		vip = bpf_map_lookup_elem(&vip_map, &vk);
		if (!vip)
			return finish(LB_PASS, len, XDP_PASS);
	}
	if (vip->vip_num >= MAX_VIPS)
		return finish(LB_DROP_NO_BACKEND, len, XDP_DROP);
	count(LB_VIP_BASE + vip->vip_num, len);

	cn = 0;
	if (!(vip->flags & F_LRU_BYPASS))
		cn = bpf_map_lookup_elem(&conn_table, &fk);
	if (cn) {
		count(LB_CONN_HIT, len);
		cn->last_seen_ns = bpf_ktime_get_ns();
		idx = cn->backend;
	} else {
		__u32 *slot;

		hash = flow_hash(&fk, vip->flags & F_HASH_NO_SRC_PORT);
		idx = vip->vip_num * RING_SIZE + hash % RING_SIZE;
		slot = bpf_map_lookup_elem(&ch_rings, &idx);
		if (!slot)
			return finish(LB_DROP_NO_BACKEND, len, XDP_DROP);
		idx = *slot;
		if (!(vip->flags & F_LRU_BYPASS)) {
			struct conn nc = { .backend = idx, .last_seen_ns = bpf_ktime_get_ns() };

			count(LB_CONN_MISS, len);
			bpf_map_update_elem(&conn_table, &fk, &nc, BPF_ANY);
		}
	}

	be = bpf_map_lookup_elem(&backends, &idx);
	if (!be || !(be->addr[0] | be->addr[1] | be->addr[2] | be->addr[3]))
		return finish(LB_DROP_NO_BACKEND, len, XDP_DROP);
	if (be->flags & BACKEND_F_L2) {
		/* direct routing: the backend takes the frame as it came, VIP and all */
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, (__u8 *)be->addr + 4, ETH_ALEN);
		return finish(LB_TX_L2, len, XDP_TX);
	}
	/* an IPv6 client cannot be tunnelled to an IPv4 backend */
	if (fk.family == 6 && !(be->flags & BACKEND_F_IPV6))
		return finish(LB_DROP_NO_BACKEND, len, XDP_DROP);
	cfg = bpf_map_lookup_elem(&lb_config, &zero);
	if (!cfg)
		return finish(LB_DROP_NO_BACKEND, len, XDP_DROP);

	__builtin_memcpy(our_mac, eth->h_dest, ETH_ALEN);

	if (!(be->flags & BACKEND_F_IPV6)) {
		struct iphdr *oip;
		__s64 sum;

		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
			return finish(LB_DROP_ADJUST, len, XDP_DROP);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		oip = data + sizeof(*eth);
		if ((void *)(oip + 1) > data_end)
			return finish(LB_DROP_ADJUST, len, XDP_DROP);
		__builtin_memcpy(eth->h_dest, cfg->gw_mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, our_mac, ETH_ALEN);
		eth->h_proto = bpf_htons(ETH_P_IP);
		oip->version = 4;
		oip->ihl = 5;
		oip->tos = tos;
		oip->tot_len = bpf_htons(inner_len + sizeof(*oip));
		oip->id = 0;
		oip->frag_off = 0;
		oip->ttl = OUTER_TTL;
		oip->protocol = IPPROTO_IPIP;
		oip->check = 0;
		oip->saddr = cfg->src_v4;
		oip->daddr = be->addr[0];
		sum = bpf_csum_diff(0, 0, (__be32 *)oip, sizeof(*oip), 0);
		oip->check = csum_fold((__u32)sum);
		return finish(LB_TX_IPIP, len, XDP_TX);
	} else {
		struct ipv6hdr *oip6;
		__u16 payload = inner_len;
		__u32 flow = flow_hash(&fk, 0) & 0xfffff;   /* spreads flows over ECMP paths */
		__u8 nexthdr = IPPROTO_IPIP;

		if (fk.family == 6) {
			payload += sizeof(struct ipv6hdr);
			nexthdr = IPPROTO_IPV6;
		}
		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct ipv6hdr)))
			return finish(LB_DROP_ADJUST, len, XDP_DROP);
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		oip6 = data + sizeof(*eth);
		if ((void *)(oip6 + 1) > data_end)
			return finish(LB_DROP_ADJUST, len, XDP_DROP);
		__builtin_memcpy(eth->h_dest, cfg->gw_mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, our_mac, ETH_ALEN);
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)oip6 = bpf_htonl((6U << 28) | ((__u32)tos << 20) | flow);
		oip6->payload_len = bpf_htons(payload);
		oip6->nexthdr = nexthdr;
		oip6->hop_limit = OUTER_TTL;
		__builtin_memcpy(&oip6->saddr, cfg->src_v6, 16);
		__builtin_memcpy(&oip6->daddr, be->addr, 16);
		return finish(fk.family == 6 ? LB_TX_IP6IP6 : LB_TX_IP4IP6, len, XDP_TX);
	}
}

char LICENSE[] SEC("license") = "GPL";
