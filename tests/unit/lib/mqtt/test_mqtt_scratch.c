/*
 * test_mqtt_scratch.c: lib/mqtt's decoder when its scratch buffer cannot hold a packet's arrays
 * (the filters of a SUBSCRIBE or an UNSUBSCRIBE): the packet is refused with SCRATCH_FULL (the
 * broker answers it with reason 0x95, packet too large), never read past the buffer; with room,
 * the same bytes decode to their filters. The packets are written out by hand from the 3.1.1
 * layout (section 3.8 and 3.10), not by our encoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_codec.h"

/* SUBSCRIBE, packet id 1: "a" QoS 0, "b" QoS 1, "c" QoS 2. */
static const uint8_t subscribe[] = { 0x82, 0x0e, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b',
	0x01, 0x00, 0x01, 'c', 0x02 };
/* UNSUBSCRIBE, packet id 2: "a", "b", "c". */
static const uint8_t unsubscribe[] = { 0xa2, 0x0b, 0x00, 0x02, 0x00, 0x01, 'a', 0x00, 0x01, 'b',
	0x00, 0x01, 'c' };

static void
test_filters_need_scratch(void **state)
{
	uint8_t small[8], big[256];
	struct mqtt_decoder d;
	struct mqtt_packet p;

	(void)state;
	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, MQTT_V311, 0, small, sizeof(small));
	assert_int_equal(
	    mqtt_decode_buf(&d, subscribe, sizeof(subscribe), &p), -MQTT_E_SCRATCH_FULL);
	assert_int_equal(
	    mqtt_decode_buf(&d, unsubscribe, sizeof(unsubscribe), &p), -MQTT_E_SCRATCH_FULL);
	assert_int_equal(mqtt_err_reason(-MQTT_E_SCRATCH_FULL), 0x95);

	mqtt_decoder_init(&d, MQTT_ROLE_SERVER, MQTT_V311, 0, big, sizeof(big));
	assert_int_equal(mqtt_decode_buf(&d, subscribe, sizeof(subscribe), &p), sizeof(subscribe));
	assert_int_equal(p.type, MQTT_SUBSCRIBE);
	assert_int_equal(p.subscribe.packet_id, 1);
	assert_int_equal(p.subscribe.n_subs, 3);
	assert_memory_equal(p.subscribe.subs[2].filter.s, "c", 1);
	assert_int_equal(p.subscribe.subs[2].qos, 2);
	assert_int_equal(
	    mqtt_decode_buf(&d, unsubscribe, sizeof(unsubscribe), &p), sizeof(unsubscribe));
	assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
	assert_int_equal(p.unsubscribe.packet_id, 2);
	assert_int_equal(p.unsubscribe.n_filters, 3);
	assert_memory_equal(p.unsubscribe.filters[1].s, "b", 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filters_need_scratch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
