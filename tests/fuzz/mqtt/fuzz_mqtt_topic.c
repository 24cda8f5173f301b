/*
 * fuzz_mqtt_topic.c: libFuzzer harness for the topic rules and the subscription trie (lib/mqtt).
 *
 * Input: a list of operations, each [op][len][len bytes]. op % 3: 0 subscribe, 1 unsubscribe,
 * 2 match; (op >> 2) % 8 picks one of 8 subscribers. A plain list of (filter, subscriber) is kept
 * beside the trie as the reference: every insert and remove must agree with it on the result, and
 * every match must find, per subscriber, as many subscriptions as mqtt_topic_match() finds over
 * the list. When the list empties, the trie must have no node left.
 *
 * Linked with tests/fuzz/fuzz_replay.c it replays files or directories given on the command line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"
#include "mqtt_topic_tree.h"

#define MAX_REF    256
#define NSUB       8
#define MAX_LEVELS 8

struct ref {
	char filter[256];
	size_t len;
	int sub;
};

static struct ref refs[MAX_REF];
static size_t nrefs;
static char subscribers[NSUB];
static unsigned long ops_done;

static int
ref_find(const char *f, size_t len, int sub)
{
	for (size_t i = 0; i < nrefs; i++)
		if (refs[i].sub == sub && refs[i].len == len && memcmp(refs[i].filter, f, len) == 0)
			return (int)i;
	return -1;
}

static unsigned
levels(const char *f, size_t len)
{
	struct mqtt_str g, inner = { f, (uint16_t)len };
	unsigned n = 1;

	mqtt_topic_share_parse(f, len, &g, &inner);
	for (size_t i = 0; i < inner.len; i++)
		n += inner.s[i] == '/';
	return n;
}

static void
op_subscribe(struct mqtt_topic_tree *t, const char *f, size_t len, int sub)
{
	struct mqtt_sub_opts o = { .qos = (uint8_t)(sub % 3) };
	int had = ref_find(f, len, sub);
	int rc = mqtt_topic_tree_insert(t, f, len, &subscribers[sub], &o);

	if (mqtt_topic_filter_valid(f, len) != 0) {
		if (rc != -EINVAL)
			abort();
		return;
	}
	if (levels(f, len) > MAX_LEVELS) {
		if (rc != -E2BIG)
			abort();
		return;
	}
	if (rc != (had >= 0 ? 1 : 0))
		abort();
	if (had < 0 && nrefs < MAX_REF) {
		memcpy(refs[nrefs].filter, f, len);
		refs[nrefs].len = len;
		refs[nrefs++].sub = sub;
	} else if (had < 0) {
		mqtt_topic_tree_remove(t, f, len, &subscribers[sub]); /* keep the two in step */
	}
}

static void
op_unsubscribe(struct mqtt_topic_tree *t, const char *f, size_t len, int sub)
{
	int had = ref_find(f, len, sub);
	int rc = mqtt_topic_tree_remove(t, f, len, &subscribers[sub]);

	if (mqtt_topic_filter_valid(f, len) != 0) {
		if (rc != -EINVAL)
			abort();
		return;
	}
	if (rc != (had >= 0 ? 0 : -ENOENT))
		abort();
	if (had >= 0)
		refs[had] = refs[--nrefs];
}

static int
count_cb(void *sub, const struct mqtt_sub_opts *opts, const struct mqtt_str *group, void *arg)
{
	unsigned *per_sub = arg;

	(void)opts;
	(void)group;
	per_sub[(char *)sub - subscribers]++;
	return 0;
}

static void
op_match(struct mqtt_topic_tree *t, const char *name, size_t len)
{
	unsigned got[NSUB] = { 0 }, want[NSUB] = { 0 };

	if (mqtt_topic_name_valid(name, len) != 0)
		return;
	for (size_t i = 0; i < nrefs; i++) {
		struct mqtt_str g, inner = { refs[i].filter, (uint16_t)refs[i].len };

		mqtt_topic_share_parse(refs[i].filter, refs[i].len, &g, &inner);
		want[refs[i].sub] += mqtt_topic_match(inner.s, inner.len, name, len);
	}
	mqtt_topic_tree_match(t, name, len, count_cb, got);
	if (memcmp(got, want, sizeof(got)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqtt_topic_tree *t = mqtt_topic_tree_create(MAX_LEVELS, NULL);

	if (t == NULL)
		abort();
	nrefs = 0;
	while (size >= 2) {
		uint8_t op = data[0];
		size_t len = data[1] < size - 2 ? data[1] : size - 2;
		const char *s = (const char *)data + 2;

		if (op % 3 == 0)
			op_subscribe(t, s, len, (op >> 2) % NSUB);
		else if (op % 3 == 1)
			op_unsubscribe(t, s, len, (op >> 2) % NSUB);
		else
			op_match(t, s, len);
		ops_done++;
		data += 2 + len;
		size -= 2 + len;
	}
	if (mqtt_topic_tree_subscriptions(t) != nrefs ||
	    (nrefs == 0 && mqtt_topic_tree_nodes(t) != 0))
		abort();
	mqtt_topic_tree_destroy(t);
	return 0;
}

/* The replay program (tests/fuzz/fuzz_replay.c) prints this after the corpus. */
void fuzz_replay_report(void);
void
fuzz_replay_report(void)
{
	printf("%lu operations\n", ops_done);
}
