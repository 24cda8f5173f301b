/* icmp.h: ICMP echo for the dataplane's address (rate-limited); "fragmentation needed" to TCP
 * (path MTU, RFC 1191); other types counted and ignored. */
#ifndef EDGEGW_NET_ICMP_H
#define EDGEGW_NET_ICMP_H

#include <stdint.h>

struct dp_lcore;
struct rte_mbuf;

void icmp_lcore_init(struct dp_lcore *lc, uint32_t rate_per_s);
/* With several workers (main lcore, before they start): each gets an inbox ring, and a
 * "fragmentation needed" that quotes a flow its lcore does not own (RSS hashes an ICMP message
 * by its own addresses, not by the flow it quotes) is passed to every other lcore, where TCP
 * checks it against its flows as usual (RFC 5927). 0 or -ENOMEM. */
int icmp_lcores_link(struct dp_lcore *const *lcs, unsigned n);
void icmp_lcores_unlink(struct dp_lcore *const *lcs, unsigned n);
/* Take what other lcores passed (each loop iteration, as arp_poll). */
void icmp_poll(struct dp_lcore *lc);
/* m->data_off at the ICMP header, l3_len set (the IPv4 header precedes it). Consumes m. */
void icmp_input(struct dp_lcore *lc, struct rte_mbuf *m);

#endif
