/*
 * Unit tests for the broker's subscription trie (dataplane/mqtt/topic_tree.c): a table of
 * filter / topic pairs checked against the trie and against mqtt_topic_match, plus removal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "broker_int.h"
#include "mqtt_topic.h"

static const struct {
	const char *filter, *topic;
	bool match;
} table[] = {
	{ "a/b", "a/b", true },       { "a/b", "a/c", false },     { "a/+", "a/b", true },
	{ "a/+", "a/b/c", false },    { "a/#", "a", true },        { "a/#", "a/b/c", true },
	{ "#", "a/b", true },         { "+/+", "a/b", true },      { "+", "a/b", false },
	{ "+/b", "/b", true },        { "a//c", "a//c", true },    { "a/+/c", "a//c", true },
	{ "#", "$SYS/x", false },     { "+/x", "$SYS/x", false },  { "$SYS/#", "$SYS/x", true },
	{ "$SYS/+", "$SYS/x", true }, { "a/b/#", "a/b", true },    { "a/+/#", "a/b", true },
	{ "a/", "a/", true },         { "a/", "a", false },        { "a/+", "a/", true },
	{ "sport/tennis/#", "sport/tennis/player1/ranking", true }, { "/+", "/finance", true },
	{ "+", "/finance", false },
};

static void count_visit(struct broker_sub *sub, void *arg)
{
	(void)sub;
	(*(int *)arg)++;
}

static void test_match_table(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
		struct tt_node *root = tt_create();
		struct broker_sub sub = { 0 };
		const char *f = table[k].filter, *t = table[k].topic;
		int hits = 0;

		print_message("%s ~ %s\n", f, t);
		assert_int_equal(tt_insert(root, &sub, (struct mqtt_str){ f, (uint16_t)strlen(f) },
					   (struct mqtt_str){ NULL, 0 }), 0);
		tt_match(root, t, strlen(t), count_visit, &hits);
		assert_int_equal(hits, table[k].match ? 1 : 0);
		assert_int_equal(mqtt_topic_match(f, strlen(f), t, strlen(t)), table[k].match);
		tt_remove(&sub);
		assert_null(root->child); /* pruned back to the root */
		tt_destroy(root);
	}
}

static void test_all_at_once(void **state)
{
	struct broker_sub subs[sizeof(table) / sizeof(table[0])];
	struct tt_node *root = tt_create();

	(void)state;
	memset(subs, 0, sizeof(subs));
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++)
		tt_insert(root, &subs[k], (struct mqtt_str){ table[k].filter,
			  (uint16_t)strlen(table[k].filter) }, (struct mqtt_str){ NULL, 0 });
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++) {
		const char *t = table[k].topic;
		int want = 0, hits = 0;

		for (size_t j = 0; j < sizeof(table) / sizeof(table[0]); j++)
			want += mqtt_topic_match(table[j].filter, strlen(table[j].filter), t, strlen(t));
		tt_match(root, t, strlen(t), count_visit, &hits);
		assert_int_equal(hits, want);
	}
	for (size_t k = 0; k < sizeof(table) / sizeof(table[0]); k++)
		tt_remove(&subs[k]);
	assert_null(root->child);
	tt_destroy(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_all_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
