/*
 * fake_broker_uplink.h: a fake uplink (struct broker_uplink_ops) for the broker's store and
 * forward tests. Topics under plant/ are durable, under bulk/ best effort, the rest not for
 * the uplink; a payload over 1000 bytes never fits (-EMSGSIZE). room and submit answer what
 * the test sets (room_rc, submit_rc); every record taken is kept (ref and QoS, the last 64).
 * Used by test_broker_uplink.c and test_broker_uplink_edges.c.
 */
#ifndef EDGEGW_TEST_FAKE_BROKER_UPLINK_H
#define EDGEGW_TEST_FAKE_BROKER_UPLINK_H

#include <stdint.h>

#include "broker_fixture.h"

struct fake_up {
	int room_rc;   /* what room() answers */
	int submit_rc; /* what submit() answers when room() said 0 */
	uint64_t refs[64];
	uint8_t qos[64];
	uint32_t n;    /* records taken */
	uint32_t best; /* of them best effort (ref 0) */
};

extern const struct broker_uplink_ops fake_up_ops;

/* A fixture (fx_new) whose broker has the fake u attached with max_pending. */
struct fx *fx_up(struct fake_up *u, uint32_t max_pending);
/* The uplink's durable answer for refs first..last, at the fixture's clock. */
void fx_durable(struct fx *x, uint64_t first, uint64_t last, int status);

#endif
