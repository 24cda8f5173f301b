/*
 * test_mqtt_topic_tree.c: the subscription trie against a wildcard matching table, against
 * mqtt_topic_match() as an oracle over every (filter, topic) pair, and for subscribe/unsubscribe
 * bookkeeping, shared groups, limits and allocation failures.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_topic.h"
#include "mqtt_topic_tree.h"

static const char *const filters[] = {
	"#",
	"+",
	"+/+",
	"+/#",
	"/+",
	"a",
	"a/",
	"a/#",
	"a/+",
	"a/b",
	"a/b/c",
	"a/+/c",
	"a/+/#",
	"+/b/#",
	"a//b",
	"$SYS/#",
	"$SYS/+/load",
	"$SYS",
	"+/$x",
	"$share/g/a/+",
	"$share/h/#",
	"b/#",
	"b/+/+/+",
	"sport/tennis/player1/#",
	"sport/+/player1",
	"x/y/z/#",
};
#define NF (sizeof(filters) / sizeof(filters[0]))

static const char *const topics[] = {
	"a",
	"a/",
	"a/b",
	"a/c",
	"a/b/c",
	"a/x/c",
	"a/b/c/d",
	"a//b",
	"/",
	"/a",
	"b",
	"b/1/2/3",
	"b/1/2",
	"$SYS",
	"$SYS/broker/load",
	"$SYS/x",
	"c/$x",
	"$x",
	"sport/tennis/player1",
	"sport/tennis/player1/ranking",
	"sport/tennis/player2",
	"x/y/z",
	"x/y",
	"A",
	"a/b/",
};
#define NT (sizeof(topics) / sizeof(topics[0]))

/* Subscribers are the addresses of these, one per filter. */
static char subscriber[NF];

static int
collect(void *sub, const struct mqtt_sub_opts *opts, const struct mqtt_str *group, void *arg)
{
	uint64_t *set = arg;
	size_t i = (size_t)((char *)sub - subscriber);

	assert_true(i < NF);
	assert_int_equal(opts->sub_id, i + 1);
	/* Share groups come back only for $share filters, with the right name. */
	if (strncmp(filters[i], "$share/", 7) == 0) {
		assert_non_null(group);
		assert_int_equal(group->len, 1);
		assert_int_equal(group->s[0], filters[i][7]);
	} else {
		assert_null(group);
	}
	*set |= 1ull << i;
	return 0;
}

static struct mqtt_topic_tree *
full_tree(void)
{
	struct mqtt_topic_tree *t = mqtt_topic_tree_create(16, NULL);

	assert_non_null(t);
	for (size_t i = 0; i < NF; i++) {
		struct mqtt_sub_opts o = { .qos = (uint8_t)(i % 3), .sub_id = (uint32_t)i + 1 };

		assert_int_equal(
		    mqtt_topic_tree_insert(t, filters[i], strlen(filters[i]), &subscriber[i], &o),
		    0);
	}
	assert_int_equal(mqtt_topic_tree_subscriptions(t), NF);
	return t;
}

static uint64_t
oracle(const char *topic)
{
	uint64_t set = 0;

	for (size_t i = 0; i < NF; i++) {
		struct mqtt_str g, f = { filters[i], (uint16_t)strlen(filters[i]) };

		mqtt_topic_share_parse(filters[i], strlen(filters[i]), &g, &f);
		if (mqtt_topic_match(f.s, f.len, topic, strlen(topic)))
			set |= 1ull << i;
	}
	return set;
}

/* Every topic against every filter, the trie must agree with the one-pair matcher. */
static void
test_tree_matches_oracle(void **state)
{
	struct mqtt_topic_tree *t = full_tree();

	(void)state;
	for (size_t j = 0; j < NT; j++) {
		uint64_t got = 0, want = oracle(topics[j]);
		size_t n = mqtt_topic_tree_match(t, topics[j], strlen(topics[j]), collect, &got);

		if (got != want)
			fail_msg("topic '%s': tree %#llx, oracle %#llx", topics[j],
			    (unsigned long long)got, (unsigned long long)want);
		assert_int_equal(n, (size_t)__builtin_popcountll(want));
	}
	mqtt_topic_tree_destroy(t);
}

struct table_row {
	const char *topic;
	const char *matches; /* the filters expected, space separated, in any order */
};

/* The wildcard matching table, written out so a reader sees the rules. */
static const struct table_row table[] = {
	{ "a", "# + a a/# +/#" }, { "a/b", "# +/+ +/# a/# a/+ a/b a/+/# +/b/#" },
	{ "a/b/c", "# +/# a/# a/b/c a/+/c a/+/# +/b/#" }, { "$SYS", "$SYS $SYS/#" },
	{ "$SYS/broker/load", "$SYS/# $SYS/+/load" }, { "c/$x", "# +/+ +/# +/$x" },
	{ "sport/tennis/player1", "# +/# sport/tennis/player1/# sport/+/player1" },
	{ "x/y", "# +/+ +/#" }, { "/", "# +/+ +/# /+" },
	{ "A", "# + +/#" }, /* "+/#": "#" matches the parent level */
};

static void
test_tree_table(void **state)
{
	struct mqtt_topic_tree *t = full_tree();

	(void)state;
	for (size_t r = 0; r < sizeof(table) / sizeof(table[0]); r++) {
		uint64_t got = 0, want = 0;
		char buf[256];

		strcpy(buf, table[r].matches);
		for (char *f = strtok(buf, " "); f; f = strtok(NULL, " ")) {
			size_t i = 0;

			while (i < NF && strcmp(filters[i], f) != 0)
				i++;
			assert_true(i < NF);
			want |= 1ull << i;
		}
		/* Shared subscriptions match like their inner filter. */
		want |= oracle(table[r].topic) & ((1ull << 19) | (1ull << 20));
		mqtt_topic_tree_match(t, table[r].topic, strlen(table[r].topic), collect, &got);
		if (got != want)
			fail_msg("row '%s': got %#llx want %#llx", table[r].topic,
			    (unsigned long long)got, (unsigned long long)want);
	}
	mqtt_topic_tree_destroy(t);
}

static void
test_tree_bookkeeping(void **state)
{
	struct mqtt_topic_tree *t = full_tree();
	struct mqtt_sub_opts o = { .qos = 2, .sub_id = 8 };
	uint64_t got = 0;

	(void)state;
	/* Same subscriber, same filter: options replaced, no second subscription. */
	assert_int_equal(mqtt_topic_tree_insert(t, "a/+", 3, &subscriber[8], &o), 1);
	assert_int_equal(mqtt_topic_tree_subscriptions(t), NF);
	/* Same filter unshared and shared by one subscriber: two subscriptions. */
	o.sub_id = 20;
	assert_int_equal(mqtt_topic_tree_insert(t, "$share/g/a/+", 12, &subscriber[19], &o), 1);
	assert_int_equal(mqtt_topic_tree_insert(t, "$share/k/a/+", 12, &subscriber[7], &o), 0);
	assert_int_equal(mqtt_topic_tree_remove(t, "$share/k/a/+", 12, &subscriber[7]), 0);
	assert_int_equal(mqtt_topic_tree_remove(t, "$share/k/a/+", 12, &subscriber[7]), -ENOENT);
	assert_int_equal(mqtt_topic_tree_remove(t, "a/+", 3, &subscriber[0]), -ENOENT);
	assert_int_equal(mqtt_topic_tree_remove(t, "q/r", 3, &subscriber[0]), -ENOENT);
	assert_int_equal(mqtt_topic_tree_remove(t, "a/#/b", 5, &subscriber[0]), -EINVAL);
	/* Removing a filter stops its matches. */
	assert_int_equal(mqtt_topic_tree_remove(t, "#", 1, &subscriber[0]), 0);
	mqtt_topic_tree_match(t, "a", 1, collect, &got);
	assert_false(got & 1);
	/* Remove all: every node is gone again. */
	for (size_t i = 1; i < NF; i++)
		assert_int_equal(
		    mqtt_topic_tree_remove(t, filters[i], strlen(filters[i]), &subscriber[i]), 0);
	assert_int_equal(mqtt_topic_tree_subscriptions(t), 0);
	assert_int_equal(mqtt_topic_tree_nodes(t), 0);
	assert_int_equal(mqtt_topic_tree_match(t, "a", 1, collect, &got), 0);
	mqtt_topic_tree_destroy(t);
}

static int
stop_at_first(void *sub, const struct mqtt_sub_opts *opts, const struct mqtt_str *group, void *arg)
{
	(void)sub;
	(void)opts;
	(void)group;
	++*(int *)arg;
	return 1;
}

static void
test_tree_limits(void **state)
{
	struct mqtt_topic_tree *t = mqtt_topic_tree_create(3, NULL);
	struct mqtt_sub_opts o = { 0 };
	int calls = 0;

	(void)state;
	assert_int_equal(mqtt_topic_tree_insert(t, "a/b/c", 5, &subscriber[0], &o), 0);
	assert_int_equal(mqtt_topic_tree_insert(t, "a/b/c/d", 7, &subscriber[0], &o), -E2BIG);
	assert_int_equal(mqtt_topic_tree_insert(t, "a/b#", 4, &subscriber[0], &o), -EINVAL);
	assert_int_equal(mqtt_topic_tree_insert(t, "$share//a", 9, &subscriber[0], &o), -EINVAL);
	assert_int_equal(mqtt_topic_tree_insert(t, "", 0, &subscriber[0], &o), -EINVAL);
	assert_int_equal(mqtt_topic_tree_insert(t, "a/#", 3, &subscriber[1], &o), 0);
	/* A deeper name than any filter is fine: the walk is bounded by the tree. */
	assert_int_equal(mqtt_topic_tree_match(t, "a/b/c/d/e/f", 11, NULL, NULL), 1);
	assert_int_equal(mqtt_topic_tree_match(t, "a/b/c", 5, NULL, NULL), 2);
	assert_int_equal(mqtt_topic_tree_match(t, "a/b/c", 5, stop_at_first, &calls), 1);
	assert_int_equal(calls, 1);
	mqtt_topic_tree_destroy(t);
}

/* An allocator that fails after a budget of allocations. */
static int alloc_budget;

static void *
fail_calloc(size_t n, size_t size)
{
	return alloc_budget-- > 0 ? calloc(n, size) : NULL;
}

static void *
fail_realloc(void *p, size_t size)
{
	return alloc_budget-- > 0 ? realloc(p, size) : NULL;
}

static void
test_tree_out_of_memory(void **state)
{
	static const struct mqtt_topic_tree_alloc mem = { fail_calloc, fail_realloc, free };
	struct mqtt_sub_opts o = { 0 };
	int failed = 0, worked = 0;

	(void)state;
	/* Whatever allocation fails, insert reports -ENOMEM and leaves no node behind (ASan checks
	 * for leaks); with enough budget it succeeds. */
	for (int budget = 2; budget < 40; budget++) {
		struct mqtt_topic_tree *t;
		int rc;

		alloc_budget = 2;
		t = mqtt_topic_tree_create(8, &mem);
		assert_non_null(t);
		alloc_budget = budget - 2;
		rc = mqtt_topic_tree_insert(t, "$share/g/a/b/c/d", 16, &subscriber[0], &o);
		if (rc == -ENOMEM) {
			failed++;
			assert_int_equal(mqtt_topic_tree_nodes(t), 0);
			assert_int_equal(mqtt_topic_tree_subscriptions(t), 0);
		} else {
			worked++;
			assert_int_equal(rc, 0);
			assert_int_equal(mqtt_topic_tree_nodes(t), 4);
		}
		alloc_budget = 1000;
		mqtt_topic_tree_destroy(t);
	}
	assert_true(failed >= 5 && worked > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree_matches_oracle),
		cmocka_unit_test(test_tree_table),
		cmocka_unit_test(test_tree_bookkeeping),
		cmocka_unit_test(test_tree_limits),
		cmocka_unit_test(test_tree_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
