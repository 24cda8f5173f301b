/*
 * jsonl_sink.c: the JSON-lines uplink. Each message becomes one line
 *   {"topic":"...","qos":1,"retain":false,"payload":<payload>}
 * where payload is inlined when it is JSON (the agent's own messages are) and quoted otherwise;
 * a payload that is not valid UTF-8 cannot be a JSON string, so it goes in base64 with
 * "payload_encoding":"base64" after it (lossless: a reader gets the bytes back).
 * Commands are read line by line from an optional FIFO or file (cmd_path): each line is a
 * command payload, delivered as if it arrived on cmd_topic. For tests and debugging; the file
 * write is small and buffered, flushed per line so a reader sees whole lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <jansson.h>

#include "loop.h"
#include "mqtt_codec.h"
#include "uplink.h"
#include "log.h"

struct jsonl_sink {
	struct uplink up;
	struct agent_loop *loop;
	FILE *out;
	bool own_out;
	int cmd_fd;
	char cmd_topic[256];
	char line[4096];
	size_t line_len;
	bool skip_line; /* the line was too long: the rest of it is dropped too */
	struct uplink_stats st;
};

/* A payload goes in as it is only when it is a JSON object on one line: braces alone (a
 * command echoed back, "{oops}") would make the line unparsable for every reader. */
static bool
payload_inlinable(const char *p, size_t len)
{
	json_t *j;
	bool ok;

	if (len == 0 || p[0] != '{' || p[len - 1] != '}' || memchr(p, '\n', len) != NULL)
		return false;
	j = json_loadb(p, len, 0, NULL);
	ok = j != NULL;
	json_decref(j);
	return ok;
}

/* Well-formed UTF-8 (RFC 3629; U+0000 allowed, escaped as \u0000): a JSON string can hold it. */
static bool
payload_utf8(const char *p, size_t len)
{
	struct mqtt_iov iov = { (const uint8_t *)p, len };
	struct mqtt_span span = { 0, 0, (uint32_t)len };

	return len <= UINT32_MAX && mqtt_payload_utf8_check(&iov, 1, &span) == 0;
}

static void
put_quoted(FILE *out, const char *p, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

/* RFC 4648 base64, with padding, quoted. */
static void
put_base64(FILE *out, const uint8_t *p, size_t len)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	fputc('"', out);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		fputc(abc[v >> 18], out);
		fputc(abc[(v >> 12) & 63], out);
		fputc(i + 1 < len ? abc[(v >> 6) & 63] : '=', out);
		fputc(i + 2 < len ? abc[v & 63] : '=', out);
	}
	fputc('"', out);
}

static int
jsonl_send(struct uplink *u, const char *topic, const void *payload, size_t len, uint8_t qos,
    bool retain, uint64_t ref)
{
	struct jsonl_sink *s = (struct jsonl_sink *)u;
	json_t *jt = json_string(topic);
	char t[512];
	size_t tn = jt != NULL ? json_dumpb(jt, t, sizeof(t) - 1, JSON_ENCODE_ANY) : 0;
	const char *p = payload;

	json_decref(jt);
	s->st.submitted++;
	if (tn == 0 || tn >= sizeof(t) - 1) {
		s->st.dropped++;
		return -EINVAL; /* never sendable */
	}
	t[tn] = '\0';
	fprintf(s->out, "{\"topic\":%s,\"qos\":%u,\"retain\":%s,\"payload\":", t, qos,
	    retain ? "true" : "false");
	if (payload_inlinable(p, len)) {
		fwrite(p, 1, len, s->out);
	} else if (payload_utf8(p, len)) {
		put_quoted(s->out, p, len);
	} else {
		put_base64(s->out, (const uint8_t *)p, len);
		fputs(",\"payload_encoding\":\"base64\"", s->out);
	}
	fputs("}\n", s->out);
	if (fflush(s->out) != 0) {
		s->st.dropped++;
		return -EIO;
	}
	s->st.sent++;
	s->st.acked += qos > 0;
	if (ref != 0 && u->dlv.acked != NULL)
		u->dlv.acked(u->dlv.arg, ref, 0); /* written: this sink is the end of the line */
	return 0;
}

static size_t
jsonl_backlog(const struct uplink *u)
{
	(void)u;
	return 0;
}

static void
jsonl_line(struct jsonl_sink *s)
{
	size_t n = s->line_len;

	while (n > 0 && (s->line[n - 1] == '\r' || s->line[n - 1] == ' '))
		n--;
	if (n > 0) {
		s->st.commands++;
		s->up.cmd_fn(
		    s->up.cmd_arg, s->cmd_topic, (const uint8_t *)s->line, n, 0, false, 0, 0);
	}
	s->line_len = 0;
}

static void
jsonl_on_cmd(void *arg, uint32_t events)
{
	struct jsonl_sink *s = arg;
	char buf[1024];
	ssize_t n;

	(void)events;
	while ((n = read(s->cmd_fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (!s->skip_line)
					jsonl_line(s);
				s->skip_line = false;
				s->line_len = 0;
			} else if (s->skip_line) {
				continue;
			} else if (s->line_len < sizeof(s->line) - 1) {
				s->line[s->line_len++] = buf[i];
			} else {
				LOG_RATELIMITED(
				    LOG_LVL_WARN, 10, "jsonl: command line too long, dropped");
				s->line_len = 0;
				s->skip_line = true;
			}
		}
	}
}

static void
jsonl_stats(const struct uplink *u, struct uplink_stats *out)
{
	*out = ((const struct jsonl_sink *)u)->st;
	out->connected = true;
}

static void
jsonl_destroy(struct uplink *u)
{
	struct jsonl_sink *s = (struct jsonl_sink *)u;

	if (s->cmd_fd >= 0) {
		agent_loop_del_fd(s->loop, s->cmd_fd);
		close(s->cmd_fd);
	}
	if (s->own_out)
		fclose(s->out);
	free(s);
}

static const struct uplink_ops jsonl_ops = { .name = "jsonl",
	.send = jsonl_send,
	.backlog = jsonl_backlog,
	.stats = jsonl_stats,
	.destroy = jsonl_destroy };

int
uplink_jsonl_create(struct uplink **out, struct agent_loop *loop, const char *path,
    const char *cmd_path, const char *cmd_topic, uplink_cmd_fn fn, void *arg)
{
	struct jsonl_sink *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->up = (struct uplink){ .ops = &jsonl_ops, .cmd_fn = fn, .cmd_arg = arg };
	s->loop = loop;
	s->cmd_fd = -1;
	snprintf(s->cmd_topic, sizeof(s->cmd_topic), "%s", cmd_topic ? cmd_topic : "");
	if (path == NULL || path[0] == '\0' || strcmp(path, "-") == 0) {
		s->out = stdout;
	} else if ((s->out = fopen(path, "a")) == NULL) {
		int rc = -errno;

		log_err("jsonl: %s: %s", path, strerror(errno));
		free(s);
		return rc;
	} else {
		s->own_out = true;
	}
	/* O_RDWR on a FIFO: we hold a writer ourselves, so no EOF spin when test writers go. */
	if (cmd_path != NULL && cmd_path[0] != '\0') {
		s->cmd_fd = open(cmd_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (s->cmd_fd < 0 ||
		    agent_loop_add_fd(loop, s->cmd_fd, EPOLLIN, jsonl_on_cmd, s) < 0) {
			int rc = s->cmd_fd < 0 ? -errno : -EINVAL;

			log_err("jsonl: commands %s: %s", cmd_path, strerror(-rc));
			jsonl_destroy(&s->up);
			return rc;
		}
	}
	log_info("uplink: JSON lines to %s%s%s", s->own_out ? path : "stdout",
	    s->cmd_fd >= 0 ? ", commands from " : "", s->cmd_fd >= 0 ? cmd_path : "");
	*out = &s->up;
	return 0;
}
