/*
 * uplink_harness.c: the agent's cloud client (agent/uplink/mqttc.c) alone, for the integration
 * test against Mosquitto over TLS. Reads the "mqtt:" section of a config file (the agent's own
 * parser), publishes COUNT messages "<id>" to PREFIX/<id>, QoS 1 and 2 in turn, one every
 * PERIOD_MS, and exits 0 once the broker has acknowledged every one (PUBACK, PUBCOMP). SIGUSR1
 * drops the connection at once (a forced reconnect, whatever is in flight). At exit the
 * client's counters go to stdout as one JSON object.
 *   uplink_harness CONFIG COUNT PERIOD_MS PREFIX [RUN_MS]
 * With RUN_MS it stops after that long whatever happened (for attempts meant to fail).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "mqttc.h"
#include "log.h"

struct harness {
	int ep;
	struct mqttc *c;
	uint64_t acked, refused;
};

static int
h_watch(void *arg, int fd, uint32_t events, bool add)
{
	struct harness *h = arg;
	struct epoll_event ev = { .events = events, .data.fd = fd };

	return epoll_ctl(h->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

static void
h_unwatch(void *arg, int fd)
{
	struct harness *h = arg;

	epoll_ctl(h->ep, EPOLL_CTL_DEL, fd, NULL);
}

static void
h_acked(void *arg, uint64_t ref, uint8_t reason)
{
	struct harness *h = arg;

	(void)ref;
	if (reason >= 0x80)
		h->refused++;
	else
		h->acked++;
}

static int
load(const char *path, struct uplink_mqtt_conf *mc)
{
	struct conf_doc *doc;
	char err[1024];
	int rc;

	if (conf_load_file(path, &doc, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	rc = uplink_mqtt_conf_parse(conf_get(conf_root(doc), "mqtt"), mc);
	if (rc != 0 || conf_error_count(doc) != 0) {
		fprintf(stderr, "%s\n", conf_first_error(doc));
		rc = -1;
	}
	conf_free(doc);
	return rc;
}

static void
print_counters(const struct mqttc *c)
{
	const uint64_t *v = mqttc_counters(c);

	printf("{");
	for (int i = 0; i < UPLINK_C_COUNT; i++)
		printf("%s\"%s\":%llu", i ? "," : "", uplink_counter_names[i],
		    (unsigned long long)v[i]);
	printf("}\n");
}

static int
signal_fd(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGPIPE);
	sigprocmask(SIG_BLOCK, &s, NULL);
	return signalfd(-1, &s, SFD_CLOEXEC);
}

/* 1 to go on, 0 to stop. */
static int
on_signal(struct harness *h, int sfd)
{
	struct signalfd_siginfo si;

	if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 1;
	if (si.ssi_signo == SIGUSR1) {
		log_info("harness: forced disconnect");
		mqttc_disconnect(h->c, "forced by the test");
		return 1;
	}
	return si.ssi_signo == SIGPIPE;
}

int
main(int argc, char **argv)
{
	struct harness h = { 0 };
	struct uplink_mqtt_conf mc;
	struct mqttc_hooks hooks = {
		.arg = &h, .watch = h_watch, .unwatch = h_unwatch, .acked = h_acked
	};
	uint64_t count, period, run_ms = 0, next_pub, t0, sent = 0;
	char err[256], topic[128], payload[32];
	struct epoll_event ev;
	int sfd;

	if (argc < 5) {
		fprintf(stderr, "usage: uplink_harness CONFIG COUNT PERIOD_MS PREFIX [RUN_MS]\n");
		return 2;
	}
	log_init("uplink_harness", LOG_LVL_INFO);
	count = strtoull(argv[2], NULL, 10);
	period = strtoull(argv[3], NULL, 10);
	if (argc > 5)
		run_ms = strtoull(argv[5], NULL, 10);
	if (load(argv[1], &mc) != 0)
		return 2;
	h.ep = epoll_create1(EPOLL_CLOEXEC);
	sfd = signal_fd();
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = sfd };
	epoll_ctl(h.ep, EPOLL_CTL_ADD, sfd, &ev);
	if (mqttc_create(&h.c, &mc, &hooks, err, sizeof(err)) != 0) {
		fprintf(stderr, "harness: %s\n", err);
		return 2;
	}
	t0 = next_pub = clock_mono_ms();
	for (;;) {
		uint64_t now = clock_mono_ms();
		int n = epoll_wait(h.ep, &ev, 1, 10);

		if (n == 1 && ev.data.fd == sfd) {
			if (!on_signal(&h, sfd))
				break;
		} else if (n == 1) {
			mqttc_on_io(h.c, ev.events);
		}
		mqttc_tick(h.c);
		for (; sent < count && now >= next_pub; next_pub += period) {
			snprintf(
			    topic, sizeof(topic), "%s/%llu", argv[4], (unsigned long long)sent);
			snprintf(payload, sizeof(payload), "%llu", (unsigned long long)sent);
			mqttc_publish(h.c, topic, payload, strlen(payload), (uint8_t)(1 + sent % 2),
			    false, sent);
			sent++;
		}
		if ((count > 0 && h.acked + h.refused == count) || (run_ms && now - t0 >= run_ms))
			break;
	}
	print_counters(h.c);
	fflush(stdout);
	log_info("harness: %llu acknowledged, %llu refused, %zu in flight, %zu waiting",
	    (unsigned long long)h.acked, (unsigned long long)h.refused, mqttc_inflight(h.c),
	    mqttc_queued(h.c));
	mqttc_destroy(h.c);
	return h.acked == count ? 0 : 1;
}
