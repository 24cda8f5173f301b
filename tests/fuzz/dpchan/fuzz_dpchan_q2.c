/*
 * fuzz_dpchan_q2.c: libFuzzer harness of the agent's QoS 2 origins (lib/dpchan/dpchan_q2.c),
 * the table that keeps exactly once through a restart of the dataplane, and its file. The
 * input's first part builds the file the table opens: a header good, bad or newer, records held
 * or released (or of no known type) for 48 origins and a few others, their CRC-32C right or
 * not, raw bytes at the end. The rest is a script of what the channel's server does: an origin
 * taken under the next token, held, released, tokens settled durable or failed, a resync with
 * origins marked and a sweep of a start's, a sync, a close and open again.
 *
 * A model follows the 48 origins the script names (NONE, WAITING under a token, HELD; marked
 * since the last resync or not) and after every step each one's state in the table must be the
 * model's; after a close and open, the ones HELD are held and no other is (what was waiting was
 * never durable). Checks also: nothing crashes or leaks (ASan, LSan); a file of a newer
 * version is refused (EPROTONOSUPPORT), any other opens.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "crc32c.h"
#include "dpchan.h"
#include "dpchan_q2.h"
#include "log.h"

#define NO 48 /* origins the model follows: 3 starts x 2 lcores x 8 refs */

/* A broken promise: say which, then stop (libFuzzer keeps the input). */
static void __attribute__((noreturn)) broken(const char *why, unsigned i)
{
	fprintf(stderr, "fuzz_dpchan_q2: %s (origin %u)\n", why, i);
	abort();
}

static struct dpchan_origin
origin(unsigned i)
{
	return (struct dpchan_origin){
		.boot_id = 0xb0070000u + i / 16, .lcore = i / 8 % 2, .ref = 1 + i % 8
	};
}

struct model {
	enum dpchan_q2_state st;
	uint64_t token;
	bool marked;
};

static struct model m[NO];
static uint64_t cnt[DPCHAN_C_COUNT];

static void
put_rec(uint8_t *p, uint8_t type, const struct dpchan_origin *o, bool bad)
{
	uint32_t crc;

	memset(p, 0, 32);
	p[4] = type;
	memcpy(p + 8, &o->lcore, 4);
	memcpy(p + 12, &o->boot_id, 8);
	memcpy(p + 20, &o->ref, 8);
	crc = crc32c(p + 4, 28, 0) ^ (bad ? 1u : 0u);
	memcpy(p, &crc, 4);
}

/* The file as the script's first part says; false when nothing was written (no file). */
static bool
build(struct rd *r, const char *path)
{
	static uint8_t buf[16 + 32 * 256 + 64];
	uint8_t how = u8(r), n = u8(r);
	uint32_t ver = 1, crc;
	size_t len = 16;
	int fd;

	if (how & 1)
		return false;
	memcpy(buf, "EGWDQ2O1", 8);
	if (how == 0xff)
		ver = 2; /* a newer writer: the open must refuse */
	memcpy(buf + 8, &ver, 4);
	crc = crc32c(buf, 12, 0) ^ ((how & 6) == 6 ? 1u : 0u);
	memcpy(buf + 12, &crc, 4);
	for (unsigned k = 0; k < n && r->n > 0; k++) {
		uint8_t t = u8(r), which = u8(r);
		struct dpchan_origin o = origin(which % NO);

		if (which >= 2 * NO)
			o.boot_id = 0xdead0000u + which; /* one the model does not follow */
		put_rec(buf + len, (t & 3) == 3 ? t : 1 + (t & 1), &o, (t & 0x80) != 0);
		len += 32;
	}
	for (unsigned k = (how >> 3) % 32; k > 0; k--)
		buf[len++] = u8(r); /* a torn tail */
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    write(fd, buf, len) != (ssize_t)len)
		broken("cannot write the file", 0);
	close(fd);
	return true;
}

static void
check(const struct dpchan_q2 *q)
{
	for (unsigned i = 0; i < NO; i++) {
		struct dpchan_origin o = origin(i);

		if (dpchan_q2_state(q, &o) != m[i].st)
			broken("the table's state is not the model's", i);
	}
}

/* After an open: what the file held is held, nothing waits; present ones are marked. */
static void
model_from(const struct dpchan_q2 *q, bool first)
{
	for (unsigned i = 0; i < NO; i++) {
		struct dpchan_origin o = origin(i);
		enum dpchan_q2_state s = dpchan_q2_state(q, &o);

		if (!first && s != (m[i].st == DPCHAN_Q2_HELD ? DPCHAN_Q2_HELD : DPCHAN_Q2_NONE))
			broken("after a close and open, not what was held", i);
		if (s == DPCHAN_Q2_WAITING)
			broken("waiting after an open", i);
		m[i] = (struct model){ .st = s, .marked = true };
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct rd r = { data, size };
	struct dpchan_q2 *q;
	uint64_t token = 0;

	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/dev/shm/fuzz_dpchan_q2.%d", (int)getpid());
		if (access("/dev/shm", W_OK) != 0)
			snprintf(path, sizeof(path), "/tmp/fuzz_dpchan_q2.%d", (int)getpid());
	}
	log_set_level(LOG_LVL_ERR);
	unlink(path);
	build(&r, path);
	memset(cnt, 0, sizeof(cnt));
	q = dpchan_q2_open(path, 0, cnt, NULL, NULL);
	if (q == NULL) {
		if (errno != EPROTONOSUPPORT)
			broken("the open failed (only a newer version may refuse)", 0);
		unlink(path);
		return 0;
	}
	model_from(q, true);
	while (r.n > 0) {
		uint8_t op = u8(&r), a = u8(&r);
		unsigned i = a % NO;
		struct dpchan_origin o = origin(i);

		switch (op % 9) {
		case 0: /* taken (the server asks the state first: only one it does not hold) */
			if (m[i].st != DPCHAN_Q2_NONE)
				break;
			dpchan_q2_taken(q, &o, ++token);
			m[i] = (struct model){ DPCHAN_Q2_WAITING, token, true };
			break;
		case 1: /* found durable in the spool */
			dpchan_q2_held(q, &o);
			if (m[i].st == DPCHAN_Q2_NONE)
				m[i].marked = true;
			m[i].st = DPCHAN_Q2_HELD;
			m[i].token = 0;
			break;
		case 2: /* tokens up to some settled */
		case 3: {
			uint64_t last = token > a % 8 ? token - a % 8 : 0;
			int status = op % 9 == 2 ? 0 : -EIO;

			dpchan_q2_settle(q, 1, last, status);
			for (unsigned k = 0; k < NO; k++)
				if (m[k].st == DPCHAN_Q2_WAITING && m[k].token <= last)
					m[k].st = status == 0 ? DPCHAN_Q2_HELD : DPCHAN_Q2_NONE;
			if (status == 0)
				(void)dpchan_q2_sync(q);
			break;
		}
		case 4:
			if (dpchan_q2_release(q, &o) != (m[i].st != DPCHAN_Q2_NONE))
				broken("release says otherwise than the model", i);
			m[i].st = DPCHAN_Q2_NONE;
			break;
		case 5:
			dpchan_q2_resync(q);
			for (unsigned k = 0; k < NO; k++)
				m[k].marked = false;
			break;
		case 6:
			dpchan_q2_mark(q, &o);
			m[i].marked = true;
			break;
		case 7: { /* the sweep once every lcore of start a % 3 listed its own */
			uint64_t boot = 0xb0070000u + a % 3;

			dpchan_q2_sweep(q, boot);
			for (unsigned k = 0; k < NO; k++)
				if (m[k].st != DPCHAN_Q2_NONE && origin(k).boot_id != boot &&
				    !m[k].marked)
					m[k].st = DPCHAN_Q2_NONE;
			break;
		}
		default: /* a close (the agent stops) and an open */
			(void)dpchan_q2_sync(q);
			dpchan_q2_close(q);
			if ((q = dpchan_q2_open(path, 0, cnt, NULL, NULL)) == NULL)
				broken("the file it wrote itself did not open", 0);
			model_from(q, false);
			break;
		}
		check(q);
	}
	dpchan_q2_close(q);
	unlink(path);
	return 0;
}
