/*
 * dp_worker.c: the run-to-completion loop of a worker lcore: rx burst through the layers
 * (dp_rx_burst, dp_io.c) -> TCP flush (coalesced ACKs and data) -> tx burst. No locks, no syscalls
 * on the busy path; when idle for a while it may sleep briefly (idle_sleep_us) so a small box
 * is not spent spinning.
 */
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_timer.h>

#include "arp.h"
#include "dp_main.h"
#include "icmp.h"
#include "log.h"
#include "svc.h"
#include "tcp.h"

#define DP_IDLE_POLLS_BEFORE_SLEEP 256
#define DP_TIMER_MANAGE_US         100

int
dp_worker_loop(void *arg)
{
	struct dp_lcore *lc = arg;
	uint64_t timer_period = lc->tsc_hz / 1000000 * DP_TIMER_MANAGE_US, next_timer = 0;
	unsigned idle = 0;

	icmp_lcore_init(lc, lc->cfg->icmp_rate_per_s); /* per-lcore state: set on this lcore */
	log_info("worker %u: lcore %u polling port %u queue %u", lc->worker_idx, lc->lcore_id,
	    lc->port_id, lc->queue_id);
	while (!dp_state.quit) {
		if (dp_rx_burst(lc) > 0) {
			tcp_flush(lc);
			idle = 0;
		} else {
			idle++;
		}
		tcp_timers_poll(lc);
		for (unsigned i = 0; i < dp_state.n_svc; i++)
			if (dp_state.svc[i]->poll != NULL)
				dp_state.svc[i]->poll(lc); /* e.g. MQTT: other lcores' deliveries */
		arp_poll(lc);
		icmp_poll(lc); /* "fragmentation needed" other lcores received for our flows */
		if (lc->now_tsc >= next_timer) {
			rte_timer_manage();
			next_timer = lc->now_tsc + timer_period;
		}
		tcp_flush(lc);
		if (lc->tx_n > 0)
			dp_tx_flush(lc);
		if (idle > DP_IDLE_POLLS_BEFORE_SLEEP && lc->cfg->idle_sleep_us > 0)
			rte_delay_us_sleep(lc->cfg->idle_sleep_us);
	}
	/* Leave cleanly: every flow gets a RST so peers do not wait on a dead gateway. */
	for (unsigned i = 0; i < dp_state.n_svc; i++)
		if (dp_state.svc[i]->fini != NULL)
			dp_state.svc[i]->fini(lc);
	tcp_lcore_fini(lc);
	dp_tx_flush(lc);
	log_info("worker %u: stopped", lc->worker_idx);
	return 0;
}
