/* test_report.c: report by exception and topic templates (agent/modbus/report.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "report.h"

static struct mb_value
num(double v)
{
	struct mb_value x = { .kind = MB_V_NUM, .num = v };

	return x;
}

static void
test_deadband_heartbeat_quality(void **state)
{
	struct mb_point p = {
		.type = MB_T_F32, .count = 2, .scale = 1, .deadband = 0.5, .heartbeat_ms = 1000
	};
	struct mb_point_state st;
	struct mb_value v;

	(void)state;
	memset(&st, 0, sizeof(st));
	assert_false(mb_report_due(&p, &st, 0)); /* never polled */
	v = num(10.0);
	mb_report_value(&st, &v, 1000);
	assert_true(mb_report_due(&p, &st, 0)); /* first value */
	mb_report_mark(&st, 0);
	v = num(10.4);
	mb_report_value(&st, &v, 1100);
	assert_false(mb_report_due(&p, &st, 100)); /* within deadband */
	v = num(10.6);
	mb_report_value(&st, &v, 1200);
	assert_true(mb_report_due(&p, &st, 200)); /* beyond it (from the published 10.0) */
	mb_report_mark(&st, 200);
	assert_false(mb_report_due(&p, &st, 1199));
	assert_true(mb_report_due(&p, &st, 1200)); /* heartbeat */
	mb_report_mark(&st, 1200);
	mb_report_fail(&st, MB_Q_COMM_FAILURE);
	assert_true(mb_report_due(&p, &st, 1300)); /* quality change */
	mb_report_mark(&st, 1300);
	assert_false(mb_report_due(&p, &st, 1400));
	v = num(10.6);
	mb_report_value(&st, &v, 1500);
	assert_true(mb_report_due(&p, &st, 1500)); /* good again, same value */
}

static void
test_format(void **state)
{
	struct mb_point p = { .name = "t", .unit = "C", .type = MB_T_I16, .count = 1, .scale = 1 };
	struct mb_point_state st;
	struct mb_value v = { .kind = MB_V_NUM, .num = -5, .exact = true, .ival = -5 };
	char buf[256];

	(void)state;
	memset(&st, 0, sizeof(st));
	mb_report_fail(&st, MB_Q_STALE);
	assert_true(mb_report_format(&p, &st, "d", buf, sizeof(buf)) > 0);
	assert_string_equal(buf,
	    "{\"device\":\"d\",\"point\":\"t\",\"value\":null,\"unit\":\"C\","
	    "\"quality\":\"stale\",\"ts\":null,\"ts_ms\":0}");
	mb_report_value(&st, &v, 1795577441065ull);
	assert_true(mb_report_format(&p, &st, "d", buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"value\":-5,"));
	assert_non_null(strstr(buf, "\"ts\":\"2026-11-25T03:30:41.065Z\""));
	assert_int_equal(mb_report_format(&p, &st, "d", buf, 20), -ENOSPC);
}

static void
test_topic_expand(void **state)
{
	struct mb_topic_vars v = { "site", "rtu1", "m1", "volts", "sdm", 7 };
	char out[64];

	(void)state;
	assert_int_equal(
	    mb_topic_expand("{prefix}/{bus}/{device}/{unit_id}/{point}", &v, out, sizeof(out)), 20);
	assert_string_equal(out, "site/rtu1/m1/7/volts");
	assert_int_equal(mb_topic_expand("{prefix}/{nope}", &v, out, sizeof(out)), -EINVAL);
	assert_int_equal(mb_topic_expand("{prefix", &v, out, sizeof(out)), -EINVAL);
	assert_int_equal(mb_topic_expand("{prefix}{prefix}{prefix}", &v, out, 8), -ENOSPC);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadband_heartbeat_quality),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_topic_expand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
