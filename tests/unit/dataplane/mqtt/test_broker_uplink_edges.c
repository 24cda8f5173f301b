/*
 * Unit tests of store and forward in the broker (uplink.c) at its edges: a 5.0 publisher that
 * names its durable topic through a topic alias, acknowledgements owed that only partly fit
 * when room comes back and are dropped with their connection, and durable answers for a
 * range wider than what is pending. The uplink is a fake (as in test_broker_uplink.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker_fixture.h"

struct fake_up {
	int room_rc;   /* what room() answers */
	int submit_rc; /* what submit() answers when room() said 0 */
	uint64_t refs[64];
	uint8_t qos[64];
	uint32_t n;    /* records taken */
	uint32_t best; /* of them best effort (ref 0) */
};

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
up_submit(void *uctx, uint64_t ref, uint8_t qos, bool retain, const char *topic, size_t topic_len,
    const uint8_t *payload, size_t payload_len)
{
	struct fake_up *u = uctx;
	int rc = up_room(uctx, topic_len, payload_len);

	(void)retain, (void)topic, (void)payload;
	if (rc == 0 && u->submit_rc != 0)
		rc = u->submit_rc;
	if (rc != 0)
		return rc;
	u->refs[u->n % 64] = ref;
	u->qos[u->n++ % 64] = qos;
	u->best += ref == 0;
	return 0;
}

static const struct broker_uplink_ops up_ops = {
	.wants = up_wants, .room = up_room, .submit = up_submit
};

static struct fx *
fx_up(struct fake_up *u, uint32_t max_pending)
{
	struct fx *x = fx_new(NULL);

	assert_int_equal(broker_uplink_attach(x->b, &up_ops, u, max_pending), 0);
	return x;
}

static void
durable(struct fx *x, uint64_t first, uint64_t last, int status)
{
	broker_uplink_durable(x->b, first, last, status, x->now);
}


static int
publish_alias(struct fx *x, int i, const char *topic, uint16_t alias, uint16_t pid)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)"v";
	p.publish.payload_len = 1;
	p.publish.qos = 1;
	p.publish.packet_id = pid;
	mqtt_props_set_u32(&p.publish.props, MQTT_PROP_TOPIC_ALIAS, alias);
	return fx_send(x, i, &p);
}

/* The durable rule applies to the topic an alias stands for: the PUBLISH that binds it and
 * the one that only names the alias are both submitted, and acknowledged once durable. An
 * alias never bound, or over our maximum, is refused before the uplink sees anything. */
static void
test_alias_to_durable_topic(void **state)
{
	struct fake_up u = { 0 };
	struct fx *x = fx_up(&u, 16);

	(void)state;
	fx_connect(x, 0, MQTT_V5, "sensor", true, 60, NULL);
	assert_int_equal(publish_alias(x, 0, "plant/t", 2, 1), 0);
	assert_int_equal(publish_alias(x, 0, "", 2, 2), 0);
	fx_expect_none(x, 0);
	assert_int_equal(u.n, 2);
	durable(x, 1, 2, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_expect_type(x, 0, MQTT_PUBACK, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	fx_expect_none(x, 0);
	assert_true(publish_alias(x, 0, "", 5, 3) < 0); /* never bound */
	fx_expect_type(x, 0, MQTT_DISCONNECT, MQTT_RC_PROTOCOL_ERROR);
	fx_connect(x, 1, MQTT_V5, "sensor2", true, 60, NULL);
	assert_true(publish_alias(x, 1, "", (uint16_t)(x->cfg.topic_alias_max + 1), 1) < 0);
	fx_expect_type(x, 1, MQTT_DISCONNECT, MQTT_RC_TOPIC_ALIAS_INVALID);
	assert_int_equal(u.n, 2);
	assert_int_equal(broker_uplink_pending(x->b), 0);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_to_durable_topic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
