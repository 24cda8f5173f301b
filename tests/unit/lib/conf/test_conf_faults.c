/*
 * test_conf_faults.c: lib/conf out of memory (fail_alloc.h) and its error list at its edges.
 * A document that cannot be allocated is refused with a reason; one whose file name cannot be
 * copied still names its errors' places; an error recorded while the list cannot grow is still
 * there to print; the list cut to a short buffer ends at a whole line and says more were cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "fail_alloc.h"

static const char text[] = "a: 1\nb:\n  c: x\n";

static void
test_load_out_of_memory(void **state)
{
	struct conf_doc *doc = NULL;
	char err[128] = "";
	char where[64];

	(void)state;
	fail_alloc_nth(1); /* the document */
	assert_int_equal(
	    conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), -1);
	fail_alloc_nth(0);
	assert_null(doc);
	assert_string_equal(err, "t.yaml: out of memory");

	fail_alloc_nth(2); /* the copy of its name: loaded, its places named all the same */
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	fail_alloc_nth(0);
	assert_int_equal(fail_alloc_failed(), 1);
	conf_where(conf_get(conf_root(doc), "b"), where, sizeof(where));
	assert_string_equal(where, "(config):3:3");
	conf_free(doc);
}

/* An error recorded while the list cannot grow is counted and still printed. */
static void
test_error_list_out_of_memory(void **state)
{
	struct conf_doc *doc = NULL;
	char err[128], buf[256];

	(void)state;
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	fail_alloc_nth(1);
	assert_int_equal(conf_error(conf_get(conf_root(doc), "a"), "first %d", 1), -1);
	fail_alloc_nth(0);
	assert_int_equal(conf_error_count(doc), 1);
	assert_string_equal(conf_first_error(doc), "t.yaml:1:4: first 1");
	assert_non_null(conf_errors(doc));
	assert_non_null(strstr(conf_errors(doc), "first 1"));
	conf_format_errors(doc, buf, sizeof(buf));
	assert_string_equal(buf, "t.yaml:1:4: first 1");
	conf_free(doc);
}

/* Cut to the caller's buffer at a whole line, with a note; a buffer shorter than the first
 * line keeps what fits. Absent nodes have no line and are placed at 1:1. */
static void
test_format_short_buffer(void **state)
{
	struct conf_doc *doc = NULL;
	conf_node none = { 0 };
	char err[128], buf[64];

	(void)state;
	assert_int_equal(conf_load_string("t.yaml", text, strlen(text), &doc, err, sizeof(err)), 0);
	conf_error(conf_get(conf_root(doc), "a"), "the first error");
	conf_error(conf_get(conf_root(doc), "b"), "a second error, long enough to be cut off");
	assert_true(conf_format_errors(doc, buf, sizeof(buf)) >= (int)sizeof(buf));
	assert_string_equal(buf, "t.yaml:1:4: the first error\n(more errors not shown)");
	conf_format_errors(doc, buf, 10);
	assert_string_equal(buf, "t.yaml:1:");
	assert_int_equal(conf_line(none), 0);
	conf_where(none, buf, sizeof(buf));
	assert_string_equal(buf, "(config):1:1");
	conf_free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_out_of_memory),
		cmocka_unit_test(test_error_list_out_of_memory),
		cmocka_unit_test(test_format_short_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
