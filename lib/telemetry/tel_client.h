/*
 * tel_client.h: a client of DPDK's telemetry socket (/var/run/dpdk/<file-prefix>/
 * dpdk_telemetry.v2), as the agent's /metrics and edgegwctl read the dataplane. The socket is
 * SOCK_SEQPACKET: the server greets with {"version", "pid", "max_output_len"}, then answers
 * each command with {"<command>": value}. Every call is bounded by the timeout given at open.
 */
#ifndef EDGEGW_TEL_CLIENT_H
#define EDGEGW_TEL_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

struct tel_conn {
	int fd;
	pid_t pid;             /* the dataplane's, from the greeting */
	size_t max_output_len; /* the longest reply the server sends */
};

/* The socket of a dataplane started with --file-prefix PREFIX. */
void tel_socket_path(const char *file_prefix, char *out, size_t outlen);
/* 0, or -errno with the reason in err (-ENOENT / -ECONNREFUSED: no dataplane there). */
int tel_open(struct tel_conn *c, const char *sock_path, int timeout_ms, char *err, size_t errlen);
/* The value under the command's key (a new reference), or NULL with the reason in err. */
json_t *tel_query(struct tel_conn *c, const char *cmd, char *err, size_t errlen);
void tel_close(struct tel_conn *c);

#endif
