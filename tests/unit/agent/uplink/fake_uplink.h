/*
 * fake_uplink.h: a fake uplink backend (struct uplink_ops) for the store's unit tests: it
 * records every message it is given, in order, and plays the cloud through the delivery hooks
 * (fu_ack). send and restore fail on demand (send_rc, restore_rc). Used by
 * tests/unit/agent/uplink/test_store.c and tests/unit/agent/test_dpchan_store.c.
 */
#ifndef EDGEGW_TEST_FAKE_UPLINK_H
#define EDGEGW_TEST_FAKE_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uplink.h"

#define FU_MAX 4096

struct fu_given {
	char topic[128];
	char payload[64];
	uint8_t qos;
	bool retain, done;
	uint64_t ref;
	uint16_t packet_id;
	int phase; /* 0: sent as new, else restored in that phase */
};

struct fake_up {
	struct uplink up; /* first: the store holds a struct uplink * */
	struct fu_given g[FU_MAX];
	size_t n, outstanding;
	int send_rc; /* what send returns (0, -ENOBUFS, -EINVAL) */
	int restore_rc;
};

/* Zero f and install the fake ops; with_restore false: a backend without restore (the store
 * sends restored messages again as new). */
void fu_init(struct fake_up *f, bool with_restore);
/* The cloud acknowledges given message i (once). */
void fu_ack(struct fake_up *f, size_t i, uint8_t reason);

#endif
