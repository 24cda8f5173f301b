/*
 * ipv4.h: IPv4 input (header validation, dispatch to ICMP and TCP) and output (header, checksums,
 * next hop, ARP) for the fast path.
 */
#ifndef EDGEGW_NET_IPV4_H
#define EDGEGW_NET_IPV4_H

#include <stdint.h>

struct dp_lcore;
struct rte_mbuf;

/*
 * Input: m->data_off points at the IPv4 header, m->l2_len is set. Validates the header and hands
 * the packet to ICMP or TCP with m->data_off at the L4 header, m->l2_len and m->l3_len set and
 * the mbuf trimmed to the IP total length. Consumes m.
 */
void ipv4_input(struct dp_lcore *lc, struct rte_mbuf *m);

/*
 * Output: m->data_off points at a complete L4 header and payload (m may be a chain; headroom of
 * the first segment must hold the IPv4 and Ethernet headers). For IPPROTO_TCP and IPPROTO_UDP the
 * L4 checksum field must be zero on entry: ipv4_output fills it, by offload when the port can,
 * in software otherwise. Prepends the IPv4 header (source: our address, DF set, TTL 64), picks
 * the next hop, resolves it by ARP (the packet waits for the answer if need be) and queues the
 * frame for the end of the burst. Consumes m in every case; returns 0 or a negative errno
 * (counted already).
 */
int ipv4_output(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t dst_be, uint8_t proto);
/* The same from one of our addresses (a flow's local address: dp_is_our_ip()). */
int ipv4_output_src(
    struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be, uint8_t proto);
/*
 * The same for a flow that sends many packets to one destination: *nh_hint (the caller's,
 * 0 at first) remembers where the next hop's ARP entry sits, so the ARP table's hash is not
 * looked up per packet (arp_output_hint); it is checked and refreshed at every use, so a
 * changed or forgotten entry is followed. nh_hint NULL: as ipv4_output_src.
 */
int ipv4_output_hint(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t src_be, uint32_t dst_be,
    uint8_t proto, uint32_t *nh_hint);

#endif
