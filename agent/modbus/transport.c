/*
 * transport.c: what both transports share (connect, close, drain, per-request settings); the
 * differences are in the ops table (transport_rtu.c, transport_tcp.c).
 */
#include <errno.h>
#include <poll.h>

#include "clock.h"
#include "transport.h"

const struct mb_transport_ops *
mb_transport_for(enum agent_bus_kind kind)
{
	return kind == AGENT_BUS_TCP ? &mb_transport_tcp : &mb_transport_rtu;
}

int
mb_transport_init(struct mb_transport *t, const struct agent_bus_conf *c)
{
	*t = (struct mb_transport){ .ops = mb_transport_for(c->kind), .c = c };
	t->ctx = t->ops->ctx_new(c);
	t->gap_us = t->ops->gap_us(c);
	return t->ctx == NULL ? -EINVAL : 0;
}

int
mb_transport_connect(struct mb_transport *t)
{
	int rc;

	if (t->connected)
		return 0;
	if (t->ops->before_open != NULL && (rc = t->ops->before_open(t)) != 0)
		return rc;
	if (modbus_connect(t->ctx) != 0)
		return errno ? -errno : -EIO;
	rc = t->ops->setup(t);
	if (rc != 0) {
		modbus_close(t->ctx);
		return rc;
	}
	__atomic_store_n(&t->connected, true, __ATOMIC_RELAXED);
	return 0;
}

void
mb_transport_close(struct mb_transport *t)
{
	if (t->ctx != NULL && t->connected)
		modbus_close(t->ctx);
	__atomic_store_n(&t->connected, false, __ATOMIC_RELAXED);
}

void
mb_transport_fini(struct mb_transport *t)
{
	if (t->ctx == NULL)
		return;
	mb_transport_close(t);
	modbus_free(t->ctx);
	t->ctx = NULL;
}

const char *
mb_transport_where(const struct mb_transport *t)
{
	return t->ops->where(t->c);
}

void
mb_transport_drain(struct mb_transport *t, uint32_t quiet_ms, uint32_t limit_ms)
{
	uint64_t end = clock_mono_us() + (uint64_t)limit_ms * 1000u;
	struct pollfd pfd = { .fd = modbus_get_socket(t->ctx), .events = POLLIN };

	modbus_flush(t->ctx);
	while (pfd.fd >= 0 && clock_mono_us() < end && poll(&pfd, 1, (int)quiet_ms) > 0) {
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		modbus_flush(t->ctx);
	}
}

void
mb_transport_prepare(struct mb_transport *t, uint8_t unit, uint32_t timeout_ms)
{
	uint32_t bt = t->ops->byte_timeout_us(timeout_ms);

	modbus_set_slave(t->ctx, unit);
	modbus_set_response_timeout(t->ctx, timeout_ms / 1000, (timeout_ms % 1000) * 1000);
	modbus_set_byte_timeout(t->ctx, bt / 1000000u, bt % 1000000u);
}
