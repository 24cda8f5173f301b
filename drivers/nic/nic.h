/*
 * nic.h: port bring-up for the dataplane: PCI NICs and DPDK virtual devices (net_tap,
 * net_af_packet, net_memif), one rx and one tx queue per worker lcore, offload and RSS
 * discovery, link state. The rest of the dataplane sees only struct nic_caps.
 */
#ifndef EDGEGW_NIC_H
#define EDGEGW_NIC_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ether.h>

struct rte_mempool;

/* What the port can do, as discovered (and enabled) at bring-up. */
struct nic_caps {
	bool tx_ipv4_cksum;
	bool tx_tcp_cksum;
	bool rx_ipv4_cksum;
	bool rx_tcp_cksum;
	bool tx_multi_seg;
	bool rss;
	bool lsc_intr; /* link state change interrupts */
	uint16_t mtu;
	uint16_t max_queues;
};

struct nic_port_conf {
	const char *device; /* ethdev name ("net_tap0") or PCI address ("0000:03:00.0") */
	uint16_t n_queues;  /* rx = tx queues, one per worker */
	uint16_t rx_desc;
	uint16_t tx_desc;
	uint16_t mtu; /* 0: leave the port's default */
};

/* Finds (probing a device named by devargs if the EAL has not) the port for conf->device. */
int nic_port_find(const char *device, uint16_t *port_id);
/* Configures queues (every rx queue takes mbufs from pools[queue]), offloads the port has,
 * RSS over the IPv4/TCP 4-tuple when n_queues > 1, then starts the port. */
int nic_port_setup(uint16_t port_id, const struct nic_port_conf *conf,
    struct rte_mempool *const *pools, struct nic_caps *caps, struct rte_ether_addr *mac);
/* Link up/down and speed, for logs and stats. */
int nic_link_get(uint16_t port_id, bool *up, uint32_t *speed_mbps);
void nic_port_close(uint16_t port_id);

#endif
