/*
 * tel_client.c: DPDK telemetry client (see tel_client.h). Blocking calls with SO_RCVTIMEO and
 * SO_SNDTIMEO, so a stuck dataplane costs the caller one timeout, never a hang: the agent calls
 * this from its HTTP thread, not from its event loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "tel_client.h"

#define TEL_RUN_DIR "/var/run/dpdk"

void
tel_socket_path(const char *file_prefix, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s/dpdk_telemetry.v2", TEL_RUN_DIR,
	    file_prefix && file_prefix[0] ? file_prefix : "rte");
}

static json_t *
recv_json(struct tel_conn *c, size_t maxlen, char *err, size_t errlen)
{
	char *buf = malloc(maxlen + 1);
	json_error_t je;
	json_t *j;
	ssize_t n;

	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = recv(c->fd, buf, maxlen, 0);
	if (n <= 0) {
		snprintf(err, errlen, "%s",
		    n == 0 ? "connection closed"
			   : (errno == EAGAIN ? "no answer in time" : strerror(errno)));
		free(buf);
		return NULL;
	}
	j = json_loadb(buf, (size_t)n, 0, &je);
	free(buf);
	if (j == NULL)
		snprintf(err, errlen, "bad JSON: %s", je.text);
	return j;
}

int
tel_open(struct tel_conn *c, const char *sock_path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	json_t *hello;
	int rc;

	c->fd = -1;
	c->pid = 0;
	c->max_output_len = 16384;
	if (strlen(sock_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: path too long", sock_path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", sock_path, strerror(-rc));
		tel_close(c);
		return rc;
	}
	hello = recv_json(c, 16384, err, errlen);
	if (hello == NULL) {
		tel_close(c);
		return -EPROTO;
	}
	c->pid = (pid_t)json_integer_value(json_object_get(hello, "pid"));
	if (json_integer_value(json_object_get(hello, "max_output_len")) > 0)
		c->max_output_len =
		    (size_t)json_integer_value(json_object_get(hello, "max_output_len"));
	json_decref(hello);
	return 0;
}

json_t *
tel_query(struct tel_conn *c, const char *cmd, char *err, size_t errlen)
{
	char key[128];
	json_t *reply, *v;
	size_t klen = strcspn(cmd, ",");

	if (c->fd < 0 || klen >= sizeof(key)) {
		snprintf(err, errlen, "%s: not connected", cmd);
		return NULL;
	}
	/* A query that failed on the way (no answer in time, closed, bad JSON) leaves the
	 * connection out of step: a late answer would be read as the next query's. Closed, the
	 * next queries fail at once ("not connected") instead of each waiting its timeout and
	 * reading the answer before its own. */
	if (send(c->fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0) {
		snprintf(err, errlen, "%s: %s", cmd, strerror(errno));
		tel_close(c);
		return NULL;
	}
	reply = recv_json(c, c->max_output_len + 1, err, errlen);
	if (reply == NULL) {
		tel_close(c);
		return NULL;
	}
	memcpy(key, cmd, klen);
	key[klen] = '\0';
	v = json_object_get(reply, key);
	if (v == NULL || json_is_null(v))
		snprintf(err, errlen, "%s: no such command on this dataplane", key);
	else
		json_incref(v);
	json_decref(reply);
	return json_is_null(v) ? NULL : v;
}

void
tel_close(struct tel_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
