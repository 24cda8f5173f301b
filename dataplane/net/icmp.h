/* icmp.h: ICMP echo for the dataplane's address (rate-limited); "fragmentation needed" to TCP
 * (path MTU, RFC 1191); other types counted and ignored. */
#ifndef EDGEGW_NET_ICMP_H
#define EDGEGW_NET_ICMP_H

#include <stdint.h>

struct dp_lcore;
struct rte_mbuf;

void icmp_lcore_init(struct dp_lcore *lc, uint32_t rate_per_s);
/* m->data_off at the ICMP header, l3_len set (the IPv4 header precedes it). Consumes m. */
void icmp_input(struct dp_lcore *lc, struct rte_mbuf *m);

#endif
