/*
 * Unit tests for the broker's state across restarts (dataplane/mqtt/persist.c): a broker on a
 * state directory is stopped (broker_destroy) or "killed" (its files copied as they are while
 * it runs: what the page cache holds after a SIGKILL), and a new one on those files must give
 * back retained messages, persistent sessions with their subscriptions, queued QoS 1
 * deliveries, QoS 2 ids awaiting PUBREL and QoS 2 deliveries in flight; a journal torn at any
 * byte of its last record recovers what came before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "broker_fixture.h"
#include "crc32c.h"
#include "dirs.h"
#include "broker_int.h" /* broker_persist_fail_next */

struct dirs {
	char a[64], b[64];
};

static int
setup(void **state)
{
	struct dirs *d = calloc(1, sizeof(*d));

	snprintf(d->a, sizeof(d->a), "/tmp/egw-bstate-XXXXXX");
	snprintf(d->b, sizeof(d->b), "/tmp/egw-bstate-XXXXXX");
	assert_non_null(mkdtemp(d->a));
	assert_non_null(mkdtemp(d->b));
	*state = d;
	return 0;
}

/* The syncer's fdatasync waits while the gate is shut (the disk is slow): what waits for it
 * can be looked at. */
static atomic_bool sync_gate_shut;

static int
teardown(void **state)
{
	struct dirs *d = *state;

	/* a test that failed left them set: the next tests' syncers would hang */
	atomic_store(&sync_gate_shut, false);
	broker_persist_fdatasync = fdatasync;
	dirs_remove_flat(d->a);
	dirs_remove_flat(d->b);
	free(d);
	return 0;
}

static struct fx *
fx_on(const char *dir)
{
	struct fx *x = fx_new(NULL);

	assert_int_equal(broker_persist_open(x->b, dir, 0, 0, x->now), 0);
	return x;
}

static void
copy_file(const char *from, const char *to, off_t cut)
{
	static uint8_t buf[1 << 16];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	off_t done = 0;
	ssize_t n;

	assert_true(out >= 0);
	while (in >= 0 && (cut < 0 || done < cut) && (n = read(in, buf, sizeof(buf))) > 0) {
		if (cut >= 0 && done + n > cut)
			n = (ssize_t)(cut - done);
		assert_int_equal(write(out, buf, (size_t)n), n);
		done += n;
	}
	if (in >= 0)
		close(in);
	close(out);
}

/* SIGKILL: the files as they are now (page cache) into dir b; journal cut to cut bytes
 * (-1: whole). The running broker is then freed without touching b. */
static void
crash_copy(const struct dirs *d, off_t cut)
{
	static const char *const names[] = { "broker-0.snap", "broker-0.journal", "broker-1.snap",
		"broker-1.journal" };
	char from[128], to[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(from, sizeof(from), "%s/%s", d->a, names[i]);
		snprintf(to, sizeof(to), "%s/%s", d->b, names[i]);
		if (access(from, F_OK) == 0) /* the journal of instance 0 is cut, if asked */
			copy_file(from, to, i == 1 ? cut : -1);
	}
}

static off_t
file_size(const char *dir, const char *name)
{
	char p[128];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

static void
test_retained_survives(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);

	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 0, "plant/r1", "one", 1, 1, true);
	fx_expect_type(x, 0, MQTT_PUBACK, 0);
	fx_publish(x, 0, "plant/r2", "two", 0, 0, true);
	fx_publish(x, 0, "plant/r3", "three", 0, 0, true);
	fx_publish(x, 0, "plant/r3", "", 0, 0, true); /* cleared */
	fx_tick(x, 1); /* nothing went out since the QoS 0 ones: written at the tick */
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	assert_true(fx_count(x, BROKER_C_PERSIST_RECOVERED) > 0);
	fx_connect(x, 1, MQTT_V311, "sub", true, 60, NULL);
	fx_subscribe(x, 1, "plant/#", 1);
	{
		struct mqtt_packet p;
		int seen = 0;

		while (fx_next(x, 1, &p)) {
			assert_int_equal(p.type, MQTT_PUBLISH);
			assert_true(p.publish.retain);
			if (p.publish.topic.len == 8 &&
			    memcmp(p.publish.topic.s, "plant/r1", 8) == 0) {
				assert_memory_equal(p.publish.payload, "one", 3);
				assert_int_equal(p.publish.qos, 1);
				fx_ack(x, 1, MQTT_PUBACK, p.publish.packet_id);
				seen |= 1;
			} else {
				assert_memory_equal(p.publish.topic.s, "plant/r2", 8);
				assert_memory_equal(p.publish.payload, "two", 3);
				seen |= 2;
			}
		}
		assert_int_equal(seen, 3); /* r3 was cleared: not back */
	}
	fx_free(x);
}

/* A retained QoS 1 PUBLISH with 5.0 properties from connection i, nobody subscribed yet
 * (PUBACK 0x10: no matching subscribers). */
static void
publish_retained_v5(
    struct fx *x, int i, const char *topic, const char *payload, const struct mqtt_props *props)
{
	struct mqtt_packet p = { .type = MQTT_PUBLISH };

	p.publish.props = *props;
	p.publish.topic = (struct mqtt_str){ topic, (uint16_t)strlen(topic) };
	p.publish.payload = (const uint8_t *)payload;
	p.publish.payload_len = (uint32_t)strlen(payload);
	p.publish.qos = 1;
	p.publish.packet_id = 1;
	p.publish.retain = true;
	assert_int_equal(fx_send(x, i, &p), 0);
	fx_expect_type(x, i, MQTT_PUBACK, 0x10);
}

/* A PUBLISH may carry any number of user properties (5.0 3.3.2.3.7): a retained one with 200
 * comes back whole after a restart, in their order. The reader took at most 64 and let a record
 * with more go, uncounted: the acknowledged message was gone. */
static void
test_many_user_properties_survive(void **state)
{
	static struct mqtt_user_prop up[200];
	static char vals[200][8];
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	struct mqtt_props props = { 0 };
	struct mqtt_packet r;

	for (int i = 0; i < 200; i++) {
		int n = snprintf(vals[i], sizeof(vals[i]), "%d", i);

		up[i] = (struct mqtt_user_prop){ { "k", 1 }, { vals[i], (uint16_t)n } };
	}
	fx_connect(x, 0, MQTT_V5, "pub", true, 60, NULL);
	props.user = up;
	props.n_user = 200;
	props.present |= 1ull << MQTT_PROP_USER_PROPERTY;
	publish_retained_v5(x, 0, "plant/r", "setpoint", &props);
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_BAD), 0);
	fx_connect(x, 1, MQTT_V5, "sub", true, 60, NULL);
	fx_subscribe(x, 1, "plant/#", 1);
	assert_true(fx_next(x, 1, &r));
	assert_int_equal(r.type, MQTT_PUBLISH);
	assert_memory_equal(r.publish.payload, "setpoint", 8);
	assert_int_equal(r.publish.props.n_user, 200);
	assert_memory_equal(r.publish.props.user[0].val.s, "0", 1);
	assert_int_equal(r.publish.props.user[199].val.len, 3);
	assert_memory_equal(r.publish.props.user[199].val.s, "199", 3);
	fx_free(x);
}

static void
test_session_present_and_subscriptions(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	struct mqtt_props props = { 0 };

	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 3600);
	assert_false(fx_connect(x, 0, MQTT_V5, "sensor-1", true, 60, &props));
	fx_subscribe(x, 0, "cmd/plant/#", 2);
	fx_subscribe(x, 0, "cmd/all", 1);
	fx_close(x, 0);
	/* a clean session (3.1.1) is not kept */
	assert_false(fx_connect(x, 1, MQTT_V311, "eph", true, 60, NULL));
	fx_subscribe(x, 1, "x", 1);
	fx_free(x); /* an orderly stop */

	x = fx_on(d->a);
	assert_true(fx_connect(x, 0, MQTT_V5, "sensor-1", false, 60, &props)); /* present 1 */
	assert_false(fx_connect(x, 1, MQTT_V311, "eph", false, 60, NULL));
	fx_connect(x, 2, MQTT_V311, "cloud", true, 60, NULL);
	fx_publish(x, 2, "cmd/plant/valve", "open", 2, 5, false);
	fx_expect_type(x, 2, MQTT_PUBREC, 0);
	{
		struct mqtt_publish p = fx_expect_publish(x, 0, "cmd/plant/valve", "open", 2);

		fx_ack(x, 0, MQTT_PUBREC, p.packet_id);
		fx_expect_type(x, 0, MQTT_PUBREL, 0);
	}
	fx_publish(x, 2, "cmd/all", "x", 1, 6, false);
	fx_expect_type(x, 2, MQTT_PUBACK, 0);
	fx_expect_publish(x, 0, "cmd/all", "x", 1);
	fx_free(x);
}

/* A QoS 1 message for an offline persistent session, acknowledged to its publisher, is
 * delivered after a SIGKILL; once PUBACKed it is not delivered again after the next. */
static void
test_queued_qos1_after_kill(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	struct mqtt_publish p;

	fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL);
	fx_subscribe(x, 0, "plant/#", 1);
	fx_close(x, 0);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 1, "plant/t", "21.5", 1, 1, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_publish(x, 1, "plant/t", "21.6", 1, 2, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	crash_copy(d, -1); /* SIGKILL right after the PUBACKs */
	fx_free(x);

	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	p = fx_expect_publish(x, 0, "plant/t", "21.5", 1);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	p = fx_expect_publish(x, 0, "plant/t", "21.6", 1);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	fx_expect_none(x, 0);
	fx_close(x, 0);
	fx_free(x);

	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	fx_expect_none(x, 0);
	fx_free(x);
}

/* The session queue (a sys/queue.h STAILQ: its head points into the session's block) built
 * again from the journal: messages that were queued, then sent, leave the restored queue for
 * the window (recovery's queue_unlink), one queued after them stays, and what is queued after
 * the restart goes behind it; all come in their order. */
static void
test_restored_queue_order(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	static const char *const want[] = { "m1", "m2", "m3", "m4", "m5" };
	struct mqtt_packet r;

	fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL);
	fx_subscribe(x, 0, "plant/#", 1);
	fx_close(x, 0);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 1, "plant/t", "m1", 1, 1, false); /* queued: the subscriber is offline */
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_publish(x, 1, "plant/t", "m2", 1, 2, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	fx_expect_publish(x, 0, "plant/t", "m1", 1); /* from the queue to the window, unacked */
	fx_expect_publish(x, 0, "plant/t", "m2", 1);
	fx_publish(x, 1, "plant/t", "m3", 1, 3, false); /* straight to the window */
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_expect_publish(x, 0, "plant/t", "m3", 1);
	fx_close(x, 0);
	fx_publish(x, 1, "plant/t", "m4", 1, 4, false); /* queued */
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 1, "plant/t", "m5", 1, 5, false); /* behind the restored m4 */
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	for (int i = 0; i < 5; i++) {
		assert_true(fx_next(x, 0, &r));
		assert_int_equal(r.type, MQTT_PUBLISH);
		assert_int_equal(r.publish.payload_len, 2);
		assert_memory_equal(r.publish.payload, want[i], 2);
		assert_int_equal(r.publish.dup, i < 3); /* m1..m3 were sent before the kill */
		fx_ack(x, 0, MQTT_PUBACK, r.publish.packet_id);
	}
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_free(x);
}

/* QoS 2 both ways across a SIGKILL: the publisher's id awaiting PUBREL is kept (its resent
 * PUBLISH is not routed twice, its PUBREL completes), and the subscriber gets its one copy
 * again with DUP and the same packet id, then the PUBREL it waits for. */
static void
test_qos2_across_kill(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	struct mqtt_props props = { 0 };
	struct mqtt_publish p, q;
	struct mqtt_packet pkt = { .type = MQTT_PUBLISH };

	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, &props);
	fx_subscribe(x, 0, "plant/#", 2);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, &props);
	fx_publish(x, 1, "plant/q2", "once", 2, 9, false);
	fx_expect_type(x, 1, MQTT_PUBREC, 0);
	p = fx_expect_publish(x, 0, "plant/q2", "once", 2);
	fx_publish(x, 1, "plant/q2b", "twice", 2, 10, false);
	fx_expect_type(x, 1, MQTT_PUBREC, 0);
	q = fx_expect_publish(x, 0, "plant/q2b", "twice", 2);
	fx_ack(x, 0, MQTT_PUBREC, q.packet_id); /* the second is past PUBREC */
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	assert_true(fx_connect(x, 1, MQTT_V5, "pub", false, 60, &props));
	/* the publisher did not see its PUBREC: sends the PUBLISH again, then PUBREL */
	pkt.publish.topic = (struct mqtt_str){ "plant/q2", 8 };
	pkt.publish.payload = (const uint8_t *)"once";
	pkt.publish.payload_len = 4;
	pkt.publish.qos = 2;
	pkt.publish.packet_id = 9;
	pkt.publish.dup = true;
	assert_int_equal(fx_send(x, 1, &pkt), 0);
	fx_expect_type(x, 1, MQTT_PUBREC, 0);
	assert_int_equal(fx_count(x, BROKER_C_QOS2_DUP), 1); /* not routed again */
	fx_ack(x, 1, MQTT_PUBREL, 9);
	fx_expect_type(x, 1, MQTT_PUBCOMP, 0); /* 0x92 if the id had been forgotten */
	fx_ack(x, 1, MQTT_PUBREL, 10);
	fx_expect_type(x, 1, MQTT_PUBCOMP, 0);

	assert_true(fx_connect(x, 0, MQTT_V5, "sub", false, 60, &props));
	{
		struct mqtt_packet r;

		assert_true(fx_next(x, 0, &r)); /* resent in send order: the PUBLISH first */
		assert_int_equal(r.type, MQTT_PUBLISH);
		assert_true(r.publish.dup);
		assert_int_equal(r.publish.packet_id, p.packet_id);
		assert_memory_equal(r.publish.payload, "once", 4);
		fx_expect_type(x, 0, MQTT_PUBREL, 0); /* for the second: no PUBLISH again */
	}
	fx_expect_none(x, 0);
	fx_ack(x, 0, MQTT_PUBREC, p.packet_id);
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	fx_ack(x, 0, MQTT_PUBCOMP, p.packet_id);
	fx_ack(x, 0, MQTT_PUBCOMP, q.packet_id);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_expect_none(x, 0);
	fx_free(x);

	/* all settled: nothing owed after another restart */
	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V5, "sub", false, 60, &props));
	fx_expect_none(x, 0);
	fx_free(x);
}

/*
 * A journal record whose CRC checks out but that takes a delivery back (found by
 * tests/fuzz/broker/fuzz_broker_persist): after the record that let a QoS 2 delivery's message
 * go (PUBREC received: owed a PUBREL only), one that says it waits for PUBREC again. The replay
 * took it, the delivery waited for a PUBREC without a message, and when the client came back
 * its resend crashed the broker (a NULL message), at every restart. Now the record is skipped
 * and counted (persist_bad), and the client gets its PUBREL.
 */
static void
test_record_taking_delivery_back(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	struct mqtt_props props = { 0 };
	struct mqtt_publish p;
	static uint8_t buf[1 << 16];
	uint8_t rec[512];
	size_t len, at = 32, rlen = 0;
	uint32_t crc;
	char path[128];
	int fd;

	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect(x, 0, MQTT_V5, "sub", true, 60, &props);
	fx_subscribe(x, 0, "plant/#", 2);
	fx_connect(x, 1, MQTT_V5, "pub", true, 60, NULL);
	fx_publish(x, 1, "plant/q2", "once", 2, 9, false);
	fx_expect_type(x, 1, MQTT_PUBREC, 0);
	p = fx_expect_publish(x, 0, "plant/q2", "once", 2);
	fx_ack(x, 0, MQTT_PUBREC, p.packet_id);
	fx_expect_type(x, 0, MQTT_PUBREL, 0);
	crash_copy(d, -1);
	fx_free(x);

	/* records: 4 CRC (over the rest), 4 body length, 1 type, 3 spare, the body; the state
	 * record (type 7) of the PUBREC ends in its state, 3 (owed a PUBREL) */
	snprintf(path, sizeof(path), "%s/broker-0.journal", d->b);
	fd = open(path, O_RDWR | O_APPEND);
	assert_true(fd >= 0);
	len = (size_t)read(fd, buf, sizeof(buf));
	while (at + 12 <= len) {
		uint32_t blen;

		memcpy(&blen, buf + at + 4, 4);
		if (buf[at + 8] == 7 && blen > 0 && buf[at + 12 + blen - 1] == 3 &&
		    12 + blen <= sizeof(rec)) {
			rlen = 12 + blen;
			memcpy(rec, buf + at, rlen);
		}
		at += 12 + blen;
	}
	assert_true(rlen > 0);
	rec[(rlen - 1) % sizeof(rec)] = 2; /* waiting for PUBREC again, its checksum made right */
	crc = crc32c(rec + 4, rlen - 4, 0);
	memcpy(rec, &crc, 4);
	assert_int_equal(write(fd, rec, rlen), (ssize_t)rlen);
	close(fd);

	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V5, "sub", false, 60, &props)); /* crashed here */
	fx_expect_type(x, 0, MQTT_PUBREL, 0); /* owed a PUBREL, as before the restart */
	fx_expect_none(x, 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_BAD), 1);
	fx_ack(x, 0, MQTT_PUBCOMP, p.packet_id);
	assert_int_equal(fx_count(x, BROKER_C_ACK_UNKNOWN), 0);
	fx_free(x);
}

/* A session kept for 600 s comes back under a configuration that keeps sessions 5 s at most
 * (session_expiry_max lowered across the restart): it is kept 5 s, as a CONNECT asking for
 * 600 s would be now. Before, the journal's 600 s held it (and a journal's forged expiry any
 * time). */
static void
test_session_expiry_capped_at_replay(void **state)
{
	struct dirs *d = *state;
	struct broker_config cfg;
	struct mqtt_props props = { 0 };
	struct fx *x = fx_on(d->a);

	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	assert_false(fx_connect(x, 0, MQTT_V5, "dev", false, 60, &props));
	fx_subscribe(x, 0, "plant/#", 1);
	fx_close(x, 0);
	fx_free(x);

	broker_config_defaults(&cfg);
	cfg.session_expiry_max_s = 5;
	x = fx_new(&cfg);
	assert_int_equal(broker_persist_open(x->b, d->a, 0, 0, x->now), 0);
	fx_tick(x, 4000);
	assert_int_equal(fx_count(x, BROKER_C_SESSION_EXPIRED), 0);
	fx_tick(x, 2000);
	assert_int_equal(fx_count(x, BROKER_C_SESSION_EXPIRED), 1);
	assert_false(fx_connect(x, 0, MQTT_V5, "dev", false, 60, &props)); /* present 0 */
	fx_free(x);
}

/* A session that ends (clean start, expiry 0 at DISCONNECT) is not back after a restart. */
static void
test_session_end_journaled(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	struct mqtt_props props = { 0 };

	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect(x, 0, MQTT_V5, "a", true, 60, &props);
	fx_subscribe(x, 0, "t", 1);
	fx_close(x, 0);
	assert_false(fx_connect(x, 0, MQTT_V5, "a", true, 60, &props)); /* clean start */
	fx_close(x, 0);
	fx_connect(x, 1, MQTT_V311, "b", false, 60, NULL);
	fx_subscribe(x, 1, "t", 1);
	fx_close(x, 1);
	fx_connect(x, 2, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 2, "t", "m", 1, 1, false);
	fx_expect_type(x, 2, MQTT_PUBACK, 0);
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V5, "a", false, 60, &props)); /* kept, no subs */
	fx_expect_none(x, 0);
	assert_true(fx_connect(x, 1, MQTT_V311, "b", false, 60, NULL));
	fx_expect_publish(x, 1, "t", "m", 1);
	fx_free(x);
}

/* The journal cut at every byte of its last records (a write torn by the crash): the replay
 * stops at the last whole record, counts it, keeps what came before, and the directory is
 * clean again after (compacted at open). A flipped byte (bad checksum) likewise. */
static void
test_torn_tail(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	off_t before, full;

	fx_connect(x, 0, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x, 0, "keep", "k", 0, 0, true);
	fx_tick(x, 1);
	before = file_size(d->a, "broker-0.journal");
	fx_publish(x, 0, "last", "torn", 0, 0, true);
	fx_tick(x, 1);
	full = file_size(d->a, "broker-0.journal");
	assert_true(full > before);
	for (off_t cut = before; cut <= full; cut++) {
		struct fx *y;

		crash_copy(d, cut);
		y = fx_on(d->b);
		assert_int_equal(
		    fx_count(y, BROKER_C_PERSIST_TORN), cut == before || cut == full ? 0 : 1);
		fx_connect(y, 1, MQTT_V311, "sub", true, 60, NULL);
		fx_subscribe(y, 1, "keep", 0);
		fx_expect_publish(y, 1, "keep", "k", 0);
		fx_subscribe(y, 1, "last", 0);
		if (cut == full)
			fx_expect_publish(y, 1, "last", "torn", 0);
		fx_expect_none(y, 1);
		fx_free(y);
		/* compacted at open: the torn bytes are gone */
		y = fx_on(d->b);
		assert_int_equal(fx_count(y, BROKER_C_PERSIST_TORN), 0);
		fx_free(y);
	}
	/* a bad checksum in the last record */
	crash_copy(d, -1);
	{
		char p[128];
		int fd;
		uint8_t c;

		snprintf(p, sizeof(p), "%s/broker-0.journal", d->b);
		fd = open(p, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &c, 1, full - 2), 1);
		c ^= 0x40;
		assert_int_equal(pwrite(fd, &c, 1, full - 2), 1);
		close(fd);
	}
	{
		struct fx *y = fx_on(d->b);

		assert_int_equal(fx_count(y, BROKER_C_PERSIST_TORN), 1);
		fx_connect(y, 1, MQTT_V311, "sub", true, 60, NULL);
		fx_subscribe(y, 1, "#", 0);
		fx_expect_publish(y, 1, "keep", "k", 0);
		fx_expect_none(y, 1);
		fx_free(y);
	}
	fx_free(x);
}

/* A failed journal write is counted and logged, the partial write is cut off, and the next
 * tick writes the whole state as a snapshot: nothing is lost once that worked. The journal
 * is synced at the next tick once state_sync has passed. */
static void
test_write_failure_resnap(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	struct mqtt_publish p;

	fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL);
	fx_subscribe(x, 0, "t", 1);
	fx_close(x, 0);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	broker_persist_fail_next = 1;
	fx_publish(x, 1, "t", "m1", 1, 1, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_FAIL), 1);
	fx_tick(x, 1); /* the snapshot of everything */
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_COMPACTED), 2);
	fx_publish(x, 1, "t", "m2", 1, 2, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 0);
	fx_tick(x, 1000);
	assert_int_equal(fx_count(x, BROKER_C_PERSIST_SYNC), 1);
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	p = fx_expect_publish(x, 0, "t", "m1", 1);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	p = fx_expect_publish(x, 0, "t", "m2", 1);
	fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
	fx_expect_none(x, 0);
	fx_free(x);
}

static void
connect_with_will(struct fx *x, int i, const char *id, uint32_t delay_s, bool clean)
{
	assert_int_equal(fx_connect_will(x, i, id, clean, delay_s, 600), 0);
}

/* A delayed will pending at the SIGKILL is published after the restart once its delay has
 * passed (its wall-clock time: here no time passes on it), not before; one cancelled by the
 * client's return (or already published) is not published again. */
static void
test_delayed_will(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);

	connect_with_will(x, 0, "dev-1", 30, true);
	connect_with_will(x, 1, "dev-2", 30, true);
	connect_with_will(x, 2, "dev-3", 1, true);
	fx_close(x, 0); /* pending 30 s */
	fx_close(x, 1);
	connect_with_will(x, 1, "dev-2", 30, false); /* back in time: cancelled */
	fx_close(x, 2);
	fx_tick(x, 1500); /* dev-3's will is published before the kill */
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	fx_connect(x, 3, MQTT_V311, "watch", true, 60, NULL);
	fx_subscribe(x, 3, "will/#", 1);
	fx_tick(x, 20000);
	fx_expect_none(x, 3);
	fx_tick(x, 11000);
	fx_expect_publish(x, 3, "will/t", "gone", 1);
	fx_expect_none(x, 3);
	assert_int_equal(fx_count(x, BROKER_C_WILL_PUBLISHED), 1);
	fx_free(x);
}

static uint64_t fake_wall;

static uint64_t
fake_wall_ms(void)
{
	return fake_wall;
}

/*
 * The time the broker is down counts (MQTT 5.0 3.3.2.3.3, 3.1.2.11.2, 3.1.3.2.2): after 20 s
 * down, a retained message that had 5 s left is gone, a will that had 30 s goes 10 s after
 * the restart, and a session that had 60 s ends 40 s after it. Each was written as the time
 * left at its write and came back whole: the message was delivered, the will waited 30 s and
 * the session 60 s again.
 */
static void
test_time_down_counts(void **state)
{
	struct dirs *d = *state;
	uint64_t (*wall)(void) = broker_persist_wall_ms;
	struct mqtt_props props = { 0 }, mp = { 0 };
	struct fx *x;

	fake_wall = 1800000000000ull;
	broker_persist_wall_ms = fake_wall_ms;
	x = fx_on(d->a);
	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 60);
	fx_connect(x, 0, MQTT_V5, "sub", false, 60, &props);
	fx_close(x, 0); /* offline: it ends in 60 s */
	connect_with_will(x, 1, "dev-1", 30, true);
	fx_close(x, 1); /* its will goes in 30 s */
	fx_connect(x, 2, MQTT_V5, "pub", true, 60, NULL);
	mqtt_props_set_u32(&mp, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 5);
	publish_retained_v5(x, 2, "plant/r", "5s", &mp);
	crash_copy(d, -1);
	fx_free(x);
	fake_wall += 20000; /* down 20 s */

	x = fx_on(d->b);
	fx_connect(x, 3, MQTT_V311, "watch", true, 60, NULL);
	fx_subscribe(x, 3, "plant/#", 1);
	fx_expect_none(x, 3); /* expired while down */
	fx_subscribe(x, 3, "will/#", 1);
	fx_tick(x, 9000);
	fx_expect_none(x, 3);
	fx_tick(x, 2000);
	fx_expect_publish(x, 3, "will/t", "gone", 1);
	fx_tick(x, 28000);
	assert_int_equal(fx_count(x, BROKER_C_SESSION_EXPIRED), 0);
	fx_tick(x, 2000);
	assert_int_equal(fx_count(x, BROKER_C_SESSION_EXPIRED), 1);
	fx_free(x);
	broker_persist_wall_ms = wall;
}

static struct fx_xq q;

static void
pair_on(struct fx *x[2], const char *dir)
{
	fx_xq_pair(&q, x, FX_RING_MAX, NULL);
	for (uint32_t i = 0; i < 2; i++)
		assert_int_equal(broker_persist_open(x[i]->b, dir, i, 0, x[i]->now), 0);
}

static uint32_t
sessions_of(struct fx *x)
{
	struct broker_gauges g;

	broker_gauges_get(x->b, &g);
	return g.sessions;
}

/* Two instances: a session that moved from one lcore to the other is journaled there and
 * gone here; after a SIGKILL it is on the second only, and a client back on the first gets it
 * (claimed across), session present 1, with the message queued for it on the second. */
static void
test_two_instances_moved_session(void **state)
{
	struct dirs *d = *state;
	struct fx *x[2], *y[2];
	struct mqtt_publish p;

	pair_on(x, d->a);
	fx_connect_start(x[0], 0, MQTT_V311, "mover", false, 60, NULL);
	fx_xq_pump(&q, x); /* the claim to lcore 1 */
	fx_xq_pump(&q, x); /* its answer: none there */
	assert_false(fx_connack(x[0], 0));
	fx_subscribe(x[0], 0, "m/#", 1);
	fx_xq_pump(&q, x);
	fx_close(x[0], 0);
	fx_connect_start(x[1], 0, MQTT_V311, "mover", false, 60, NULL); /* to the other lcore */
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, x);
	assert_true(fx_connack(x[1], 0));
	fx_close(x[1], 0);
	fx_connect(x[0], 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(x[0], 1, "m/1", "moved", 1, 1, false);
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, x);
	fx_expect_type(x[0], 1, MQTT_PUBACK, 0);
	assert_int_equal(sessions_of(x[0]), 1); /* pub */
	fx_tick(x[0], 1);
	fx_tick(x[1], 1);
	crash_copy(d, -1);
	fx_xq_free(&q, x);

	pair_on(y, d->b);
	assert_int_equal(sessions_of(y[0]), 0);
	assert_int_equal(sessions_of(y[1]), 1);
	fx_connect_start(y[0], 0, MQTT_V311, "mover", false, 60, NULL);
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, y);
	assert_true(fx_connack(y[0], 0));
	p = fx_expect_publish(y[0], 0, "m/1", "moved", 1);
	fx_ack(y[0], 0, MQTT_PUBACK, p.packet_id);
	fx_expect_none(y[0], 0);
	/* its subscription came along: journaled on lcore 1 when the session arrived there */
	fx_connect(y[1], 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(y[1], 1, "m/2", "after", 1, 1, false);
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, y);
	fx_expect_publish(y[0], 0, "m/2", "after", 1);
	fx_xq_free(&q, y);
}

/* The ring between two lcores is memory: a SIGKILL loses what is in it (and what waits for
 * room in it). pair of instances with rings of cap entries on dir. */
static void
pair_cap_on(struct fx *x[2], const char *dir, int cap)
{
	fx_xq_pair(&q, x, cap, NULL);
	for (uint32_t i = 0; i < 2; i++)
		assert_int_equal(broker_persist_open(x[i]->b, dir, i, 0, x[i]->now), 0);
}

/* Publish up to n messages on lcore 0, QoS 1 and 2 in turn, each acknowledged (QoS 2
 * completed); before the `pumped`-th the rings are pumped once (lcore 1 takes and journals
 * what came so far), the rest stay in the ring. Stops when the publisher is held (the ring
 * full: the message waits for room on lcore 0, never dropped); returns how many went. */
static int
publish_acked(struct fx *x[2], int n, int pumped)
{
	for (int k = 0; k < n; k++) {
		uint8_t qos = k % 2 == 0 ? 1 : 2;
		uint16_t pid = (uint16_t)(k + 1);
		char pl[16];

		snprintf(pl, sizeof(pl), "m%d", k);
		if (k == pumped)
			fx_xq_pump(&q, x);
		fx_publish(x[0], 1, "s/t", pl, qos, pid, false);
		fx_expect_type(x[0], 1, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, 0);
		if (qos == 2) {
			fx_ack(x[0], 1, MQTT_PUBREL, pid);
			fx_expect_type(x[0], 1, MQTT_PUBCOMP, 0);
		}
		if (broker_conn_held(x[0]->f[1].c))
			return k + 1;
	}
	return n;
}

/* The subscriber back on lcore 1 gets m0..m(sent-1), each once, in order; it acknowledges
 * them all. */
static void
expect_all_once(struct fx *y[2], int sent)
{
	struct mqtt_packet p;
	int got = 0;

	for (int i = 0; i < 8; i++)
		fx_xq_pump(&q, y);
	while (fx_next(y[1], 0, &p)) {
		char want[16];

		if (p.type == MQTT_PUBREL) {
			fx_ack(y[1], 0, MQTT_PUBCOMP, p.ack.packet_id);
			continue;
		}
		assert_int_equal(p.type, MQTT_PUBLISH);
		snprintf(want, sizeof(want), "m%d", got);
		assert_int_equal(p.publish.payload_len, strlen(want));
		assert_memory_equal(p.publish.payload, want, strlen(want));
		assert_int_equal(p.publish.qos, got % 2 == 0 ? 1 : 2);
		got++;
		fx_ack(
		    y[1], 0, p.publish.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p.publish.packet_id);
		fx_xq_pump(&q, y);
	}
	assert_int_equal(got, sent);
}

/* SIGKILL: the files of dir from as the page cache has them, into dir to. */
static void
crash_copy_dir(const char *from, const char *to)
{
	static const char *const names[] = { "broker-0.snap", "broker-0.journal", "broker-1.snap",
		"broker-1.journal" };
	char f[128], t[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(f, sizeof(f), "%s/%s", from, names[i]);
		snprintf(t, sizeof(t), "%s/%s", to, names[i]);
		if (access(f, F_OK) == 0)
			copy_file(f, t, -1);
	}
}

/*
 * Two instances, an offline persistent session on lcore 1, a publisher on lcore 0: its QoS 1
 * and 2 messages are acknowledged (PUBACK, PUBREC), then the dataplane is SIGKILLed while
 * some are still in the ring to lcore 1 (memory: gone with the process), or wait on lcore 0
 * for room in it, and some were already taken and journaled there. After the restart the
 * subscriber gets every one, each once (QoS 2 exactly once: the publisher's outbox and the
 * receiver's journal never both give it); after a second SIGKILL, once it acknowledged them
 * all, nothing comes again.
 */
static int
ring_kill(const struct dirs *d, int cap, int n, int pumped)
{
	struct fx *x[2], *y[2];
	int sent;

	pair_cap_on(x, d->a, cap);
	fx_connect_start(x[1], 0, MQTT_V311, "sub", false, 60, NULL);
	for (int i = 0; i < 2; i++)
		fx_xq_pump(&q, x);
	assert_false(fx_connack(x[1], 0));
	fx_subscribe(x[1], 0, "s/#", 2);
	fx_close(x[1], 0); /* offline: what comes is queued and journaled on lcore 1 */
	fx_connect(x[0], 1, MQTT_V311, "pub", true, 60, NULL);
	for (int i = 0; i < 2; i++)
		fx_xq_pump(&q, x);
	sent = publish_acked(x, n, pumped);
	assert_true(q.n[1] > 0); /* the kill finds messages in the ring */
	{
		struct broker_gauges g;

		broker_gauges_get(x[0]->b, &g); /* no tick yet: none acknowledged */
		assert_int_equal(g.xoutbox, sent);
	}
	crash_copy(d, -1);
	fx_xq_free(&q, x); /* the rings' contents are gone with the process */

	pair_cap_on(y, d->b, cap);
	fx_connect_start(y[1], 0, MQTT_V311, "sub", false, 60, NULL);
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, y);
	assert_true(fx_connack(y[1], 0));
	expect_all_once(y, sent);
	assert_int_equal(fx_count(y[1], BROKER_C_ACK_UNKNOWN), 0);
	/* no tick before the kill: lcore 0 had no acknowledgement, posted all again; lcore 1
	 * took only what it had not journaled */
	assert_int_equal(fx_count(y[0], BROKER_C_XLCORE_RESENT), sent);
	assert_int_equal(fx_count(y[1], BROKER_C_XLCORE_DUP), pumped < 0 ? 0 : pumped);
	for (int i = 0; i < 4; i++) { /* lcore 1 tells lcore 0 what it journaled */
		fx_tick(y[0], 100);
		fx_tick(y[1], 100);
		fx_xq_pump(&q, y);
	}
	fx_close(y[1], 0);
	crash_copy_dir(d->b, d->a);
	fx_xq_free(&q, y);

	pair_cap_on(x, d->a, cap);
	/* lcore 1's acknowledgements emptied lcore 0's outbox (P_XACK): nothing to post again */
	assert_int_equal(fx_count(x[0], BROKER_C_XLCORE_RESENT), 0);
	fx_connect_start(x[1], 0, MQTT_V311, "sub", false, 60, NULL);
	for (int i = 0; i < 8; i++)
		fx_xq_pump(&q, x);
	assert_true(fx_connack(x[1], 0));
	fx_expect_none(x[1], 0);
	fx_xq_free(&q, x);
	return sent;
}

static void
test_xlcore_ring_kill(void **state)
{
	ring_kill(*state, FX_RING_MAX, 10, -1); /* all 10 in the ring */
}

static void
test_xlcore_ring_kill_some_taken(void **state)
{
	ring_kill(*state, FX_RING_MAX, 10, 3); /* 3 taken and journaled on lcore 1, 7 in the ring */
}

static void
test_xlcore_ring_full_kill(void **state)
{
	/* rings of 2: m0, m1 taken, m2, m3 in the ring, m4 waits for room, its publisher held */
	assert_int_equal(ring_kill(*state, 2, 10, 2), 5);
}

/* With a state directory the posts to another lcore leave after the call's journal write
 * (staged); a full ring still holds the publisher (HOLD_XLCORE) and drops nothing that was
 * acknowledged: all arrive, in order, once there is room. */
static void
test_xlcore_full_ring_holds(void **state)
{
	const struct dirs *d = *state;
	struct fx *x[2];
	struct mqtt_packet p;
	int got = 0, held = 0;

	pair_cap_on(x, d->a, 2);
	fx_connect(x[1], 0, MQTT_V311, "far", true, 0, NULL);
	fx_subscribe(x[1], 0, "t", 1);
	fx_connect(x[0], 1, MQTT_V311, "pub", true, 0, NULL);
	for (int i = 0; i < 2; i++)
		fx_xq_pump(&q, x);
	for (int k = 0; k < 10; k++) {
		char pl[16];

		if (broker_conn_held(x[0]->f[1].c)) {
			held++;
			fx_xq_pump(&q, x);
		}
		snprintf(pl, sizeof(pl), "%d", k);
		fx_publish(x[0], 1, "t", pl, 1, (uint16_t)(k + 1), false);
		fx_expect_type(x[0], 1, MQTT_PUBACK, 0);
	}
	for (int k = 0; k < 10; k++)
		fx_xq_pump(&q, x);
	while (fx_next(x[1], 0, &p)) {
		char want[16];

		assert_int_equal(p.type, MQTT_PUBLISH);
		snprintf(want, sizeof(want), "%d", got++);
		assert_memory_equal(p.publish.payload, want, strlen(want));
		fx_ack(x[1], 0, MQTT_PUBACK, p.publish.packet_id);
		fx_xq_pump(&q, x);
	}
	assert_int_equal(got, 10);
	assert_true(held > 0);
	assert_true(fx_count(x[0], BROKER_C_HOLD_XLCORE) > 0);
	assert_int_equal(fx_count(x[0], BROKER_C_XLCORE_DROP), 0);
	fx_xq_free(&q, x);
}

/* A power cut can take the tail of lcore 0's journal (its outbox entries, their numbers)
 * while lcore 1's journal kept the messages and the numbers it took: after the restart lcore
 * 0 numbers its posts above anything of the last run, so lcore 1 does not take a new message
 * for one it had already (it would drop it as a duplicate). */
static void
test_xlcore_outbox_numbers_after_torn_tail(void **state)
{
	struct dirs *d = *state;
	struct fx *x[2], *y[2];
	struct mqtt_packet p;
	off_t before;
	int got = 0;

	pair_cap_on(x, d->a, FX_RING_MAX);
	fx_connect_start(x[1], 0, MQTT_V311, "sub", false, 60, NULL);
	for (int i = 0; i < 2; i++)
		fx_xq_pump(&q, x);
	assert_false(fx_connack(x[1], 0));
	fx_subscribe(x[1], 0, "s/#", 1);
	fx_close(x[1], 0);
	fx_connect(x[0], 1, MQTT_V311, "pub", true, 60, NULL);
	for (int i = 0; i < 2; i++)
		fx_xq_pump(&q, x);
	before = file_size(d->a, "broker-0.journal");
	for (int k = 0; k < 4; k++) {
		char pl[16];

		snprintf(pl, sizeof(pl), "m%d", k);
		fx_publish(x[0], 1, "s/t", pl, 1, (uint16_t)(k + 1), false);
		fx_expect_type(x[0], 1, MQTT_PUBACK, 0);
	}
	fx_xq_pump(&q, x); /* lcore 1 takes and journals all four */
	crash_copy(d, before);
	fx_xq_free(&q, x);

	pair_cap_on(y, d->b, FX_RING_MAX);
	fx_connect(y[0], 1, MQTT_V311, "pub", true, 60, NULL);
	fx_publish(y[0], 1, "s/t", "m4", 1, 5, false);
	fx_expect_type(y[0], 1, MQTT_PUBACK, 0);
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, y);
	fx_connect_start(y[1], 0, MQTT_V311, "sub", false, 60, NULL);
	for (int i = 0; i < 4; i++)
		fx_xq_pump(&q, y);
	assert_true(fx_connack(y[1], 0));
	while (fx_next(y[1], 0, &p)) {
		char want[16];

		assert_int_equal(p.type, MQTT_PUBLISH);
		snprintf(want, sizeof(want), "m%d", got++);
		assert_memory_equal(p.publish.payload, want, strlen(want));
		fx_ack(y[1], 0, MQTT_PUBACK, p.publish.packet_id);
	}
	assert_int_equal(got, 5);
	assert_int_equal(fx_count(y[1], BROKER_C_XLCORE_DUP), 0);
	fx_xq_free(&q, y);
}

static enum broker_uplink_class
up_wants(void *u, const char *topic, size_t len, uint8_t qos)
{
	(void)u;
	(void)qos;
	return len >= 3 && memcmp(topic, "up/", 3) == 0 ? BROKER_UPLINK_DURABLE
							: BROKER_UPLINK_NONE;
}

static int
up_room(void *u, size_t tl, size_t pl)
{
	(void)u;
	(void)tl;
	(void)pl;
	return 0;
}

static int
up_submit(void *u, uint64_t ref, const struct broker_uplink_origin *as, uint8_t qos, bool retain,
    const char *topic, size_t tl, const uint8_t *payload, size_t pl)
{
	(void)u;
	(void)ref;
	(void)as;
	(void)qos;
	(void)retain;
	(void)topic;
	(void)tl;
	(void)payload;
	(void)pl;
	return 0;
}

static const struct broker_uplink_ops up_ops = { up_wants, up_room, up_submit };

/* Store and forward: a QoS 2 id on a durable rule is journaled only once the uplink said
 * durable (its PUBREC may go). Killed before: the resend after the restart is taken as new
 * (no PUBREC for a message the spool never got); killed after: it is a duplicate. */
static void
test_qos2_durable_rule(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);

	assert_int_equal(broker_uplink_attach(x->b, &up_ops, NULL, 16), 0);
	fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL);
	fx_publish(x, 0, "up/a", "durable", 2, 3, false);
	fx_publish(x, 0, "up/b", "not yet", 2, 4, false);
	fx_expect_none(x, 0); /* both deferred */
	broker_uplink_durable(x->b, 1, 1, 0, x->now);
	fx_expect_type(x, 0, MQTT_PUBREC, 0); /* for id 3 only */
	fx_expect_none(x, 0);
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL));
	fx_publish(x, 0, "up/a", "durable", 2, 3, false);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	assert_int_equal(fx_count(x, BROKER_C_QOS2_DUP), 1); /* durable before: not again */
	fx_publish(x, 0, "up/b", "not yet", 2, 4, false);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	assert_int_equal(fx_count(x, BROKER_C_QOS2_DUP), 1); /* taken as new */
	fx_free(x);
}

/* An uplink that names origins (as the dataplane's channel does) and records what it is given. */
struct ofake {
	uint64_t boot_id;
	uint32_t n, n_rel;
	uint64_t refs[32];
	struct broker_uplink_origin as[32]; /* boot_id 0: submitted without one */
	struct broker_uplink_origin rel[8];
};

static int
o_submit(void *u, uint64_t ref, const struct broker_uplink_origin *as, uint8_t qos, bool retain,
    const char *topic, size_t tl, const uint8_t *payload, size_t pl)
{
	struct ofake *f = u;

	(void)qos, (void)retain, (void)topic, (void)tl, (void)payload, (void)pl;
	assert_true(f->n < 32);
	f->refs[f->n] = ref;
	f->as[f->n++] = as != NULL ? *as : (struct broker_uplink_origin){ 0 };
	return 0;
}

static void
o_origin(void *u, uint64_t ref, struct broker_uplink_origin *o)
{
	*o = (struct broker_uplink_origin){ ((struct ofake *)u)->boot_id, ref, 5 };
}

static void
o_release(void *u, const struct broker_uplink_origin *o)
{
	struct ofake *f = u;

	assert_true(f->n_rel < 8);
	f->rel[f->n_rel++] = *o;
}

/* Polled as the worker loop does until an ack went (the counter moved past acked). */
static void
acked_after_sync(struct fx *x, uint64_t acked)
{
	for (int i = 0; i < 5000 && fx_count(x, BROKER_C_UPLINK_ACKED) == acked; i++) {
		usleep(200);
		broker_uplink_sync_poll(x->b, x->now);
	}
}

/* The agent's durable answer for ref; a persistent session's QoS 2 PUBREC then waits for the
 * journal's fdatasync of its origin (on the syncer thread) before it is sent. */
static void
answer_synced(struct fx *x, uint64_t ref)
{
	uint64_t acked = fx_count(x, BROKER_C_UPLINK_ACKED);

	broker_uplink_durable(x->b, ref, ref, 0, x->now);
	acked_after_sync(x, acked);
}

/* The sensor's PUBREL for pid, whose message went up: the PUBCOMP waits for the journal's
 * fdatasync of the release (polled as the worker loop does), then it is read. */
static void
pubrel_synced(struct fx *x, int i, uint16_t pid)
{
	uint64_t acked = fx_count(x, BROKER_C_UPLINK_ACKED);

	fx_ack(x, i, MQTT_PUBREL, pid);
	acked_after_sync(x, acked);
	fx_expect_type(x, i, MQTT_PUBCOMP, 0);
}

/* broker_uplink_held's fn: the origins listed, at most 8. */
struct olist {
	uint32_t n;
	struct broker_uplink_origin v[8];
};

static void
o_held(void *arg, const struct broker_uplink_origin *o)
{
	struct olist *l = arg;

	assert_true(l->n < 8);
	l->v[l->n++] = *o;
}

static const struct broker_uplink_ops o_ops = { .wants = up_wants,
	.room = up_room,
	.submit = o_submit,
	.origin = o_origin,
	.release = o_release };

static bool
same_origin(const struct broker_uplink_origin *o, uint64_t boot_id, uint64_t ref)
{
	return o->boot_id == boot_id && o->ref == ref && o->lcore == 5;
}

/* QoS 2 through a SIGKILL of the dataplane (issue 15): a QoS 2 id that went up is journaled
 * with its origin in the call that submits it, before the record leaves. The dataplane dies
 * before the agent's answer for id 4 is taken (the agent may hold it, durable): after the
 * restart the sensor's resend goes up again under the first start's origin (the agent answers
 * durable without storing it twice), not as a new record, and is not routed again; id 3, whose
 * answer was taken, gets its PUBREC at once. Each PUBREL releases its origin. */
static void
test_qos2_origin_across_restart(void **state)
{
	struct dirs *d = *state;
	struct ofake f1 = { .boot_id = 0xa1 }, f2 = { .boot_id = 0xb2 };
	struct olist held = { 0 };
	struct fx *x = fx_on(d->a);
	uint64_t acked;

	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f1, 16), 0);
	fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "local", false, 60, NULL);
	fx_subscribe(x, 1, "up/#", 0);
	fx_publish(x, 0, "up/a", "first", 2, 3, false);
	fx_publish(x, 0, "up/b", "second", 2, 4, false);
	fx_expect_publish(x, 1, "up/a", "first", 0);
	fx_expect_publish(x, 1, "up/b", "second", 0);
	assert_int_equal(f1.n, 2);
	assert_int_equal(f1.as[0].boot_id, 0); /* first copies: under this start's own origin */
	answer_synced(x, 1);
	fx_expect_type(x, 0, MQTT_PUBREC, 0); /* id 3; id 4's answer never comes: SIGKILL */
	fx_expect_none(x, 0);
	crash_copy(d, -1);
	fx_free(x);

	x = fx_on(d->b);
	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f2, 16), 0);
	/* what the agent is told this start holds of the first: both ids' origins, journaled */
	assert_int_equal(broker_uplink_held(x->b, o_held, &held), 2);
	assert_int_equal(held.n, 2);
	assert_true(same_origin(&held.v[0], 0xa1, 1) || same_origin(&held.v[1], 0xa1, 1));
	assert_true(same_origin(&held.v[0], 0xa1, 2) || same_origin(&held.v[1], 0xa1, 2));
	assert_true(fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL));
	assert_true(fx_connect(x, 1, MQTT_V311, "local", false, 60, NULL));
	fx_publish(x, 0, "up/b", "second", 2, 4, false);
	fx_expect_none(x, 0); /* its PUBREC waits for the agent */
	assert_int_equal(f2.n, 1);
	if (!same_origin(&f2.as[0], 0xa1, 2))
		fail_msg("the resend of id 4 went up as a new record (origin %llx/%llu): the agent "
			 "would store it twice",
		    (unsigned long long)f2.as[0].boot_id, (unsigned long long)f2.as[0].ref);
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_QOS2_RESENT), 1);
	fx_expect_none(x, 1); /* routed before the restart: not again */
	acked = fx_count(x, BROKER_C_UPLINK_ACKED);
	fx_publish(x, 0, "up/a", "first", 2, 3, false);
	acked_after_sync(
	    x, acked); /* the session's journal writes on disk, the origin's with them */
	fx_expect_type(x, 0, MQTT_PUBREC, 0); /* durable before: nothing sent up */
	assert_int_equal(f2.n, 1);
	fx_publish(x, 0, "up/b", "second", 2, 4, false); /* again while it waits */
	fx_expect_none(x, 0);
	assert_int_equal(f2.n, 1);
	broker_uplink_durable(x->b, f2.refs[0], f2.refs[0], 0, x->now);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	fx_expect_none(x, 0);

	/* PUBREL: each origin released to the agent, the first start's */
	pubrel_synced(x, 0, 4);
	pubrel_synced(x, 0, 3);
	assert_int_equal(f2.n_rel, 2);
	assert_true(same_origin(&f2.rel[0], 0xa1, 2));
	assert_true(same_origin(&f2.rel[1], 0xa1, 1));
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_QOS2_RELEASED), 2);
	assert_int_equal(broker_uplink_held(x->b, o_held, &held), 0);
	fx_free(x);
}

/* What a power cut keeps of the journal: its size when the syncer's last fdatasync of it ended
 * (the open's snapshot and empty journal are synced on the lcore: the header). */
static off_t journal_synced = 32;

static int
sync_noting_size(int fd)
{
	struct stat st;

	if (fdatasync(fd) != 0)
		return -1;
	if (fstat(fd, &st) == 0)
		journal_synced = st.st_size;
	return 0;
}

/* A power cut after the PUBREC of a persistent session's durable QoS 2 message: the journal's
 * record of the id and its origin must be on disk by then, or the restart would not know the
 * id (the sensor's PUBREL is answered, its origin is never released: the agent holds it until
 * its bound; a resend before the PUBREC is taken as new and stored twice). The PUBREC waits
 * for the fdatasync (UPLINK_SYNC_WAIT), the acks behind it on that connection too; the copy of
 * the directory cut to what was synced still holds the origin. */
static void
test_qos2_pubrec_after_origin_on_disk(void **state)
{
	struct dirs *d = *state;
	struct ofake f1 = { .boot_id = 0xa1 }, f2 = { .boot_id = 0xb2 }, f3 = { .boot_id = 0xc3 };
	struct olist held = { 0 };
	uint64_t waited;
	struct fx *x;

	journal_synced = 32;
	broker_persist_fdatasync = sync_noting_size;
	x = fx_on(d->a);
	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f1, 16), 0);
	fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL);
	fx_publish(x, 0, "up/b", "second", 2, 4, false);
	fx_publish(x, 0, "up/c", "third", 1, 5, false);
	assert_int_equal(f1.n, 2);
	broker_uplink_durable(x->b, 1, 2, 0, x->now); /* both durable at the agent */
	waited = fx_count(x, BROKER_C_UPLINK_SYNC_WAIT);
	answer_synced(x, 1);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	fx_expect_type(x, 0, MQTT_PUBACK, 0); /* in order, behind it */
	fx_expect_none(x, 0);
	crash_copy(d, journal_synced);
	fx_free(x);
	broker_persist_fdatasync = fdatasync;

	x = fx_on(d->b);
	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f2, 16), 0);
	assert_int_equal(broker_uplink_held(x->b, o_held, &held), 1);
	assert_true(same_origin(&held.v[0], 0xa1, 1));
	assert_true(fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL));
	/* its PUBCOMP once the release is on disk: a power cut after it leaves the id free */
	journal_synced = file_size(d->b, "broker-0.journal");
	broker_persist_fdatasync = sync_noting_size;
	pubrel_synced(x, 0, 4);
	assert_int_equal(f2.n_rel, 1);
	assert_true(same_origin(&f2.rel[0], 0xa1, 1));
	dirs_remove_flat(d->a);
	assert_int_equal(mkdir(d->a, 0700), 0);
	{ /* the second start's directory, cut to what was synced, into a */
		struct dirs back = { 0 };

		snprintf(back.a, sizeof(back.a), "%s", d->b);
		snprintf(back.b, sizeof(back.b), "%s", d->a);
		crash_copy(&back, journal_synced);
	}
	fx_free(x);
	broker_persist_fdatasync = fdatasync;
	assert_int_equal(waited, 1);

	/* the sensor's next message reuses id 4: new, not a duplicate of the released one */
	x = fx_on(d->a);
	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f3, 16), 0);
	assert_int_equal(broker_uplink_held(x->b, o_held, &held), 0);
	assert_true(fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL));
	fx_publish(x, 0, "up/d", "fourth", 2, 4, false);
	assert_int_equal(f3.n, 1); /* went up: taken as new */
	assert_int_equal(fx_count(x, BROKER_C_QOS2_DUP), 0);
	fx_free(x);
}

static int
sync_gated(int fd)
{
	while (atomic_load(&sync_gate_shut))
		usleep(100);
	return fdatasync(fd);
}

/* The connection is lost while the PUBREC of a durable QoS 2 message waits for its origin on
 * disk (a takeover: the sensor reconnected), and the sensor sends the message again: the id is
 * in the table, confirmed, and its PUBREC waits for that same sync (answered at once, a power
 * cut after it loses the origin and the next resend is stored twice). */
static void
test_qos2_resend_pubrec_waits_for_origin(void **state)
{
	struct dirs *d = *state;
	struct ofake f = { .boot_id = 0xa1 };
	struct fx *x = fx_on(d->a);
	uint64_t acked;

	broker_persist_fdatasync = sync_gated;
	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f, 16), 0);
	fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL);
	atomic_store(&sync_gate_shut, true);
	fx_publish(x, 0, "up/b", "second", 2, 4, false);
	broker_uplink_durable(x->b, 1, 1, 0, x->now);
	for (int i = 0; i < 20; i++) {
		usleep(200);
		broker_uplink_sync_poll(x->b, x->now);
	}
	fx_expect_none(x, 0); /* the PUBREC waits for the disk */
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_SYNC_WAIT), 1);
	assert_true(fx_connect(x, 1, MQTT_V311, "sensor", false, 60, NULL)); /* takes it over */
	acked = fx_count(x, BROKER_C_UPLINK_ACKED);
	fx_publish(x, 1, "up/b", "second", 2, 4, false);
	assert_int_equal(fx_count(x, BROKER_C_QOS2_DUP), 1);
	if (x->f[1].rd < x->f[1].len)
		fail_msg("the resend's PUBREC went before the origin was on disk");
	assert_int_equal(fx_count(x, BROKER_C_UPLINK_SYNC_WAIT), 2);
	assert_int_equal(f.n, 1); /* not sent up again */
	atomic_store(&sync_gate_shut, false);
	acked_after_sync(x, acked);
	fx_expect_type(x, 1, MQTT_PUBREC, 0);
	fx_expect_none(x, 1);
	pubrel_synced(x, 1, 4);
	fx_free(x);
	broker_persist_fdatasync = fdatasync;
}

/* The uplink's ring full (another client's messages wait for the agent) when the sensor's
 * PUBREL for an id that went up comes: the PUBREL waits unread (HOLD_UPLINK) until an entry
 * is free for its PUBCOMP to wait in for the release on disk; answered at once, a power cut
 * after the PUBCOMP leaves the id awaiting PUBREL and the sensor's next message under it is
 * taken for a duplicate and lost. */
static void
test_qos2_pubrel_waits_while_ring_full(void **state)
{
	struct dirs *d = *state;
	struct ofake f = { .boot_id = 0xa1 };
	struct fx *x = fx_on(d->a);
	uint64_t held, acked;

	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f, 16), 0);
	fx_connect(x, 0, MQTT_V311, "sensor", false, 60, NULL);
	fx_connect(x, 1, MQTT_V311, "other", true, 60, NULL);
	fx_publish(x, 0, "up/a", "first", 2, 4, false);
	answer_synced(x, 1);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	for (uint16_t pid = 1; pid <= 16; pid++) /* refs 2..17: the ring of 16 is full */
		fx_publish(x, 1, "up/x", "fill", 1, pid, false);
	assert_int_equal(f.n, 17);
	held = fx_count(x, BROKER_C_HOLD_UPLINK);
	fx_ack(x, 0, MQTT_PUBREL, 4);
	if (x->f[0].rd < x->f[0].len)
		fail_msg("PUBCOMP sent with the uplink's ring full: not waiting for the release on "
			 "disk");
	assert_int_equal(fx_count(x, BROKER_C_HOLD_UPLINK), held + 1);
	assert_int_equal(f.n_rel, 0); /* unread */
	broker_uplink_durable(x->b, 2, 17, 0, x->now);
	for (int i = 0; i < 16; i++)
		fx_expect_type(x, 1, MQTT_PUBACK, 0);
	assert_true(x->f[0].wake);
	acked = fx_count(x, BROKER_C_UPLINK_ACKED);
	assert_int_equal(fx_refeed(x, 0), 0);
	assert_int_equal(f.n_rel, 1);
	acked_after_sync(x, acked);
	fx_expect_type(x, 0, MQTT_PUBCOMP, 0);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* A clean session's QoS 2 ids end with its connection: their origins are released then. */
static void
test_qos2_origin_released_with_session(void **state)
{
	struct dirs *d = *state;
	struct ofake f = { .boot_id = 0xc3 };
	struct fx *x = fx_on(d->a);

	assert_int_equal(broker_uplink_attach(x->b, &o_ops, &f, 16), 0);
	fx_connect(x, 0, MQTT_V311, "sensor", true, 60, NULL);
	fx_publish(x, 0, "up/a", "x", 2, 9, false);
	broker_uplink_durable(x->b, 1, 1, 0, x->now);
	fx_expect_type(x, 0, MQTT_PUBREC, 0);
	fx_close(x, 0); /* no PUBREL: the session ends with the connection */
	assert_int_equal(f.n_rel, 1);
	assert_true(same_origin(&f.rel[0], 0xc3, 1));
	fx_free(x);
}

/* A second broker on the same directory is refused while the first has it. */
static void
test_dir_locked(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a), *y = fx_new(NULL);

	assert_int_equal(broker_persist_open(y->b, d->a, 0, 0, y->now), -EBUSY);
	fx_free(y);
	fx_free(x);
}

/* Compaction under load: many changes, a journal far past its snapshot, the state intact. */
static void
test_compaction_keeps_state(void **state)
{
	struct dirs *d = *state;
	struct fx *x = fx_on(d->a);
	char payload[2048];
	struct mqtt_publish p;

	memset(payload, 'p', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL);
	fx_subscribe(x, 0, "big", 1);
	fx_connect(x, 1, MQTT_V311, "pub", true, 60, NULL);
	for (int i = 0; i < 3000; i++) { /* 6 MB through the journal: at least one compaction */
		fx_publish(x, 1, "big", payload, 1, (uint16_t)(i % 60000 + 1), false);
		fx_expect_type(x, 1, MQTT_PUBACK, 0);
		p = fx_expect_publish(x, 0, "big", payload, 1);
		fx_ack(x, 0, MQTT_PUBACK, p.packet_id);
		fx_read_all(x, 0);
		fx_read_all(x, 1);
		if (i % 100 == 0)
			fx_tick(x, 10);
	}
	fx_publish(x, 1, "big", "last", 1, 1, false);
	fx_expect_type(x, 1, MQTT_PUBACK, 0);
	fx_close(x, 0); /* "last" is unacknowledged: resent after the restart */
	assert_true(fx_count(x, BROKER_C_PERSIST_COMPACTED) >= 2);
	crash_copy(d, -1);
	fx_free(x);
	x = fx_on(d->b);
	assert_true(fx_connect(x, 0, MQTT_V311, "sub", false, 60, NULL));
	p = fx_expect_publish(x, 0, "big", "last", 1);
	assert_true(p.dup);
	fx_expect_none(x, 0);
	fx_free(x);
}

/* The highest downlink ref taken (broker_down_publish) is journaled after the message it came
 * with, in the same write: a kill after the write finds both (the agent's resend is answered,
 * test_svc_mqtt_uplink); a journal torn inside the ref's record keeps the message and loses the
 * ref (a duplicate, never a loss); the snapshot written at open keeps it; a lower ref (refused,
 * or from before) never lowers it. */
static void
test_down_ref(void **state)
{
	struct dirs *d = *state;
	struct mqtt_props props = { 0 };
	struct fx *x = fx_on(d->a);
	off_t end;

	mqtt_props_set_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 600);
	fx_connect(x, 0, MQTT_V5, "act", true, 60, &props);
	fx_subscribe(x, 0, "cmd/#", 2);
	fx_close(x, 0);
	assert_int_equal(broker_down_publish(x->b, 7, "cmd/a", 5, "x", 1, 2, false, x->now), 1);
	assert_int_equal(broker_down_publish(x->b, 3, "cmd/b", 5, "y", 1, 2, false, x->now), 1);
	assert_int_equal(
	    broker_down_publish(x->b, 9, "cmd/#", 5, "z", 1, 2, false, x->now), -EINVAL);
	assert_int_equal(broker_down_ref(x->b), 7);
	crash_copy(d, -1);
	fx_free(x);
	x = fx_on(d->b);
	assert_int_equal(broker_down_ref(x->b), 7);
	fx_free(x); /* its snapshot holds it now */
	x = fx_on(d->b);
	assert_int_equal(broker_down_ref(x->b), 7);
	fx_free(x);

	/* the write of ref 8 torn in the ref's record: its message is kept, the ref is not */
	dirs_remove_flat(d->b);
	assert_int_equal(mkdir(d->b, 0700), 0);
	x = fx_on(d->a);
	assert_int_equal(broker_down_publish(x->b, 8, "cmd/c", 5, "w", 1, 2, false, x->now), 1);
	end = file_size(d->a, "broker-0.journal");
	crash_copy(d, end - 1);
	fx_free(x);
	x = fx_on(d->b);
	assert_int_equal(broker_down_ref(x->b), 7);
	assert_true(fx_connect(x, 0, MQTT_V5, "act", false, 60, &props));
	fx_expect_publish(x, 0, "cmd/a", "x", 2);
	fx_expect_publish(x, 0, "cmd/b", "y", 2);
	fx_expect_publish(x, 0, "cmd/c", "w", 2);
	fx_expect_none(x, 0);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_retained_survives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_user_properties_survive, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_session_present_and_subscriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queued_qos1_after_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restored_queue_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_across_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_end_journaled, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_session_expiry_capped_at_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_failure_resnap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delayed_will, setup, teardown),
		cmocka_unit_test_setup_teardown(test_time_down_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_durable_rule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_qos2_origin_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_qos2_pubrec_after_origin_on_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_qos2_origin_released_with_session, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_qos2_resend_pubrec_waits_for_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_qos2_pubrel_waits_while_ring_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_instances_moved_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xlcore_ring_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xlcore_ring_kill_some_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xlcore_ring_full_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xlcore_full_ring_holds, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_xlcore_outbox_numbers_after_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_keeps_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_down_ref, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_taking_delivery_back, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
