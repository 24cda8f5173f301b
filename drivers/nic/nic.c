/*
 * nic.c: DPDK ethdev bring-up; see nic.h. Failures return a negative errno and log why;
 * main() decides whether that is fatal.
 */
#include "nic.h"

#include <errno.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_bus.h>
#include <rte_dev.h>

#include "log.h"

int
nic_port_find(const char *device, uint16_t *port_id)
{
	uint16_t pid;
	int rc;

	if (rte_eth_dev_get_port_by_name(device, &pid) == 0) {
		*port_id = pid;
		return 0;
	}
	/* Not probed by the EAL (-a / --vdev): try hot-plugging it from the devargs string. */
	rc = rte_dev_probe(device);
	if (rc == 0 && rte_eth_dev_get_port_by_name(device, &pid) == 0) {
		*port_id = pid;
		return 0;
	}
	RTE_ETH_FOREACH_DEV (pid) {
		char name[RTE_ETH_NAME_MAX_LEN];

		if (rte_eth_dev_get_name_by_port(pid, name) == 0)
			log_info("nic: available port %u: %s", pid, name);
	}
	log_err("nic: no port named '%s' (%s)", device, rc ? strerror(-rc) : "not an ethdev");
	return -ENODEV;
}

static void
caps_discover(const struct rte_eth_dev_info *info, struct nic_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->tx_ipv4_cksum = info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
	caps->tx_tcp_cksum = info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	caps->tx_multi_seg = info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	caps->rx_ipv4_cksum = info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
	caps->rx_tcp_cksum = info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
	caps->rss = info->flow_type_rss_offloads & RTE_ETH_RSS_NONFRAG_IPV4_TCP;
	caps->max_queues = RTE_MIN(info->max_rx_queues, info->max_tx_queues);
}

static int
lsc_event(uint16_t port_id, enum rte_eth_event_type type, void *arg, void *ret)
{
	bool up;
	uint32_t speed;

	(void)type, (void)arg, (void)ret;
	if (nic_link_get(port_id, &up, &speed) == 0)
		log_warnx("nic: port %u link %s (%u Mbps)", port_id, up ? "up" : "down", speed);
	return 0;
}

int
nic_port_setup(uint16_t port_id, const struct nic_port_conf *conf, struct rte_mempool *const *pools,
    struct nic_caps *caps, struct rte_ether_addr *mac)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf pconf;
	uint16_t nrx = conf->rx_desc, ntx = conf->tx_desc;
	int rc;

	rc = rte_eth_dev_info_get(port_id, &info);
	if (rc != 0) {
		log_err("nic: port %u: device info: %s", port_id, strerror(-rc));
		return rc;
	}
	caps_discover(&info, caps);
	if (conf->n_queues > caps->max_queues) {
		log_err("nic: port %u (%s) has %u queues, %u workers asked for", port_id,
		    info.driver_name, caps->max_queues, conf->n_queues);
		return -EINVAL;
	}
	if (conf->n_queues > 1 && !caps->rss) {
		log_err("nic: port %u (%s) has no RSS for IPv4/TCP: use one worker", port_id,
		    info.driver_name);
		return -ENOTSUP;
	}

	memset(&pconf, 0, sizeof(pconf));
	if (caps->tx_ipv4_cksum)
		pconf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
	if (caps->tx_tcp_cksum)
		pconf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
	if (caps->tx_multi_seg)
		pconf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	if (caps->rx_ipv4_cksum)
		pconf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
	if (caps->rx_tcp_cksum)
		pconf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
	if (conf->n_queues > 1) {
		pconf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		pconf.rx_adv_conf.rss_conf.rss_hf =
		    RTE_ETH_RSS_NONFRAG_IPV4_TCP & info.flow_type_rss_offloads;
	}
	caps->lsc_intr = (*info.dev_flags & RTE_ETH_DEV_INTR_LSC) != 0;
	pconf.intr_conf.lsc = caps->lsc_intr;

	rc = rte_eth_dev_configure(port_id, conf->n_queues, conf->n_queues, &pconf);
	if (rc != 0) {
		log_err(
		    "nic: port %u (%s): configure: %s", port_id, info.driver_name, strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nrx, &ntx);
	if (rc != 0)
		return rc;
	for (uint16_t q = 0; q < conf->n_queues; q++) {
		int socket = rte_eth_dev_socket_id(port_id);

		rc = rte_eth_rx_queue_setup(port_id, q, nrx, socket, NULL, pools[q]);
		if (rc == 0)
			rc = rte_eth_tx_queue_setup(port_id, q, ntx, socket, NULL);
		if (rc != 0) {
			log_err("nic: port %u queue %u setup: %s", port_id, q, strerror(-rc));
			return rc;
		}
	}
	if (conf->mtu != 0 && (rc = rte_eth_dev_set_mtu(port_id, conf->mtu)) != 0)
		log_warnx("nic: port %u: cannot set MTU %u (%s), keeping the default", port_id,
		    conf->mtu, strerror(-rc));
	if (rte_eth_dev_get_mtu(port_id, &caps->mtu) != 0 || caps->mtu == 0)
		caps->mtu = RTE_ETHER_MTU;
	if (caps->lsc_intr)
		rte_eth_dev_callback_register(port_id, RTE_ETH_EVENT_INTR_LSC, lsc_event, NULL);
	rc = rte_eth_dev_start(port_id);
	if (rc != 0) {
		log_err("nic: port %u start: %s", port_id, strerror(-rc));
		return rc;
	}
	rte_eth_macaddr_get(port_id, mac);
	log_info(
	    "nic: port %u (%s) started: %u queue(s), %u/%u desc, mtu %u, "
	    "offloads: rx-cksum ip:%d tcp:%d, tx-cksum ip:%d tcp:%d, multi-seg:%d, rss:%d, lsc:%d",
	    port_id, info.driver_name, conf->n_queues, nrx, ntx, caps->mtu, caps->rx_ipv4_cksum,
	    caps->rx_tcp_cksum, caps->tx_ipv4_cksum, caps->tx_tcp_cksum, caps->tx_multi_seg,
	    caps->rss, caps->lsc_intr);
	return 0;
}

int
nic_link_get(uint16_t port_id, bool *up, uint32_t *speed_mbps)
{
	struct rte_eth_link link;
	int rc = rte_eth_link_get_nowait(port_id, &link);

	if (rc != 0)
		return rc;
	*up = link.link_status == RTE_ETH_LINK_UP;
	*speed_mbps = link.link_speed;
	return 0;
}

void
nic_port_close(uint16_t port_id)
{
	int rc = rte_eth_dev_stop(port_id);

	if (rc != 0)
		log_warnx("nic: port %u stop: %s", port_id, strerror(-rc));
	rte_eth_dev_close(port_id);
}
