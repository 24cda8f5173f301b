/*
 * main_fixture.h: what the tests that run a whole program in a thread share
 * (dataplane/test_dp_main.c, agent/test_agent_main.c): the monotonic clock and a short pause
 * for their deadline-bound waits, a file read whole, whether a file (the program's log) holds
 * a string yet, a file written.
 */
#ifndef EDGEGW_TEST_MAIN_FIXTURE_H
#define EDGEGW_TEST_MAIN_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t now_ms(void);
/* Sleep ms milliseconds: between two checks of a wait, never as the signal itself. */
void pause_ms(unsigned ms);
/* The file's content, NUL-terminated, to free(); NULL when it cannot be read. */
char *slurp(const char *path);
/* Does the file at path hold needle (now)? */
bool file_has(const char *path, const char *needle);
/* Write text to path (truncating); asserts it worked. */
void write_file(const char *path, const char *text);

#endif
