/* eth.h: Ethernet input (dispatch by ethertype) and output (header, then the tx queue). */
#ifndef EDGEGW_NET_ETH_H
#define EDGEGW_NET_ETH_H

#include <stdint.h>

struct dp_lcore;
struct rte_mbuf;
struct rte_ether_addr;

void eth_input(struct dp_lcore *lc, struct rte_mbuf *m);
/* Prepends the Ethernet header to m (data_off at the L3 header) and queues it. Consumes m. */
void eth_output(
    struct dp_lcore *lc, struct rte_mbuf *m, const struct rte_ether_addr *dst, uint16_t ethertype);

#endif
