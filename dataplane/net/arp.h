/*
 * arp.h: ARP for the port's subnet: answer requests for our address, resolve next hops
 * (packets wait, bounded, for the answer), cache with expiry and re-validation.
 * Each worker lcore has its own table; what one lcore learns is passed to the others over
 * rte_rings (ARP replies arrive on whatever queue the NIC picks, usually queue 0).
 */
#ifndef EDGEGW_NET_ARP_H
#define EDGEGW_NET_ARP_H

#include <stdint.h>

struct dp_lcore;
struct rte_mbuf;

int arp_lcore_init(struct dp_lcore *lc, uint32_t entries, uint32_t timeout_ms);
/* Connect the lcores so each one's learned entries reach the others (after every init). */
void arp_lcores_link(struct dp_lcore *const *lcs, unsigned n);
void arp_lcore_fini(struct dp_lcore *lc);

void arp_input(struct dp_lcore *lc, struct rte_mbuf *m);
/* Sends m (data_off at the IPv4 header) to next_hop_be; it waits if the MAC is unknown. */
void arp_output(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t next_hop_be);
/* The same with the caller's hint of where next_hop_be's entry sits (*hint, 0: unknown):
 * used when that entry is still next_hop_be's and reachable, else the table is searched and
 * *hint refreshed. The hint never holds a MAC: a changed MAC is read from the entry. */
void arp_output_hint(struct dp_lcore *lc, struct rte_mbuf *m, uint32_t next_hop_be, uint32_t *hint);
/* Retries, expiry and entries learned by other lcores; call every loop iteration. */
void arp_poll(struct dp_lcore *lc);
uint32_t arp_entry_count(const struct dp_lcore *lc);

#endif
