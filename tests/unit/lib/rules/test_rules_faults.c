/*
 * test_rules_faults.c: lib/rules out of memory (fail_alloc.h). Parsing a full `uplink:` section
 * (site, rules, downlink), and one without rules (the default rule), fails at each of its
 * allocations in turn: -1, no rule set, nothing leaked, and the reason recorded in the document
 * ("out of memory", at the node being parsed), so the operator's log says why; the parse that
 * then succeeds equals one done with memory to spare.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fail_alloc.h"
#include "rules.h"

static const char full[] =
    "uplink:\n  site: lab\n  rules:\n"
    "    - {match: \"plant/alarm/#\", topic: \"site/{site}/a/{topic}\", qos: 1, class: alarm}\n"
    "    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: normal}\n"
    "    - {match: \"bulk/#\", class: bulk, durable: false}\n"
    "  downlink:\n"
    "    - {match: \"site/{site}/cmd/#\", strip: \"site/{site}/\", max_qos: 1}\n"
    "    - {match: \"all/{site}/#\", topic: \"in/{topic}\"}\n";
static const char no_rules[] = "uplink:\n  site: lab\n"; /* the default rule */

static struct conf_doc *
load(const char *text)
{
	struct conf_doc *doc = NULL;
	char err[256];

	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	return doc;
}

/* Every allocation of parsing text fails in turn: each time -1, no rule set, one error that
 * says why and where; nothing leaked (ASan). With memory, the same rules as a parse that had
 * it all along. */
static void
parse_each_allocation_failing(const char *text, size_t n_rules, size_t n_down)
{
	struct conf_doc *ref_doc = load(text), *doc;
	struct rules *ref = NULL, *r = NULL;
	uint64_t n_allocs;

	fail_alloc_nth(UINT64_MAX); /* counts, fails none */
	assert_int_equal(rules_parse(conf_get(conf_root(ref_doc), "uplink"), &ref), 0);
	n_allocs = fail_alloc_seen();
	fail_alloc_nth(0);
	assert_int_equal(ref->n, n_rules);
	assert_int_equal(ref->n_down, n_down);
	assert_true(n_allocs >= 1 + 2 * n_rules + 2 * n_down);
	for (uint64_t k = 1; k <= n_allocs; k++) {
		doc = load(text);
		r = (struct rules *)1;
		fail_alloc_nth(k);
		assert_int_equal(rules_parse(conf_get(conf_root(doc), "uplink"), &r), -1);
		fail_alloc_nth(0);
		assert_int_equal(fail_alloc_failed(), 1);
		assert_null(r);
		assert_int_equal(conf_error_count(doc), 1);
		if (strstr(conf_errors(doc), "out of memory") == NULL ||
		    strstr(conf_errors(doc), "t.yaml:") == NULL)
			fail_msg("allocation %llu: %s", (unsigned long long)k, conf_errors(doc));
		conf_free(doc);
	}
	doc = load(text);
	assert_int_equal(rules_parse(conf_get(conf_root(doc), "uplink"), &r), 0);
	assert_true(rules_equal(r, ref));
	rules_free(r);
	conf_free(doc);
	rules_free(ref);
	conf_free(ref_doc);
}

static void
test_parse_out_of_memory(void **state)
{
	(void)state;
	parse_each_allocation_failing(full, 3, 2);
}

static void
test_default_out_of_memory(void **state)
{
	(void)state;
	parse_each_allocation_failing(no_rules, 1, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_out_of_memory),
		cmocka_unit_test(test_default_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
