/*
 * fuzz_broker_persist.c: libFuzzer harness of the broker's state across restarts
 * (dataplane/mqtt/persist.c): what a damaged or tampered state directory hands
 * broker_persist_open. Once per process a broker with a state directory runs a fixed scene
 * (persistent 3.1.1 and 5.0 sessions with subscriptions, messages queued for one offline and
 * in flight to another at both QoS, an incoming QoS 2 id awaiting PUBREL, retained messages, a
 * pending delayed will), and the snapshot and journal it leaves at that moment (a SIGKILL's)
 * are kept. Each input is a script of damage to them: a body byte changed, a body cut or
 * lengthened, a record forged, dropped, duplicated or given another type (each record's
 * CRC-32C made right again, so the replay parses what it holds), a file's tail torn, a
 * header's generation changed, a file gone. Then a broker opens the damaged directory, its
 * clock moves (wills, expiries), the scene's clients come back (clean start 0) and take,
 * acknowledge and publish, a subscriber takes the retained messages, and the broker is
 * destroyed and opened once more on what it wrote itself.
 *
 * Checks: nothing crashes or leaks (ASan, LSan); every packet the broker sends decodes (the
 * fixture decodes in client role and asserts); the open succeeds (a newer version's files
 * aside) and so does the second.
 * Built as a libFuzzer binary with -Dfuzz=true and clang; always as a replay test.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fuzz_input.h"
#include "crc32c.h"
#include "dirs.h"
#include "broker_fixture.h"

#define HDR      32u /* the files' header (persist.c) */
#define REC_HDR  12u /* a record's: CRC-32C, body length, type, 3 bytes */
#define NREC     256
#define BODY_MAX 1024

/* A broken promise: say which, then stop (libFuzzer keeps the input). */
static void __attribute__((noreturn)) broken(const char *why)
{
	fuzz_broken("fuzz_broker_persist", why);
}

struct rec {
	uint8_t type;
	uint16_t len;
	uint8_t body[BODY_MAX];
};

/* A state file as records, to damage and write back. */
struct pfile {
	const char *name;
	bool present;
	uint8_t hdr[HDR];
	struct rec r[NREC];
	unsigned n;
	size_t cut; /* bytes torn off the end once written */
};

static struct pfile genuine[2] = { { .name = "broker-0.snap" }, { .name = "broker-0.journal" } };
static struct pfile files[2];

/* A file of dir as the scene left it (the page cache: a SIGKILL's view). */
static void
load(const char *dir, struct pfile *f)
{
	static uint8_t buf[1 << 20];
	char p[128];
	size_t len, at = HDR;
	ssize_t got;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, f->name);
	f->present = false;
	f->n = 0;
	if ((fd = open(p, O_RDONLY)) < 0)
		return;
	got = read(fd, buf, sizeof(buf));
	close(fd);
	if (got < (ssize_t)HDR)
		return;
	len = (size_t)got;
	f->present = true;
	memcpy(f->hdr, buf, HDR);
	while (len - at >= REC_HDR && f->n < NREC) {
		uint32_t blen;

		memcpy(&blen, buf + at + 4, 4);
		if (blen > BODY_MAX || len - at - REC_HDR < blen)
			break;
		f->r[f->n].type = buf[at + 8];
		f->r[f->n].len = (uint16_t)blen;
		memcpy(f->r[f->n].body, buf + at + REC_HDR, blen);
		f->n++;
		at += REC_HDR + blen;
	}
}

static struct mqtt_props
expiry(uint32_t s)
{
	struct mqtt_props p = { 0 };

	mqtt_props_set_u32(&p, MQTT_PROP_SESSION_EXPIRY_INTERVAL, s);
	return p;
}

/* The scene, once: what a broker with persistent sessions holds at a SIGKILL. */
static void
scene(void)
{
	char dir[] = "/tmp/fuzz_bpersist.XXXXXX";
	struct mqtt_props e = expiry(600);
	struct mqtt_packet p;
	struct fx *x;

	if (mkdtemp(dir) == NULL)
		broken("no directory for the scene");
	x = fx_new(NULL);
	if (broker_persist_open(x->b, dir, 0, 0, x->now) != 0)
		broken("the scene's state directory did not open");
	fx_connect(x, 0, MQTT_V5, "a", true, 60, &e);
	fx_subscribe(x, 0, "t/#", 2);
	fx_subscribe(x, 0, "s/+", 1);
	fx_connect(x, 1, MQTT_V311, "b", false, 60, NULL);
	fx_subscribe(x, 1, "t/x", 1);
	fx_close(x, 1); /* offline: what comes for it is queued */
	fx_connect(x, 2, MQTT_V5, "q", true, 60, &e);
	fx_publish(x, 2, "t/r", "retained", 1, 1, true);
	fx_publish(x, 2, "s/1", "plain", 0, 0, true);
	fx_publish(x, 2, "t/x", "one", 1, 2, false);
	fx_publish(x, 2, "t/x", "two", 2, 3, false);
	fx_publish(x, 2, "t/y", "three", 2, 4, false); /* no PUBREL: its id stays */
	fx_read_all(x, 2);
	while (fx_next(x, 0, &p)) /* a acknowledges some: the rest stays in flight */
		if (p.type == MQTT_PUBLISH && p.publish.qos == 2 && p.publish.packet_id % 2 == 0)
			fx_ack(x, 0, MQTT_PUBREC, p.publish.packet_id);
	if (fx_connect_will(x, 3, "w", false, 30, 600) != 0)
		broken("the scene's will connection was refused");
	fx_close(x, 3); /* its will waits 30 s */
	fx_tick(x, 1);
	load(dir, &genuine[0]);
	load(dir, &genuine[1]);
	fx_free(x);
	dirs_remove_flat(dir);
	if (!genuine[1].present || genuine[1].n == 0)
		broken("the scene left no journal");
}

static void
damage(struct rd *r)
{
	while (r->n > 0) {
		uint8_t op = u8(r), which = u8(r);
		struct pfile *f = &files[which & 1];
		unsigned i = f->n ? u8(r) % f->n : 0;
		struct rec *x = f->n ? &f->r[i] : NULL;

		switch (op % 9) {
		case 0: /* a body byte changed */
			if (x != NULL && x->len > 0)
				x->body[u8(r) % x->len] ^= (uint8_t)(u8(r) | 1);
			break;
		case 1: /* a body cut short */
			if (x != NULL)
				x->len = (uint16_t)(x->len > 0 ? u8(r) % x->len : 0);
			break;
		case 2: /* a body made longer */
			if (x != NULL)
				for (unsigned k = u8(r) % 32; k > 0 && x->len < BODY_MAX; k--)
					x->body[x->len++] = u8(r);
			break;
		case 3: /* a record forged */
			if (f->n < NREC) {
				memmove(&f->r[i + 1], &f->r[i], (f->n - i) * sizeof(f->r[0]));
				f->n++;
				f->r[i].type = u8(r);
				f->r[i].len = 0;
				for (unsigned k = u8(r) % 64; k > 0; k--)
					f->r[i].body[f->r[i].len++] = u8(r);
			}
			break;
		case 4: /* a record gone */
			if (x != NULL) {
				memmove(&f->r[i], &f->r[i + 1], (f->n - i - 1) * sizeof(f->r[0]));
				f->n--;
			}
			break;
		case 5: /* a record twice */
			if (x != NULL && f->n < NREC) {
				memmove(&f->r[i + 1], &f->r[i], (f->n - i) * sizeof(f->r[0]));
				f->n++;
			}
			break;
		case 6: /* another type */
			if (x != NULL)
				x->type = u8(r);
			break;
		case 7: /* the tail torn */
			f->cut = u8(r);
			break;
		default: /* the header: another generation or version, or the file gone */
			if (which & 0x80)
				f->present = false;
			else if (which & 0x40)
				f->hdr[8] = u8(r); /* the version's low byte: a newer one refuses */
			else
				f->hdr[16] = u8(r); /* the generation's low byte */
			break;
		}
	}
}

static void
store(const char *dir, const struct pfile *f)
{
	static uint8_t buf[NREC * (REC_HDR + BODY_MAX) + HDR];
	size_t len = HDR;
	uint32_t crc;
	char p[128];
	int fd;

	if (!f->present)
		return;
	memcpy(buf, f->hdr, HDR);
	crc = crc32c(buf, 28, 0);
	memcpy(buf + 28, &crc, 4);
	for (unsigned i = 0; i < f->n; i++) {
		uint32_t blen = f->r[i].len;

		memset(buf + len, 0, REC_HDR);
		memcpy(buf + len + 4, &blen, 4);
		buf[len + 8] = f->r[i].type;
		memcpy(buf + len + REC_HDR, f->r[i].body, blen);
		crc = crc32c(buf + len + 4, blen + REC_HDR - 4, 0);
		memcpy(buf + len, &crc, 4);
		len += REC_HDR + blen;
	}
	len -= f->cut < len - HDR ? f->cut : len - HDR;
	snprintf(p, sizeof(p), "%s/%s", dir, f->name);
	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    write(fd, buf, len) != (ssize_t)len)
		broken("cannot write the state files");
	close(fd);
}

/* Everything client i was sent, each packet answered as a client does. */
static void
take(struct fx *x, int i)
{
	struct mqtt_packet p;

	for (int k = 0; k < 4096 && fx_next(x, i, &p); k++) {
		if (p.type == MQTT_PUBLISH && p.publish.qos == 1)
			fx_ack(x, i, MQTT_PUBACK, p.publish.packet_id);
		else if (p.type == MQTT_PUBLISH && p.publish.qos == 2)
			fx_ack(x, i, MQTT_PUBREC, p.publish.packet_id);
		else if (p.type == MQTT_PUBREL)
			fx_ack(x, i, MQTT_PUBCOMP, p.ack.packet_id);
		fx_read_all(x, i);
	}
}

/* The scene's clients come back and carry on. */
static void
resume(struct fx *x)
{
	struct mqtt_props e = expiry(600);

	fx_tick(x, 1000);
	fx_tick(x, 40000); /* the will's delay has passed */
	fx_connect(x, 0, MQTT_V5, "a", false, 60, &e);
	take(x, 0);
	fx_connect(x, 1, MQTT_V311, "b", false, 60, NULL);
	take(x, 1);
	fx_connect(x, 2, MQTT_V5, "q", false, 60, &e);
	fx_publish(x, 2, "t/y", "three", 2, 4, true); /* the id it had, sent again */
	fx_ack(x, 2, MQTT_PUBREL, 4);
	fx_publish(x, 2, "t/x", "four", 1, 5, false);
	take(x, 2);
	take(x, 0);
	fx_connect(x, 4, MQTT_V311, "r", true, 60, NULL);
	fx_subscribe(x, 4, "#", 2); /* the retained messages */
	take(x, 4);
	fx_tick(x, 1000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	char dir[] = "/dev/shm/fuzz_bpersist.XXXXXX", tdir[] = "/tmp/fuzz_bpersist.XXXXXX";
	struct rd r = { data, size };
	const char *d;
	struct fx *x;
	int rc;

	if (!ready) {
		scene();
		ready = true;
	}
	memcpy(files, genuine, sizeof(files));
	damage(&r);
	/* tmpfs where there is one: an fdatasync there costs nothing */
	if ((d = mkdtemp(dir)) == NULL && (d = mkdtemp(tdir)) == NULL)
		broken("no directory for the state");
	store(d, &files[0]);
	store(d, &files[1]);
	x = fx_new(NULL);
	rc = broker_persist_open(x->b, d, 0, 0, x->now);
	if (rc == 0)
		resume(x);
	fx_free(x);
	if (rc != 0 && rc != -EPROTONOSUPPORT)
		broken("the damaged state did not open");
	if (rc == 0) {
		x = fx_new(NULL);
		if (broker_persist_open(x->b, d, 0, 0, x->now) != 0)
			broken("the state it wrote itself did not open");
		resume(x);
		fx_free(x);
	}
	dirs_remove_flat(d);
	return 0;
}
