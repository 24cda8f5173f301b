/*
 * scheduler.c: deadline order and backoff for one bus. Healthy devices keep their phase
 * (next = deadline + interval) so a little lateness does not drift; a device that fell a whole
 * interval behind restarts its phase from now rather than bursting to catch up.
 */
#include <errno.h>
#include <stdlib.h>

#include "scheduler.h"

int
mb_sched_init(struct mb_sched *s, size_t n, const uint64_t *interval_ms, uint64_t max_backoff_ms,
    uint64_t now_ms)
{
	s->devs = calloc(n ? n : 1, sizeof(*s->devs));
	if (s->devs == NULL)
		return -ENOMEM;
	s->n = n;
	s->max_backoff_ms = max_backoff_ms;
	for (size_t i = 0; i < n; i++) {
		s->devs[i].interval_ms = interval_ms[i] ? interval_ms[i] : 1;
		s->devs[i].next_due_ms = now_ms;
	}
	return 0;
}

void
mb_sched_free(struct mb_sched *s)
{
	free(s->devs);
	s->devs = NULL;
	s->n = 0;
}

int
mb_sched_next(const struct mb_sched *s, uint64_t now_ms, uint64_t *wait_ms)
{
	int best = -1;

	for (size_t i = 0; i < s->n; i++)
		if (best < 0 || s->devs[i].next_due_ms < s->devs[best].next_due_ms)
			best = (int)i;
	if (best < 0) {
		*wait_ms = 1000;
		return -1;
	}
	if (s->devs[best].next_due_ms > now_ms) {
		*wait_ms = s->devs[best].next_due_ms - now_ms;
		return -1;
	}
	*wait_ms = 0;
	return best;
}

bool
mb_sched_dead(const struct mb_sched *s, size_t dev)
{
	return s->devs[dev].fail_streak > 0;
}

uint64_t
mb_sched_done(struct mb_sched *s, size_t dev, bool ok, uint64_t started_ms, uint64_t now_ms)
{
	struct mb_sched_dev *d = &s->devs[dev];
	uint64_t late = started_ms > d->next_due_ms ? started_ms - d->next_due_ms : 0;

	if (ok) {
		bool recovered = d->fail_streak > 0;

		d->fail_streak = 0;
		d->backoff_ms = 0;
		d->next_due_ms += d->interval_ms;
		if (recovered || d->next_due_ms <= now_ms)
			d->next_due_ms = now_ms + d->interval_ms;
		return late;
	}
	d->fail_streak++;
	d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : d->interval_ms;
	if (d->backoff_ms > s->max_backoff_ms)
		d->backoff_ms =
		    s->max_backoff_ms > d->interval_ms ? s->max_backoff_ms : d->interval_ms;
	d->next_due_ms = now_ms + d->backoff_ms;
	return late;
}
