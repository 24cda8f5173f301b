/*
 * report.h: report by exception. A point is published when its value moves beyond its deadband,
 * when its quality changes, and at least every heartbeat; each message carries the value, unit,
 * quality and the wall-clock time of the read it comes from.
 */
#ifndef EDGEGW_MB_REPORT_H
#define EDGEGW_MB_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"

/* good: read now; stale: the device answers but this point could not be read (exception);
 * comm-failure: the device did not answer (timeouts, CRC errors, garbage); unsupported: the
 * device refuses the point's function (exception 1), so it is not read (re-tried rarely). */
enum mb_quality {
	MB_Q_GOOD = 0,
	MB_Q_STALE,
	MB_Q_COMM_FAILURE,
	MB_Q_UNSUPPORTED
};

extern const char *const mb_quality_names[];

struct mb_point_state {
	struct mb_value cur; /* last value read */
	bool have_value;
	enum mb_quality quality;
	uint64_t read_wall_ms; /* wall clock of the last good read (0: never) */
	bool have_quality;     /* quality set at least once (point polled) */
	/* what was published last */
	struct mb_value pub;
	bool published;
	enum mb_quality pub_quality;
	uint64_t pub_mono_ms;
};

void mb_report_value(struct mb_point_state *st, const struct mb_value *v, uint64_t wall_ms);
void mb_report_fail(struct mb_point_state *st, enum mb_quality q);
bool mb_report_due(const struct mb_point *p, const struct mb_point_state *st, uint64_t mono_ms);
void mb_report_mark(struct mb_point_state *st, uint64_t mono_ms);

/* JSON message: {"device","point","value","unit","quality","ts","ts_ms"}; length or -ENOSPC. */
int mb_report_format(const struct mb_point *p, const struct mb_point_state *st, const char *device,
    char *buf, size_t len);


/* Topic template variables; unknown {names} are an error (-EINVAL), as is overflow (-ENOSPC). */
/* A point's topic, expanded: what the bus publishes under (and the config checks fit). */
#define MB_TOPIC_OUT_MAX (MB_TOPIC_MAX + 128)

struct mb_topic_vars {
	const char *prefix, *bus, *device, *point, *profile;
	unsigned unit_id;
};
int mb_topic_expand(const char *tmpl, const struct mb_topic_vars *v, char *out, size_t outlen);
#endif
