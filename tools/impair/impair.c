/*
 * edgegw-impair: an impairment relay between two interfaces, standing in for tc netem (which
 * this kernel lacks). Frames read from interface A with an AF_PACKET socket are sent out of B
 * and back the other way, each direction with its own delay, jitter, loss, duplication,
 * reordering and rate limit. The lab (tests/lab/lab up --impair) puts it where the bridge
 * between the sensors' veth and the dataplane's tap would be.
 *
 *   edgegw-impair [--a2b SPEC] [--b2a SPEC] [--seed N] [--drop-log FILE] IFACE_A IFACE_B
 *   SPEC: comma-separated key=value: delay=20ms jitter=5ms loss=3% dup=1% reorder=2%
 *         rate=10mbit limit=4096 (frames queued per direction) hold=20ms (longest a reordered
 *         frame waits for a successor)
 *
 * Per direction the frames wait in a bounded FIFO until their due time; a frame picked for
 * reordering is held back and sent right after the next one (or after `hold`). Counters go to
 * stderr on SIGUSR1 and at exit; SIGTERM/SIGINT stop it cleanly. --drop-log writes a line
 * per lost IPv4 TCP frame (CLOCK_MONOTONIC ns, direction, source and destination address,
 * TCP payload bytes), so that a bench can tell which of its exchanges lost what, and where.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define IMPAIR_FRAME_MAX 2048 /* lab MTU is 1500; larger frames are counted and dropped */
#define IMPAIR_RX_BATCH  64

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

struct impair_spec {
	uint64_t delay_ns;
	uint64_t jitter_ns;
	uint64_t hold_ns;
	uint64_t rate_bps; /* 0: unlimited */
	double loss;       /* probabilities, 0..1 */
	double dup;
	double reorder;
	uint32_t limit; /* frames queued */
};

struct impair_frame {
	uint64_t due_ns;
	uint16_t len;
	uint8_t data[IMPAIR_FRAME_MAX];
};

struct impair_stats {
	uint64_t rx, tx, lost, dup, reordered, overflow, too_big, tx_err;
};

struct impair_dir {
	const char *name;
	int rx_fd, tx_fd;
	int tx_ifindex;
	struct impair_spec spec;
	struct impair_frame *q; /* ring of spec.limit frames */
	uint32_t head, count;
	uint64_t last_due_ns;  /* keeps the FIFO in order when jitter would swap frames */
	uint64_t link_free_ns; /* rate limit: when the last queued frame finishes serialising */
	struct impair_frame held;
	bool has_held;
	uint64_t held_until_ns;
	struct impair_stats st;
};

static FILE *impair_drop_log;
static volatile sig_atomic_t impair_stop;
static volatile sig_atomic_t impair_dump;
static uint64_t impair_rng_state;

static void
impair_on_signal(int sig)
{
	if (sig == SIGUSR1)
		impair_dump = 1;
	else
		impair_stop = 1;
}

static uint64_t
impair_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: a seedable generator so a run can be repeated with --seed. */
static uint64_t
impair_rand(void)
{
	uint64_t z = (impair_rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool
impair_chance(double p)
{
	return p > 0 && (double)(impair_rand() >> 11) / 9007199254740992.0 < p;
}

/* "20ms", "500us", "1s", "100ns"; a bare number is milliseconds. */
static int
impair_parse_time(const char *v, uint64_t *out)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v || x < 0)
		return -EINVAL;
	if (*end == '\0' || !strcmp(end, "ms"))
		x *= 1e6;
	else if (!strcmp(end, "us"))
		x *= 1e3;
	else if (!strcmp(end, "s"))
		x *= 1e9;
	else if (strcmp(end, "ns"))
		return -EINVAL;
	*out = (uint64_t)x;
	return 0;
}

/* "3%", "3", "0.5%": a percentage. */
static int
impair_parse_pct(const char *v, double *out)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v || (*end != '\0' && strcmp(end, "%")) || x < 0 || x > 100)
		return -EINVAL;
	*out = x / 100.0;
	return 0;
}

/* "10mbit", "1gbit", "500kbit", "8000bit" (bits per second). */
static int
impair_parse_rate(const char *v, uint64_t *out)
{
	char *end;
	double x = strtod(v, &end);

	if (end == v || x < 0)
		return -EINVAL;
	if (!strcmp(end, "kbit"))
		x *= 1e3;
	else if (!strcmp(end, "mbit"))
		x *= 1e6;
	else if (!strcmp(end, "gbit"))
		x *= 1e9;
	else if (*end != '\0' && strcmp(end, "bit"))
		return -EINVAL;
	*out = (uint64_t)x;
	return 0;
}

static int
impair_parse_kv(struct impair_spec *s, const char *k, const char *v)
{
	if (!strcmp(k, "delay"))
		return impair_parse_time(v, &s->delay_ns);
	if (!strcmp(k, "jitter"))
		return impair_parse_time(v, &s->jitter_ns);
	if (!strcmp(k, "hold"))
		return impair_parse_time(v, &s->hold_ns);
	if (!strcmp(k, "loss"))
		return impair_parse_pct(v, &s->loss);
	if (!strcmp(k, "dup"))
		return impair_parse_pct(v, &s->dup);
	if (!strcmp(k, "reorder"))
		return impair_parse_pct(v, &s->reorder);
	if (!strcmp(k, "rate"))
		return impair_parse_rate(v, &s->rate_bps);
	if (!strcmp(k, "limit")) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);

		if (end == v || *end || n < 2 || n > 1000000)
			return -EINVAL;
		s->limit = (uint32_t)n;
		return 0;
	}
	return -ENOENT;
}

static int
impair_parse_spec(struct impair_spec *s, const char *text)
{
	char *copy = strdup(text), *save = NULL, *tok;
	int rc = 0;

	if (copy == NULL)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (eq == NULL) {
			log_err("impair spec: '%s' is not key=value", tok);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		rc = impair_parse_kv(s, tok, eq + 1);
		if (rc == -ENOENT)
			log_err("impair spec: unknown key '%s' (delay jitter loss dup reorder rate "
				"limit hold)",
			    tok);
		else if (rc < 0)
			log_err("impair spec: bad value '%s' for %s", eq + 1, tok);
	}
	free(copy);
	return rc;
}

static int
impair_open(const char *ifname, int *ifindex)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL) };
	struct packet_mreq mr = { .mr_type = PACKET_MR_PROMISC };
	int fd, one = 1, buf = 4 << 20;

	*ifindex = (int)if_nametoindex(ifname);
	if (*ifindex == 0) {
		log_err("interface %s: %s", ifname, strerror(errno));
		return -ENODEV;
	}
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0) {
		log_err("AF_PACKET socket: %s (needs root)", strerror(errno));
		return -errno;
	}
	sll.sll_ifindex = *ifindex;
	mr.mr_ifindex = *ifindex;
	/* Without IGNORE_OUTGOING the socket would read back every frame we send out of it. */
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0) {
		int err = errno;

		log_err("interface %s: bind/promisc/ignore-outgoing: %s", ifname, strerror(err));
		close(fd);
		return -err;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf)) < 0)
		log_warnx("interface %s: cannot raise socket buffers: %s", ifname, strerror(errno));
	return fd;
}

static void
impair_send(struct impair_dir *d, const struct impair_frame *f)
{
	if (send(d->tx_fd, f->data, f->len, 0) == (ssize_t)f->len)
		d->st.tx++;
	else
		d->st.tx_err++;
}

/* When a frame arriving now leaves: after the rate limit's serialisation and the delay. */
static uint64_t
impair_due(struct impair_dir *d, uint64_t now, uint16_t len)
{
	const struct impair_spec *s = &d->spec;
	uint64_t start = now, due;

	if (s->rate_bps) {
		if (d->link_free_ns > start)
			start = d->link_free_ns;
		start += (uint64_t)len * 8 * 1000000000ull / s->rate_bps;
		d->link_free_ns = start;
	}
	due = start + s->delay_ns;
	if (s->jitter_ns) {
		uint64_t j = impair_rand() % (2 * s->jitter_ns + 1);

		due = due + j > s->jitter_ns ? due + j - s->jitter_ns : 0;
	}
	if (due < d->last_due_ns)
		due = d->last_due_ns;
	d->last_due_ns = due;
	return due;
}

static void
impair_enqueue(struct impair_dir *d, const uint8_t *data, size_t len, uint64_t now)
{
	struct impair_frame *f;

	if (d->count == d->spec.limit) {
		d->st.overflow++;
		return;
	}
	f = &d->q[(d->head + d->count) % d->spec.limit];
	memcpy(f->data, data, len);
	f->len = (uint16_t)len;
	f->due_ns = impair_due(d, now, f->len);
	d->count++;
}

/* --drop-log: "NS DIR SRC DST PAYLOAD" for a lost IPv4 TCP frame (untagged Ethernet). */
static void
impair_log_drop(const struct impair_dir *d, const uint8_t *f, size_t len, uint64_t now)
{
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
	size_t ihl, thl;
	uint16_t tot;

	if (impair_drop_log == NULL || len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00 ||
	    (f[14] >> 4) != 4 || f[14 + 9] != IPPROTO_TCP)
		return;
	ihl = (size_t)(f[14] & 0xf) * 4;
	tot = (uint16_t)(f[14 + 2] << 8 | f[14 + 3]);
	if (ihl < 20 || len < 14 + ihl + 20 || tot < ihl + 20)
		return;
	thl = (size_t)(f[14 + ihl + 12] >> 4) * 4;
	if (tot < ihl + thl)
		return;
	inet_ntop(AF_INET, f + 14 + 12, src, sizeof(src));
	inet_ntop(AF_INET, f + 14 + 16, dst, sizeof(dst));
	fprintf(impair_drop_log, "%" PRIu64 " %s %s %s %zu\n", now, d->name, src, dst,
	    (size_t)tot - ihl - thl);
}

/* One received frame: lose it, queue it, maybe queue it twice. */
static void
impair_ingest(struct impair_dir *d, const uint8_t *data, size_t len, uint64_t now)
{
	d->st.rx++;
	if (len > IMPAIR_FRAME_MAX) {
		d->st.too_big++;
		return;
	}
	if (impair_chance(d->spec.loss)) {
		d->st.lost++;
		impair_log_drop(d, data, len, now);
		return;
	}
	impair_enqueue(d, data, len, now);
	if (impair_chance(d->spec.dup)) {
		d->st.dup++;
		impair_enqueue(d, data, len, now);
	}
}

static void
impair_read(struct impair_dir *d)
{
	static uint8_t bufs[IMPAIR_RX_BATCH][IMPAIR_FRAME_MAX + 1];
	struct mmsghdr msgs[IMPAIR_RX_BATCH];
	struct iovec iov[IMPAIR_RX_BATCH];
	uint64_t now;
	int i, n;

	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < IMPAIR_RX_BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	n = recvmmsg(d->rx_fd, msgs, IMPAIR_RX_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
	if (n <= 0)
		return;
	now = impair_now_ns();
	for (i = 0; i < n; i++)
		impair_ingest(d, bufs[i], msgs[i].msg_len, now);
}

/* Send every frame whose time has come; returns the next due time (UINT64_MAX: none). */
static uint64_t
impair_drain(struct impair_dir *d, uint64_t now)
{
	while (d->count > 0 && d->q[d->head].due_ns <= now) {
		struct impair_frame *f = &d->q[d->head];

		if (!d->has_held && impair_chance(d->spec.reorder)) {
			d->held = *f;
			d->has_held = true;
			d->held_until_ns = now + d->spec.hold_ns;
			d->st.reordered++;
		} else {
			impair_send(d, f);
			if (d->has_held) {
				impair_send(d, &d->held);
				d->has_held = false;
			}
		}
		d->head = (d->head + 1) % d->spec.limit;
		d->count--;
	}
	if (d->has_held && d->held_until_ns <= now) {
		impair_send(d, &d->held);
		d->has_held = false;
	}
	uint64_t next = d->count ? d->q[d->head].due_ns : UINT64_MAX;

	if (d->has_held && d->held_until_ns < next)
		next = d->held_until_ns;
	return next;
}

static void
impair_print(const struct impair_dir *d)
{
	const struct impair_stats *s = &d->st;

	log_info("%s: rx=%" PRIu64 " tx=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64
		 " reordered=%" PRIu64 " overflow=%" PRIu64 " too_big=%" PRIu64 " tx_err=%" PRIu64
		 " queued=%u",
	    d->name, s->rx, s->tx, s->lost, s->dup, s->reordered, s->overflow, s->too_big,
	    s->tx_err, d->count);
}

/* --dry-run: what the spec parsed to, in the units the relay uses. */
static void
impair_print_spec(const struct impair_dir *d)
{
	const struct impair_spec *s = &d->spec;

	printf("%s delay_ns=%" PRIu64 " jitter_ns=%" PRIu64 " hold_ns=%" PRIu64 " rate_bps=%" PRIu64
	       " loss=%.4f dup=%.4f reorder=%.4f limit=%u\n",
	    d->name, s->delay_ns, s->jitter_ns, s->hold_ns, s->rate_bps, s->loss, s->dup,
	    s->reorder, s->limit);
}

static void
impair_loop(struct impair_dir dirs[2])
{
	struct pollfd pfd[2] = {
		{ .fd = dirs[0].rx_fd, .events = POLLIN },
		{ .fd = dirs[1].rx_fd, .events = POLLIN },
	};

	while (!impair_stop) {
		uint64_t now = impair_now_ns(), next = UINT64_MAX, n;
		struct timespec ts, *tsp = NULL;
		int i;

		for (i = 0; i < 2; i++) {
			n = impair_drain(&dirs[i], now);
			if (n < next)
				next = n;
		}
		if (impair_dump) {
			impair_dump = 0;
			impair_print(&dirs[0]);
			impair_print(&dirs[1]);
		}
		if (next != UINT64_MAX) {
			uint64_t wait = next > now ? next - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000000ull);
			ts.tv_nsec = (long)(wait % 1000000000ull);
			tsp = &ts;
		}
		if (ppoll(pfd, 2, tsp, NULL) < 0) {
			if (errno != EINTR) {
				log_err("ppoll: %s", strerror(errno));
				return;
			}
			continue;
		}
		for (i = 0; i < 2; i++)
			if (pfd[i].revents & POLLIN)
				impair_read(&dirs[i]);
	}
}

static void
impair_usage(FILE *out)
{
	fprintf(out,
	    "usage: edgegw-impair [--a2b SPEC] [--b2a SPEC] [--seed N] [--drop-log FILE] [-v]\n"
	    "                     IFACE_A IFACE_B\n"
	    "       edgegw-impair --dry-run [--a2b SPEC] [--b2a SPEC]   (print the parsed specs)\n"
	    "  Relays Ethernet frames between IFACE_A and IFACE_B, impairing each direction.\n"
	    "  SPEC: comma-separated key=value\n"
	    "    delay=20ms   fixed delay (ns, us, ms, s; bare number = ms)\n"
	    "    jitter=5ms   uniform +-jitter on the delay (frames stay in order)\n"
	    "    loss=3%%      drop probability\n"
	    "    dup=1%%       duplication probability\n"
	    "    reorder=2%%   probability a frame is held back and sent after the next one\n"
	    "    hold=20ms    longest a held frame waits for a successor (default 20ms)\n"
	    "    rate=10mbit  rate limit (bit, kbit, mbit, gbit per second; default none)\n"
	    "    limit=4096   frames queued per direction; more are dropped (overflow)\n"
	    "  --drop-log FILE: a line per lost IPv4 TCP frame: CLOCK_MONOTONIC ns, a2b|b2a,\n"
	    "    source, destination, TCP payload bytes\n"
	    "  Counters go to stderr on SIGUSR1 and at exit; SIGTERM/SIGINT stop it.\n");
}

static int
impair_setup(struct impair_dir dirs[2], const char *ifa, const char *ifb)
{
	int ia, ib, fa, fb, i;

	fa = impair_open(ifa, &ia);
	if (fa < 0)
		return fa;
	fb = impair_open(ifb, &ib);
	if (fb < 0) {
		close(fa);
		return fb;
	}
	dirs[0].rx_fd = fa;
	dirs[0].tx_fd = fb;
	dirs[0].tx_ifindex = ib;
	dirs[1].rx_fd = fb;
	dirs[1].tx_fd = fa;
	dirs[1].tx_ifindex = ia;
	for (i = 0; i < 2; i++) {
		dirs[i].q = calloc(dirs[i].spec.limit, sizeof(*dirs[i].q));
		if (dirs[i].q == NULL)
			return -ENOMEM;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "a2b", required_argument, NULL, 'a' },
		{ "b2a", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 's' },
		{ "drop-log", required_argument, NULL, 'l' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct impair_spec defaults = { .limit = 4096, .hold_ns = 20000000ull };
	struct impair_dir dirs[2] = {
		{ .name = "a2b", .spec = defaults },
		{ .name = "b2a", .spec = defaults },
	};
	struct sigaction sa = { .sa_handler = impair_on_signal };
	int c, rc;
	bool dry_run = false;

	log_init("edgegw-impair", LOG_LVL_INFO);
	impair_rng_state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	while ((c = getopt_long(argc, argv, "nvh", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
		case 'b':
			if (impair_parse_spec(&dirs[c == 'a' ? 0 : 1].spec, optarg) < 0)
				return 2;
			break;
		case 's':
			impair_rng_state = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			dry_run = true;
			break;
		case 'l':
			impair_drop_log = fopen(optarg, "a");
			if (impair_drop_log == NULL) {
				log_err("drop log %s: %s", optarg, strerror(errno));
				return 1;
			}
			setvbuf(impair_drop_log, NULL, _IOLBF, 0);
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			impair_usage(stdout);
			return 0;
		default:
			impair_usage(stderr);
			return 2;
		}
	}
	if (dry_run) {
		impair_print_spec(&dirs[0]);
		impair_print_spec(&dirs[1]);
		return 0;
	}
	if (argc - optind != 2) {
		impair_usage(stderr);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	rc = impair_setup(dirs, argv[optind], argv[optind + 1]);
	if (rc < 0)
		return 1;
	log_info("relaying %s <-> %s", argv[optind], argv[optind + 1]);
	impair_loop(dirs);
	impair_print(&dirs[0]);
	impair_print(&dirs[1]);
	close(dirs[0].rx_fd);
	close(dirs[1].rx_fd);
	free(dirs[0].q);
	free(dirs[1].q);
	if (impair_drop_log != NULL)
		fclose(impair_drop_log);
	return 0;
}
