/*
 * log_capture.h: what a test logs, captured: stderr goes to a file while the test runs, then
 * the test counts the lines it expects (a path that must log once, not per packet). Shared by
 * the unit tests that check their log lines.
 */
#ifndef EDGEGW_TEST_LOG_CAPTURE_H
#define EDGEGW_TEST_LOG_CAPTURE_H

/* stderr into a new file (the one before removed). */
void log_capture_begin(void);
/* stderr back; the captured lines are copied to it (they stay readable for log_capture_count). */
void log_capture_end(void);
/* Lines of the capture holding s and, unless NULL, t; ends the capture if it still runs. */
int log_capture_count(const char *s, const char *t);

#endif
