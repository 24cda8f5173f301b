/*
 * sim_opts.c: command line of edgegw-sensorsim and the parsers of its value syntaxes.
 * Everything is validated here, before a socket is opened; bad input is a clear message.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqtt_codec.h"
#include "sim_opts.h"

void
sim_opts_defaults(struct sim_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->transport = SIM_TR_KERNEL;
	snprintf(o->memif_socket, sizeof(o->memif_socket), "/run/edgegw/memif.sock");
	inet_pton(AF_INET, "198.18.0.2", &o->local);
	o->local_plen = 24;
	o->cpu = -1;
	snprintf(o->host, sizeof(o->host), "127.0.0.1");
	o->port = 1883;
	o->sessions = 100;
	o->threads = 1;
	o->rate = 1;
	o->qos_weight[0] = 1;
	o->payload = SIM_PAYLOAD_MIN;
	snprintf(o->topic, sizeof(o->topic), "site/{session}/sensor/{n}");
	o->n_lo = 0;
	o->n_hi = 9;
	o->sub_qos = 2;
	o->version = MQTT_V311;
	o->clean = true;
	o->keepalive_s = 60;
	o->window = 16;
	o->duration_s = 10;
	o->drain_s = 3;
	o->connect_timeout_s = 10;
	snprintf(o->client_prefix, sizeof(o->client_prefix), "sim%d-", (int)getpid());
}

void
sim_opts_usage(const char *prog)
{
	fprintf(stderr,
	    "usage: %s [options]\n"
	    "  -H, --host ADDR          broker IPv4 address (127.0.0.1)\n"
	    "  -p, --port PORT          broker port (1883)\n"
	    "  -b, --bind A[-B]         source address or range; sessions round-robin over them "
	    "(repeatable;\n"
	    "                           memif: extra addresses of the client stack, up to 16)\n"
	    "  -c, --sessions N         publishing sessions (100)\n"
	    "  -S, --subscribers N      dedicated subscriber sessions, subscribed to --sub-filter "
	    "(0)\n"
	    "  -F, --sub-filter TMPL    filter; with --subscribers 0 every session subscribes to "
	    "its own\n"
	    "                           expansion ({session} allowed)\n"
	    "      --sub-qos Q          subscription QoS (2)\n"
	    "  -t, --threads N          worker threads, each with its own epoll (1)\n"
	    "  -C, --connect-rate R     connects per second over all threads (0: unlimited)\n"
	    "  -r, --rate R             publishes per second per session (1; 0: as fast as the "
	    "window allows)\n"
	    "      --no-publish         connect (and subscribe) only, stay idle\n"
	    "  -q, --qos MIX            QoS mix, e.g. 1 or 0:50,1:40,2:10 (0)\n"
	    "  -s, --payload BYTES      payload size, >= 16 to carry the latency stamp (16)\n"
	    "  -T, --topic TMPL         topic template with {session} and {n} "
	    "(site/{session}/sensor/{n})\n"
	    "  -n, --topic-n LO-HI      range of {n} (0-9)\n"
	    "  -V, --mqtt-version V     3.1.1 or 5 (3.1.1)\n"
	    "      --no-clean           clean session / clean start 0\n"
	    "  -k, --keepalive S        keepalive seconds, PINGREQ when idle (60)\n"
	    "  -w, --window N           QoS 1/2 publishes in flight per session (16)\n"
	    "  -d, --duration S         publishing time (10)\n"
	    "  -m, --count N            total publishes, all sessions (0: until --duration)\n"
	    "      --drain S            wait for acks and deliveries after publishing (3)\n"
	    "      --connect-timeout S  time allowed for all sessions to connect (10)\n"
	    "      --client-prefix P    client id prefix (simPID-)\n"
	    "  -j, --json               print the final one-line JSON report on stdout\n"
	    "      --quiet              no human-readable report\n"
	    "      --transport T        kernel (sockets, any broker) or memif (DPDK net_memif "
	    "client with\n"
	    "                           the dataplane's own TCP: no kernel in the path; one "
	    "thread) (kernel)\n"
	    "      --memif-socket PATH  memif: the dataplane's memif control socket "
	    "(/run/edgegw/memif.sock)\n"
	    "      --local A[/LEN]      memif: our IPv4 address on the link (198.18.0.2/24)\n"
	    "      --cpu N              memif: the core the EAL lcore runs on (first allowed "
	    "core)\n",
	    prog);
}

int
sim_parse_range(const char *s, uint32_t *lo, uint32_t *hi)
{
	char *end;
	unsigned long a, b;

	errno = 0;
	a = strtoul(s, &end, 10);
	if (end == s || errno || a > UINT32_MAX)
		return -EINVAL;
	b = a;
	if (*end == '-') {
		const char *p = end + 1;

		b = strtoul(p, &end, 10);
		if (end == p || errno || b > UINT32_MAX)
			return -EINVAL;
	}
	if (*end != '\0' || b < a)
		return -EINVAL;
	*lo = (uint32_t)a;
	*hi = (uint32_t)b;
	return 0;
}

int
sim_parse_qos_mix(const char *s, uint32_t w[3])
{
	char buf[128], *save = NULL, *tok;
	uint32_t sum = 0;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", s);
	w[0] = w[1] = w[2] = 0;
	if (strchr(buf, ':') == NULL) { /* one QoS for all */
		if (strlen(buf) != 1 || buf[0] < '0' || buf[0] > '2')
			return -EINVAL;
		w[buf[0] - '0'] = 1;
		return 0;
	}
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long v;

		if (tok[0] < '0' || tok[0] > '2' || tok[1] != ':' || w[tok[0] - '0'] != 0)
			return -EINVAL;
		errno = 0;
		v = strtoul(tok + 2, &end, 10);
		if (end == tok + 2 || *end != '\0' || errno || v > 1000000)
			return -EINVAL;
		w[tok[0] - '0'] = (uint32_t)v;
		sum += (uint32_t)v;
	}
	return sum > 0 ? 0 : -EINVAL;
}

uint8_t
sim_qos_pick(const uint32_t w[3], uint32_t r)
{
	if (r < w[0])
		return 0;
	return r < w[0] + w[1] ? 1 : 2;
}

int
sim_parse_bind(const char *s, struct in_addr *out, uint32_t max)
{
	char a[32], *dash;
	struct in_addr lo, hi;
	uint32_t l, h;

	if (strlen(s) >= sizeof(a))
		return -EINVAL;
	snprintf(a, sizeof(a), "%s", s);
	dash = strchr(a, '-');
	if (dash)
		*dash = '\0';
	if (inet_pton(AF_INET, a, &lo) != 1 || (dash && inet_pton(AF_INET, dash + 1, &hi) != 1))
		return -EINVAL;
	if (!dash)
		hi = lo;
	l = ntohl(lo.s_addr);
	h = ntohl(hi.s_addr);
	if (h < l || h - l >= max)
		return -EINVAL;
	for (uint32_t i = 0; i <= h - l; i++)
		out[i].s_addr = htonl(l + i);
	return (int)(h - l + 1);
}

int
sim_topic_check(const char *t)
{
	if (*t == '\0')
		return -EINVAL;
	for (const char *p = t; *p; p++) {
		if (*p == '{') {
			if (strncmp(p, "{session}", 9) == 0)
				p += 8;
			else if (strncmp(p, "{n}", 3) == 0)
				p += 2;
			else
				return -EINVAL;
		} else if (*p == '}') {
			return -EINVAL;
		}
	}
	return 0;
}

/* Decimal by hand: snprintf was a fifth of the simulator's time at full publish rate. */
static int
put_u32(char *out, size_t cap, size_t *len, uint32_t v)
{
	char num[10];
	size_t n = 0;

	do {
		num[sizeof(num) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	if (*len + n >= cap)
		return -ENOSPC;
	memcpy(out + *len, num + sizeof(num) - n, n);
	*len += n;
	return 0;
}

int
sim_topic_expand(const char *t, uint32_t session, uint32_t n, char *out, size_t cap)
{
	size_t len = 0;

	for (const char *p = t; *p; p++) {
		if (*p == '{' && strncmp(p, "{session}", 9) == 0) {
			if (put_u32(out, cap, &len, session) < 0)
				return -ENOSPC;
			p += 8;
		} else if (*p == '{' && strncmp(p, "{n}", 3) == 0) {
			if (put_u32(out, cap, &len, n) < 0)
				return -ENOSPC;
			p += 2;
		} else {
			if (len + 1 >= cap)
				return -ENOSPC;
			out[len++] = *p;
		}
	}
	out[len] = '\0';
	return (int)len;
}

static int
parse_num(const char *s, double lo, double hi, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	return end == s || *end != '\0' || errno || *v < lo || *v > hi ? -EINVAL : 0;
}

enum {
	O_SUBQOS = 256,
	O_NOPUB,
	O_NOCLEAN,
	O_DRAIN,
	O_CTIMEOUT,
	O_PREFIX,
	O_QUIET,
	O_TRANSPORT,
	O_MEMIF,
	O_LOCAL,
	O_CPU
};

static const struct option long_opts[] = {
	{ "host", required_argument, NULL, 'H' },
	{ "port", required_argument, NULL, 'p' },
	{ "bind", required_argument, NULL, 'b' },
	{ "sessions", required_argument, NULL, 'c' },
	{ "subscribers", required_argument, NULL, 'S' },
	{ "sub-filter", required_argument, NULL, 'F' },
	{ "sub-qos", required_argument, NULL, O_SUBQOS },
	{ "threads", required_argument, NULL, 't' },
	{ "connect-rate", required_argument, NULL, 'C' },
	{ "rate", required_argument, NULL, 'r' },
	{ "no-publish", no_argument, NULL, O_NOPUB },
	{ "qos", required_argument, NULL, 'q' },
	{ "payload", required_argument, NULL, 's' },
	{ "topic", required_argument, NULL, 'T' },
	{ "topic-n", required_argument, NULL, 'n' },
	{ "mqtt-version", required_argument, NULL, 'V' },
	{ "no-clean", no_argument, NULL, O_NOCLEAN },
	{ "keepalive", required_argument, NULL, 'k' },
	{ "window", required_argument, NULL, 'w' },
	{ "duration", required_argument, NULL, 'd' },
	{ "count", required_argument, NULL, 'm' },
	{ "drain", required_argument, NULL, O_DRAIN },
	{ "connect-timeout", required_argument, NULL, O_CTIMEOUT },
	{ "client-prefix", required_argument, NULL, O_PREFIX },
	{ "json", no_argument, NULL, 'j' },
	{ "quiet", no_argument, NULL, O_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ "transport", required_argument, NULL, O_TRANSPORT },
	{ "memif-socket", required_argument, NULL, O_MEMIF },
	{ "local", required_argument, NULL, O_LOCAL },
	{ "cpu", required_argument, NULL, O_CPU },
	{ NULL, 0, NULL, 0 },
};

/* One option with a value; returns 0 or -EINVAL. */
static int
parse_one(struct sim_opts *o, int opt, const char *arg)
{
	double v = 0;
	int n;

	switch (opt) {
	case 'H': {
		struct in_addr a;

		if (inet_pton(AF_INET, arg, &a) != 1)
			return -EINVAL;
		snprintf(o->host, sizeof(o->host), "%s", arg);
		return 0;
	}
	case 'p':
		if (parse_num(arg, 1, 65535, &v))
			return -EINVAL;
		o->port = (uint16_t)v;
		return 0;
	case 'b':
		n = sim_parse_bind(arg, o->bind + o->n_bind, SIM_MAX_BIND - o->n_bind);
		if (n < 0)
			return -EINVAL;
		o->n_bind += (uint32_t)n;
		return 0;
	case 'c':
		if (parse_num(arg, 0, 1e6, &v))
			return -EINVAL;
		o->sessions = (uint32_t)v;
		return 0;
	case 'S':
		if (parse_num(arg, 0, 1e6, &v))
			return -EINVAL;
		o->subscribers = (uint32_t)v;
		return 0;
	case 'F':
		if (strlen(arg) >= sizeof(o->sub_filter) || sim_topic_check(arg))
			return -EINVAL;
		snprintf(o->sub_filter, sizeof(o->sub_filter), "%s", arg);
		return 0;
	case O_SUBQOS:
		if (parse_num(arg, 0, 2, &v))
			return -EINVAL;
		o->sub_qos = (uint8_t)v;
		return 0;
	case 't':
		if (parse_num(arg, 1, SIM_MAX_THREADS, &v))
			return -EINVAL;
		o->threads = (uint32_t)v;
		return 0;
	case 'C':
		return parse_num(arg, 0, 1e9, &o->connect_rate);
	case 'r':
		return parse_num(arg, 0, 1e9, &o->rate);
	case 'q':
		return sim_parse_qos_mix(arg, o->qos_weight);
	case 's':
		if (parse_num(arg, 0, SIM_PAYLOAD_MAX, &v))
			return -EINVAL;
		o->payload = (uint32_t)v;
		return 0;
	case 'T':
		if (strlen(arg) >= sizeof(o->topic) || sim_topic_check(arg) || strpbrk(arg, "+#"))
			return -EINVAL;
		snprintf(o->topic, sizeof(o->topic), "%s", arg);
		return 0;
	case 'n':
		return sim_parse_range(arg, &o->n_lo, &o->n_hi);
	case 'V':
		if (strcmp(arg, "3.1.1") == 0 || strcmp(arg, "4") == 0)
			o->version = MQTT_V311;
		else if (strcmp(arg, "5") == 0 || strcmp(arg, "5.0") == 0)
			o->version = MQTT_V5;
		else
			return -EINVAL;
		return 0;
	case 'k':
		if (parse_num(arg, 0, 65535, &v))
			return -EINVAL;
		o->keepalive_s = (uint16_t)v;
		return 0;
	case 'w':
		if (parse_num(arg, 1, SIM_MAX_WINDOW, &v))
			return -EINVAL;
		o->window = (uint32_t)v;
		return 0;
	case 'd':
		return parse_num(arg, 0, 86400, &o->duration_s);
	case 'm':
		if (parse_num(arg, 0, 1e15, &v))
			return -EINVAL;
		o->count = (uint64_t)v;
		return 0;
	case O_DRAIN:
		return parse_num(arg, 0, 3600, &o->drain_s);
	case O_CTIMEOUT:
		return parse_num(arg, 0.1, 3600, &o->connect_timeout_s);
	case O_TRANSPORT:
		if (strcmp(arg, "kernel") == 0)
			o->transport = SIM_TR_KERNEL;
		else if (strcmp(arg, "memif") == 0)
			o->transport = SIM_TR_MEMIF;
		else
			return -EINVAL;
		return 0;
	case O_MEMIF:
		if (arg[0] == '\0' || strlen(arg) >= sizeof(o->memif_socket))
			return -EINVAL;
		snprintf(o->memif_socket, sizeof(o->memif_socket), "%s", arg);
		return 0;
	case O_LOCAL: {
		char a[INET_ADDRSTRLEN];
		const char *slash = strchr(arg, '/');
		size_t len = slash ? (size_t)(slash - arg) : strlen(arg);

		if (len >= sizeof(a))
			return -EINVAL;
		memcpy(a, arg, len);
		a[len] = '\0';
		if (inet_pton(AF_INET, a, &o->local) != 1 || o->local.s_addr == 0)
			return -EINVAL;
		o->local_plen = 24;
		if (slash != NULL) {
			if (parse_num(slash + 1, 1, 30, &v))
				return -EINVAL;
			o->local_plen = (uint8_t)v;
		}
		return 0;
	}
	case O_CPU:
		if (parse_num(arg, 0, 4095, &v))
			return -EINVAL;
		o->cpu = (int)v;
		return 0;
	case O_PREFIX:
		if (strlen(arg) >= sizeof(o->client_prefix))
			return -EINVAL;
		snprintf(o->client_prefix, sizeof(o->client_prefix), "%s", arg);
		return 0;
	}
	return -EINVAL;
}

/* The option's long name for error messages: argv[optind - 1] is the value when it was given
 * as a separate word ("--qos 3"), so it cannot name the option. */
static const char *
sim_opt_name(int opt, int longindex)
{
	if (longindex >= 0)
		return long_opts[longindex].name;
	for (const struct option *lo = long_opts; lo->name != NULL; lo++)
		if (lo->val == opt)
			return lo->name;
	return "?";
}

int
sim_opts_parse(struct sim_opts *o, int argc, char **argv)
{
	int opt, li = -1;

	optind = 1;
	while ((opt = getopt_long(
		    argc, argv, "H:p:b:c:S:F:t:C:r:q:s:T:n:V:k:w:d:m:jh", long_opts, &li)) != -1) {
		if (opt == 'h') {
			sim_opts_usage(argv[0]);
			return 1;
		} else if (opt == 'j') {
			o->json = true;
		} else if (opt == O_NOPUB) {
			o->no_publish = true;
		} else if (opt == O_NOCLEAN) {
			o->clean = false;
		} else if (opt == O_QUIET) {
			o->quiet = true;
		} else if (opt == '?' || parse_one(o, opt, optarg) < 0) {
			if (opt != '?')
				fprintf(stderr, "edgegw-sensorsim: bad value '%s' for --%s\n",
				    optarg, sim_opt_name(opt, li));
			sim_opts_usage(argv[0]);
			return -EINVAL;
		}
		li = -1;
	}
	if (optind < argc) {
		fprintf(stderr, "edgegw-sensorsim: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (o->sessions + o->subscribers == 0) {
		fprintf(stderr, "edgegw-sensorsim: no sessions\n");
		return -EINVAL;
	}
	if (o->subscribers > 0 && o->sub_filter[0] == '\0') {
		fprintf(stderr, "edgegw-sensorsim: --subscribers needs --sub-filter\n");
		return -EINVAL;
	}
	if (o->transport == SIM_TR_MEMIF && o->threads > 1) {
		fprintf(
		    stderr, "edgegw-sensorsim: the memif transport runs one thread (one lcore)\n");
		return -EINVAL;
	}
	if (o->transport == SIM_TR_MEMIF && o->n_bind > 16) {
		fprintf(stderr,
		    "edgegw-sensorsim: memif: at most 16 --bind addresses (the client "
		    "stack's own addresses, besides --local)\n");
		return -EINVAL;
	}
	if (o->duration_s == 0 && o->count == 0 && !o->no_publish) {
		fprintf(stderr, "edgegw-sensorsim: give --duration or --count\n");
		return -EINVAL;
	}
	return 0;
}
