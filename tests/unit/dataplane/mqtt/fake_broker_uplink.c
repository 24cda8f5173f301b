/* fake_broker_uplink.c: see fake_broker_uplink.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fake_broker_uplink.h"

static enum broker_uplink_class
up_wants(void *uctx, const char *topic, size_t len, uint8_t qos)
{
	(void)uctx, (void)qos;
	if (len >= 6 && memcmp(topic, "plant/", 6) == 0)
		return BROKER_UPLINK_DURABLE;
	if (len >= 5 && memcmp(topic, "bulk/", 5) == 0)
		return BROKER_UPLINK_BEST_EFFORT;
	return BROKER_UPLINK_NONE;
}

static int
up_room(void *uctx, size_t topic_len, size_t payload_len)
{
	(void)topic_len;
	return payload_len > 1000 ? -EMSGSIZE : ((struct fake_up *)uctx)->room_rc;
}

static int
up_submit(void *uctx, uint64_t ref, const struct broker_uplink_origin *as, uint8_t qos, bool retain,
    const char *topic, size_t topic_len, const uint8_t *payload, size_t payload_len)
{
	struct fake_up *u = uctx;
	int rc = up_room(uctx, topic_len, payload_len);

	(void)as, (void)retain, (void)topic, (void)payload;
	if (rc == 0 && u->submit_rc != 0)
		rc = u->submit_rc;
	if (rc != 0)
		return rc;
	u->refs[u->n % 64] = ref;
	u->qos[u->n++ % 64] = qos;
	u->best += ref == 0;
	return 0;
}

const struct broker_uplink_ops fake_up_ops = {
	.wants = up_wants, .room = up_room, .submit = up_submit
};

struct fx *
fx_up(struct fake_up *u, uint32_t max_pending)
{
	struct fx *x = fx_new(NULL);

	assert_int_equal(broker_uplink_attach(x->b, &fake_up_ops, u, max_pending), 0);
	return x;
}

void
fx_durable(struct fx *x, uint64_t first, uint64_t last, int status)
{
	broker_uplink_durable(x->b, first, last, status, x->now);
}
