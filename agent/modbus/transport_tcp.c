/*
 * transport_tcp.c: Modbus TCP (a device with an Ethernet port, or an RTU gateway with unit
 * ids). TCP frames the messages, so no silence between them; a request costs a round trip.
 */
#include <errno.h>
#include <stdio.h>

#include "transport.h"

static modbus_t *
tcp_ctx_new(const struct agent_bus_conf *c)
{
	char port[8];

	snprintf(port, sizeof(port), "%u", c->port);
	return modbus_new_tcp_pi(c->host, port);
}

static int
tcp_setup(struct mb_transport *t)
{
	(void)t;
	return 0;
}

static uint32_t
tcp_gap_us(const struct agent_bus_conf *c)
{
	(void)c;
	return 0;
}

static uint32_t
tcp_byte_timeout_us(uint32_t timeout_ms)
{
	return (timeout_ms < 1000 ? timeout_ms : 999) * 1000u;
}

static void
tcp_cost(const struct agent_bus_conf *c, struct mb_cost *out)
{
	*out = (struct mb_cost){ 0, 0, (double)c->turnaround_ms * 1000.0 + 1.0 };
}

static enum mb_link_err
tcp_classify(int err)
{
	switch (err) {
	case ECONNRESET:
	case EPIPE:
	case EBADF:
	case ENOTCONN:
	case ECONNREFUSED:
	case EIO:
		return MB_LINK_LOST;
	default:
		return MB_LINK_DEVICE;
	}
}

/* A refused or timed-out connect may be one gateway restarting: still the bus's fault, since
 * every unit behind it is unreachable, but name resolution is the config's. */
static bool
tcp_open_fault(int err)
{
	(void)err;
	return true;
}

static const char *
tcp_where(const struct agent_bus_conf *c)
{
	return c->host;
}

const struct mb_transport_ops mb_transport_tcp = {
	.name = "tcp",
	.ctx_new = tcp_ctx_new,
	.setup = tcp_setup,
	.gap_us = tcp_gap_us,
	.byte_timeout_us = tcp_byte_timeout_us,
	.cost = tcp_cost,
	.classify = tcp_classify,
	.where = tcp_where,
	.open_fault = tcp_open_fault,
};
