/*
 * fuzz_mqtt_decode.c: libFuzzer harness for the MQTT codec's decoder (lib/mqtt).
 *
 * Input: one control byte, then a byte stream. The control byte picks the decoder (bits 0-2:
 * role, version, a small maximum packet size) and how the stream is cut into segments (bits 4-7:
 * 0 = one flat buffer, n = segments of n bytes), so segment boundaries fall everywhere.
 * Packets are decoded one after another until the stream needs more bytes or is rejected.
 *
 * Each accepted packet must also satisfy the codec's own invariants: it encodes again (the
 * encoder accepts all the decoder accepts), that encoding decodes, and encoding it once more
 * gives the same bytes; a decoded topic name matches itself used as a filter; the payload UTF-8
 * check gives the same answer on the segments as on a flat copy.
 *
 * Without -fsanitize=fuzzer it links tests/fuzz/fuzz_replay.c and builds as a replay program:
 * every file named on the command line, or in a directory named there, is run once (the unit
 * test over corpus/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_codec.h"
#include "mqtt_topic.h"

#define MAX_SEGS 4096

struct mode {
	enum mqtt_role role;
	uint8_t version;
	uint32_t max_packet_size;
};

static const struct mode modes[8] = {
	{ MQTT_ROLE_SERVER, 0, 0 },
	{ MQTT_ROLE_SERVER, MQTT_V311, 0 },
	{ MQTT_ROLE_SERVER, MQTT_V5, 0 },
	{ MQTT_ROLE_CLIENT, MQTT_V311, 0 },
	{ MQTT_ROLE_CLIENT, MQTT_V5, 0 },
	{ MQTT_ROLE_SERVER, 0, 64 },
	{ MQTT_ROLE_SERVER, MQTT_V5, 64 },
	{ MQTT_ROLE_CLIENT, MQTT_V5, 64 },
};

static uint8_t scratch[16384];
static unsigned long packets_ok; /* reported by the replay program */
static uint8_t scratch2[16384];
static uint8_t enc1[70000], enc2[70000], flat[70000];

/* Encode what was decoded, decode that, encode again: both encodings must be identical. */
static void
check_reencode(const struct mode *m, uint8_t version, struct mqtt_packet *pkt,
    const struct mqtt_iov *iov, size_t niov)
{
	struct mqtt_decoder d2;
	struct mqtt_packet again;
	int n1, n2, rc;

	if (pkt->type == MQTT_PUBLISH && pkt->publish.payload == NULL) {
		struct mqtt_iov sl[MAX_SEGS];
		size_t ns = mqtt_span_slices(iov, niov, &pkt->publish.payload_at, sl, MAX_SEGS);
		size_t off = 0;

		if (ns > MAX_SEGS || pkt->publish.payload_len > sizeof(flat))
			return;
		for (size_t i = 0; i < ns; i++) {
			memcpy(flat + off, sl[i].base, sl[i].len);
			off += sl[i].len;
		}
		if (off != pkt->publish.payload_len)
			abort();
		pkt->publish.payload = flat;
	}
	n1 = mqtt_encode(enc1, sizeof(enc1), version, pkt);
	if (n1 <= 0 || (size_t)n1 > sizeof(enc1)) {
		fprintf(stderr, "re-encode of %s failed: %d (%s)\n", mqtt_type_name(pkt->type), n1,
		    mqtt_err_str(n1));
		abort();
	}
	mqtt_decoder_init(
	    &d2, m->role, pkt->type == MQTT_CONNECT ? 0 : version, 0, scratch2, sizeof(scratch2));
	rc = mqtt_decode_buf(&d2, enc1, (size_t)n1, &again);
	if (rc != n1) {
		fprintf(stderr, "decode of re-encoded %s: %d (%s)\n", mqtt_type_name(pkt->type), rc,
		    mqtt_err_str(rc));
		abort();
	}
	n2 = mqtt_encode(enc2, sizeof(enc2), version, &again);
	if (n2 != n1 || memcmp(enc1, enc2, (size_t)n1) != 0)
		abort();
}

/* The payload UTF-8 check must not depend on where segments are cut. */
static void
check_payload_utf8(const struct mqtt_packet *pkt, const struct mqtt_iov *iov, size_t niov)
{
	const struct mqtt_publish *p = &pkt->publish;
	struct mqtt_iov sl[MAX_SEGS], whole;
	struct mqtt_span all;
	size_t ns, off = 0;

	if (pkt->type != MQTT_PUBLISH || p->payload_len > sizeof(flat))
		return;
	ns = mqtt_span_slices(iov, niov, &p->payload_at, sl, MAX_SEGS);
	if (ns > MAX_SEGS)
		return;
	for (size_t i = 0; i < ns; i++) {
		memcpy(flat + off, sl[i].base, sl[i].len);
		off += sl[i].len;
	}
	whole = (struct mqtt_iov){ flat, off };
	all = (struct mqtt_span){ 0, 0, (uint32_t)off };
	if (mqtt_payload_utf8_check(iov, niov, &p->payload_at) !=
	    mqtt_payload_utf8_check(&whole, 1, &all))
		abort();
}

static void
check_topic(const struct mqtt_packet *pkt)
{
	const struct mqtt_str *t = &pkt->publish.topic;

	if (pkt->type != MQTT_PUBLISH || t->len == 0)
		return;
	if (mqtt_topic_name_valid(t->s, t->len) != 0 ||
	    !mqtt_topic_match(t->s, t->len, t->s, t->len))
		abort();
}

/* Cut data into segments of seg bytes (0: one segment). */
static size_t
make_iov(const uint8_t *data, size_t size, size_t seg, struct mqtt_iov *iov)
{
	size_t n = 0;

	if (seg == 0) {
		iov[0] = (struct mqtt_iov){ data, size };
		return 1;
	}
	for (size_t off = 0; off < size && n < MAX_SEGS; off += seg)
		iov[n++] = (struct mqtt_iov){ data + off, size - off < seg ? size - off : seg };
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mqtt_iov iov[MAX_SEGS];
	const struct mode *m;
	struct mqtt_decoder d;
	size_t seg;

	if (size < 1)
		return 0;
	m = &modes[data[0] & 7];
	seg = data[0] >> 4;
	data++;
	size--;
	mqtt_decoder_init(&d, m->role, m->version, m->max_packet_size, scratch, sizeof(scratch));
	while (size > 0) {
		struct mqtt_packet pkt;
		size_t niov = make_iov(data, size, seg, iov);
		int rc = mqtt_decode(&d, iov, niov, &pkt);

		if (rc <= 0)
			break;
		if ((size_t)rc > size || pkt.len != (uint32_t)rc)
			abort();
		check_topic(&pkt);
		check_payload_utf8(&pkt, iov, niov);
		check_reencode(m, d.version, &pkt, iov, niov);
		packets_ok++;
		data += rc;
		size -= (size_t)rc;
	}
	return 0;
}

/* The replay program (tests/fuzz/fuzz_replay.c) prints this after the corpus. */
void fuzz_replay_report(void);
void
fuzz_replay_report(void)
{
	printf("%lu packets decoded\n", packets_ok);
}
