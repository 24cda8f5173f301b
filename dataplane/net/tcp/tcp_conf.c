/*
 * tcp_conf.c: the TCP's section of the gateway config (`dataplane.tcp`), read with lib/conf.
 * Defaults are tcp_config_defaults(); scripts/check-config-ref reads tcp_keys.
 */
#include <stdint.h>

#include "tcp_conf.h"

static const char *const tcp_keys[] = { "max_flows", "max_half_open", "rcvbuf", "sndbuf", "mss",
	"wscale", "timestamps", "rto_min", "rto_max", "rto_initial", "delack", "time_wait",
	"syn_retries", "data_retries", "keepalive", "keepalive_idle", "keepalive_interval",
	"keepalive_probes", "challenge_ack_per_s", "congestion_control", NULL };
static const char *const cc_names[] = { "cubic", "newreno", NULL };

void
tcp_config_parse(conf_node n, struct tcp_config *t)
{
	uint64_t v;
	uint32_t u;
	int cc;

	conf_check_keys(n, tcp_keys);
	conf_get_u32(n, "max_flows", t->max_flows, 16, 4u << 20, &t->max_flows);
	conf_get_u32(n, "max_half_open", t->max_half_open, 1, 1u << 20, &t->max_half_open);
	if (conf_get_size_bytes(n, "rcvbuf", t->rcvbuf_bytes, 4096, 64u << 20, &v) == 0)
		t->rcvbuf_bytes = (uint32_t)v;
	if (conf_get_size_bytes(n, "sndbuf", t->sndbuf_bytes, 4096, 64u << 20, &v) == 0)
		t->sndbuf_bytes = (uint32_t)v;
	if (conf_get_u32(n, "mss", t->mss, 536, 9000, &u) == 0)
		t->mss = (uint16_t)u;
	/* Window scale: the smallest that lets the window advertise the whole receive buffer,
	 * unless set; a set one that cannot is an error, not a silently smaller window. */
	t->wscale = 0;
	while (t->wscale < 14 && (65535ull << t->wscale) < t->rcvbuf_bytes)
		t->wscale++;
	if (conf_present(conf_get(n, "wscale")) &&
	    conf_u32(conf_get(n, "wscale"), 0, 14, &u) == 0) {
		if ((65535ull << u) < t->rcvbuf_bytes)
			conf_error(conf_get(n, "wscale"),
			    "wscale %u cannot advertise rcvbuf (%u bytes)", u, t->rcvbuf_bytes);
		t->wscale = (uint8_t)u;
	}
	conf_get_bool(n, "timestamps", t->timestamps, &t->timestamps);
#define MS(key, field, lo, hi)                                               \
	do {                                                                 \
		if (conf_get_duration_ms(n, key, t->field, lo, hi, &v) == 0) \
			t->field = (uint32_t)v;                              \
	} while (0)
	MS("rto_min", rto_min_ms, 1, 60000);
	MS("rto_max", rto_max_ms, 100, 600000);
	MS("rto_initial", rto_initial_ms, 10, 60000);
	MS("delack", delack_ms, 1, 500);
	MS("time_wait", time_wait_ms, 100, 240000);
	MS("keepalive_idle", keepalive_idle_ms, 1000, 86400000);
	MS("keepalive_interval", keepalive_intvl_ms, 100, 3600000);
#undef MS
	conf_get_u32(n, "syn_retries", t->syn_retries, 0, 16, &t->syn_retries);
	conf_get_u32(n, "data_retries", t->data_retries, 1, 32, &t->data_retries);
	conf_get_bool(n, "keepalive", t->keepalive, &t->keepalive);
	conf_get_u32(n, "keepalive_probes", t->keepalive_probes, 1, 100, &t->keepalive_probes);
	conf_get_u32(
	    n, "challenge_ack_per_s", t->challenge_ack_per_s, 1, 1000000, &t->challenge_ack_per_s);
	if (conf_get_enum(n, "congestion_control", t->cc, cc_names, &cc) == 0)
		t->cc = (uint8_t)cc;
	if (t->rto_min_ms > t->rto_max_ms)
		conf_error(conf_get(n, "rto_min"), "rto_min is above rto_max");
}
