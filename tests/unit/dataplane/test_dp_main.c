/*
 * test_dp_main.c: edgegw-dataplane whole, in one process: dataplane/main.c (its main() renamed
 * dp_main) with its worker loop, services, telemetry and DPDK log routing, on a net_ring port
 * the test plugs in as the EAL comes up (rte_eal_init wrapped: rte_eth_from_rings with two rings
 * the test holds the other end of). The test is the wire and the peer: it answers ARP, speaks
 * TCP (a small client of its own) and MQTT 3.1.1 to the broker, echo to the echo service, runs
 * the agent's end of the store-and-forward channel (lib/dpchan server), asks the DPDK telemetry
 * socket the /edgegw/... commands an operator uses (edgegwctl), sends SIGHUP with a changed and
 * a bad config, and SIGTERM. It waits for effects (frames, log lines, telemetry answers, systemd
 * notifications on a socket of its own), never for a fixed time.
 *
 * Before the EAL is up (once per process): --help, --version, a bad option, --check,
 * --prepare-plan and a rejected config, called in the test process; start-up failures that end in
 * rte_exit (EAL arguments, port not found, port setup, mbuf pool) each in a forked child whose
 * exit status and message are checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <rte_arp.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_tcp.h>

#include "dirs.h"
#include "dp_main.h"
#include "dpchan_server.h"
#include "main_fixture.h"

int dp_main(int argc, char **argv);
int __real_rte_eal_init(int argc, char **argv);
int __wrap_rte_eal_init(int argc, char **argv);

/* a generous deadline: it only turns a hang into a failure */
#define DEADLINE_MS 20000
#define PORT_NAME   "net_ring_dpm" /* rte_eth_from_rings names it net_ring_ + its name */
#define OUR_IP      0xc6120001u    /* 198.18.0.1 */
#define PEER_IP     0xc6120002u    /* 198.18.0.2 */

static char dir[256], cfg[300], errlog[300], outlog[300], sockpath[300], chanpath[300];
static char statedir[300], runtime_dir[PATH_MAX];

/* --- the wire: the port's rings, plugged in when the EAL is up --- */

static struct rte_ring *wire_rx, *wire_tx; /* the dataplane's rx (we enqueue), tx (we dequeue) */
static struct rte_ring *two_q[2];          /* net_ring_dpm2: two queue pairs, no RSS */
static struct rte_mempool *peer_pool;
static bool plug_port = true, plugged;

int
__wrap_rte_eal_init(int argc, char **argv)
{
	int rc = __real_rte_eal_init(argc, argv);

	if (rc < 0 || !plug_port)
		return rc;
	wire_rx = rte_ring_create("dpm_rx", 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	wire_tx = rte_ring_create("dpm_tx", 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	peer_pool = rte_pktmbuf_pool_create(
	    "dpm_peer", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (wire_rx == NULL || wire_tx == NULL || peer_pool == NULL ||
	    rte_eth_from_rings("dpm", &wire_rx, 1, &wire_tx, 1, SOCKET_ID_ANY) < 0)
		abort();
	two_q[0] = rte_ring_create("dpm2_0", 64, SOCKET_ID_ANY, 0);
	two_q[1] = rte_ring_create("dpm2_1", 64, SOCKET_ID_ANY, 0);
	if (two_q[0] == NULL || two_q[1] == NULL ||
	    rte_eth_from_rings("dpm2", two_q, 2, two_q, 2, SOCKET_ID_ANY) < 0)
		abort();
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	__atomic_store_n(&plugged, true, __ATOMIC_RELEASE);
	return rc;
}

/* --- helpers --- */

/* The dataplane's log (its stderr) holds needle yet. */
static bool
log_has(const char *needle)
{
	fflush(stderr);
	return file_has(errlog, needle);
}

/* dp_main with these arguments; stdout and stderr to outlog and errlog (truncated first) */
static int
run_main(const char *const *args)
{
	char *argv[16];
	int argc = 0, rc, o1, o2, fd;

	argv[argc++] = "edgegw-dataplane";
	for (; *args != NULL; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	o1 = dup(1);
	o2 = dup(2);
	fd = open(outlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 1);
	close(fd);
	fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	optind = 0; /* getopt starts over (glibc) */
	rc = dp_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(o1, 1);
	dup2(o2, 2);
	close(o1);
	close(o2);
	dp_config_free(&dp_state.cfg);
	memset(&dp_state.cfg, 0, sizeof(dp_state.cfg));
	return rc;
}

/* A config for these tests: the EAL with no hugepages, no PCI and nothing left on disk, the
 * services on, the channel to the test's end; what a test changes in cf. */
struct cf {
	const char *lcores, *eal, *device, *log_level, *mqtt, *state_dir;
	unsigned workers, mbufs, max_flows, idle_sleep_us, mtu;
	bool no_echo;
};

static void
write_config(const struct cf *c)
{
	char text[4096];

	snprintf(text, sizeof(text),
	    "dataplane:\n"
	    "  eal: [--no-huge, --no-pci, -m, \"256\", --no-shconf, --file-prefix, \"dpm%d\", "
	    "--lcores, \"%s\", --log-level, \"*:info\"%s]\n"
	    "  log_level: %s\n"
	    "  port: {device: %s, ipv4: 198.18.0.1/24, rx_desc: 256, tx_desc: 256, mtu: %u}\n"
	    "  workers: %u\n"
	    "  mbufs: %u\n"
	    "  idle_sleep_us: %u\n"
	    "  tcp: {max_flows: %u, max_half_open: 16, rcvbuf: 16k, sndbuf: 16k}\n"
	    "  services:\n"
	    "    echo: {enabled: %s, port: 7}\n"
	    "    discard: {enabled: true, port: 9}\n"
	    "  channel: {enabled: true, path: %s, reconnect_max: 100ms}\n"
	    "  mqtt:\n"
	    "    enabled: true\n"
	    "    port: 1883\n"
	    "    max_connections: 16\n"
	    "    state_dir: %s\n"
	    "    sys_interval: 0s\n"
	    "%s"
	    "uplink:\n"
	    "  site: ut\n"
	    "  rules:\n"
	    "    - {match: \"plant/#\", topic: \"site/{site}/{topic}\", qos: keep, class: normal, "
	    "durable: true}\n",
	    (int)getpid(), c->lcores ? c->lcores : "0@0,1@1", c->eal ? c->eal : "",
	    c->log_level ? c->log_level : "info", c->device ? c->device : PORT_NAME, c->mtu,
	    c->workers ? c->workers : 1, c->mbufs ? c->mbufs : 2048,
	    c->idle_sleep_us ? c->idle_sleep_us : 100, c->max_flows ? c->max_flows : 64,
	    c->no_echo ? "false" : "true", chanpath, c->state_dir ? c->state_dir : statedir,
	    c->mqtt ? c->mqtt : "");
	write_file(cfg, text);
}

/* --- before the EAL: options and configs --- */

static void
test_options(void **state)
{
	(void)state;
	assert_int_equal(run_main((const char *[]){ "--help", NULL }), 0);
	assert_true(file_has(outlog, "usage: edgegw-dataplane [-c CONFIG] [--check]"));
	assert_int_equal(run_main((const char *[]){ "-V", NULL }), 0);
	assert_true(file_has(outlog, "edgegw-dataplane " EDGEGW_VERSION "\n"));
	assert_int_equal(run_main((const char *[]){ "--bogus", NULL }), 2);
	assert_true(file_has(errlog, "usage: edgegw-dataplane"));
	assert_false(file_has(outlog, "usage"));
}

static void
test_check_and_plan(void **state)
{
	char bad[320];

	(void)state;
	write_config(&(struct cf){ 0 });
	assert_int_equal(run_main((const char *[]){ "-c", cfg, "--check", NULL }), 0);
	assert_true(file_has(outlog, ": ok\n"));
	/* a vdev with --no-huge: nothing to prepare */
	assert_int_equal(run_main((const char *[]){ "-c", cfg, "--prepare-plan", NULL }), 0);
	{
		char *out = slurp(outlog);

		assert_string_equal(out, "");
		free(out);
	}
	/* a PCI port on hugepages: both steps, one line each */
	snprintf(bad, sizeof(bad), "%s/pci.yaml", dir);
	write_file(bad,
	    "dataplane:\n  eal: [-l, \"0-1\"]\n  hugepages: {size: 2M, total: 1G}\n"
	    "  port: {device: \"0000:01:00.0\", ipv4: 198.18.0.1/24, driver: "
	    "uio_pci_generic}\n");
	assert_int_equal(run_main((const char *[]){ "-c", bad, "--prepare-plan", NULL }), 0);
	{
		char *out = slurp(outlog);

		assert_string_equal(
		    out, "hugepages 2048K 1073741824\nbind 0000:01:00.0 uio_pci_generic\n");
		free(out);
	}
	/* a bad config: rejected with its line, exit 1, nothing started */
	snprintf(bad, sizeof(bad), "%s/bad.yaml", dir);
	write_file(bad,
	    "dataplane:\n  eal: [a]\n  port: {device: x, ipv4: 198.18.0.1/24}\n"
	    "  workerz: 1\n");
	assert_int_equal(run_main((const char *[]){ "-c", bad, NULL }), 1);
	assert_true(file_has(errlog, "edgegw-dataplane: config rejected: "));
	assert_true(file_has(errlog, "bad.yaml:4:"));
	assert_false(file_has(errlog, "EAL"));
}

/* --- start-up failures: rte_exit, each in a child of its own --- */

/* Where the EAL of a run with our file prefix keeps its runtime files (eal_create_runtime_dir):
 * removed after each run, so that nothing is left in /var/run/dpdk. */
static const char *
eal_run_dir(void)
{
	static char path[PATH_MAX];
	const char *base = getuid() == 0 ? "/var/run" : getenv("XDG_RUNTIME_DIR");

	snprintf(path, sizeof(path), "%s/dpdk/dpm%d", base != NULL ? base : "/tmp", (int)getpid());
	return path;
}

static void
system_cat(const char *path)
{
	char *text = slurp(path);

	fprintf(stdout, "--- %s:\n%s---\n", path, text != NULL ? text : "(none)");
	free(text);
}

/* dp_main in a child with cfg as written: its exit status; its stderr in errlog */
static int
run_child(void)
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 2);
		dup2(fd, 1);
		close(fd);
		optind = 0;
		_exit(dp_main(3, (char *[]){ "edgegw-dataplane", "-c", cfg, NULL }) == 0 ? 0 : 99);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	dirs_remove_flat(eal_run_dir());
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
		system_cat(errlog);
	assert_true(WIFEXITED(status)); /* a crash is never the expected failure */
	return WEXITSTATUS(status);
}

/* errlog holds needle; if not, it is shown */
static bool
log_says(const char *needle)
{
	if (file_has(errlog, needle))
		return true;
	fprintf(stdout, "# no '%s' in:\n", needle);
	system_cat(errlog);
	return false;
}

static void
test_startup_failures(void **state)
{
	char file[320];

	(void)state;
	/* an EAL argument the EAL refuses: its own error line came through our logger */
	write_config(&(struct cf){ .eal = ", --no-such-eal-option" });
	assert_int_equal(run_child(), 1);
	assert_true(log_says("EAL init failed (dataplane.eal in "));
	assert_true(log_says("dpdk: "));

	/* a port that is neither probed nor a devargs string a driver takes: the ports there are
	 * are listed */
	write_config(&(struct cf){ .device = "net_nosuchdriver0" });
	assert_int_equal(run_child(), 1);
	assert_true(log_says("nic: available port 0: " PORT_NAME));
	assert_true(log_says("port 'net_nosuchdriver0' not found (dataplane.port.device)"));

	/* more workers than the EAL has lcores (a form of --lcores the config check leaves to the
	 * EAL: two lcores on one cpu) */
	write_config(&(struct cf){ .lcores = "(0-1)@0", .workers = 2 });
	assert_int_equal(run_child(), 1);
	assert_true(log_says(
	    "2 worker(s) configured but the EAL has 1 worker lcore(s) (-l in dataplane.eal)"));

	/* two workers on a port with one queue */
	write_config(&(struct cf){ .lcores = "(0-2)@0", .workers = 2 });
	assert_int_equal(run_child(), 1);
	assert_true(log_says("has 1 queues, 2 workers asked for"));
	assert_true(log_says("port '" PORT_NAME "' setup failed: Invalid argument"));

	/* two workers on a port with two queues but no RSS to spread the flows over them */
	write_config(&(struct cf){ .lcores = "(0-2)@0", .workers = 2, .device = PORT_NAME "2" });
	assert_int_equal(run_child(), 1);
	assert_true(log_says("(net_ring) has no RSS for IPv4/TCP: use one worker"));
	assert_true(log_says("port '" PORT_NAME "2' setup failed: Operation not supported"));

	/* more mbufs than the EAL's memory holds */
	write_config(&(struct cf){ .mbufs = 1u << 24 });
	assert_int_equal(run_child(), 1);
	assert_true(log_says("mbuf pool of 16777216 on socket"));

	/* a port hot-plugged from its devargs (net_null, not in the EAL's arguments), then a flow
	 * table larger than the memory */
	write_config(&(struct cf){
	    .device = "net_null_dpm", .max_flows = 4u << 20, .mtu = 1400, .no_echo = true });
	assert_int_equal(run_child(), 1);
	assert_true(log_says("(net_null) started: 1 queue(s)"));
	assert_true(log_says("lcore 1 init: "));

	/* the broker's state dir is a file: the MQTT service does not start */
	snprintf(file, sizeof(file), "%s/not-a-dir", dir);
	write_file(file, "x");
	write_config(&(struct cf){ .state_dir = file });
	assert_int_equal(run_child(), 1);
	assert_true(log_says("mqtt service on port 1883: "));
}

/* --- the dataplane running --- */

static pthread_t dp_thread;
static int dp_rc = -1;
static bool running_ok;
static int notify_fd = -1;
static char notes[8192]; /* what the dataplane told systemd, in order */

static void *
dp_thread_main(void *arg)
{
	(void)arg;
	optind = 0;
	dp_rc = dp_main(3, (char *[]){ "edgegw-dataplane", "-c", cfg, NULL });
	return NULL;
}

static void
notify_read(void)
{
	char buf[512];
	ssize_t n;

	while ((n = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[n] = '\0';
		strncat(notes, buf, sizeof(notes) - strlen(notes) - 2);
		strcat(notes, "|");
	}
}

/* A peer's TCP connection: a small client, enough for request and answer. */
struct peer {
	uint16_t port, dport;
	uint32_t snd_nxt, rcv_nxt;
	bool established, fin, rst;
	uint8_t rx[16384];
	size_t rxlen;
};

static struct rte_ether_addr gw_mac, peer_mac = { { 0x02, 0, 0, 0, 0, 0x02 } };
static struct peer *peers[8];
static unsigned n_peers, arp_replies;

static struct rte_mbuf *
frame(uint16_t ether_type, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(peer_pool);
	struct rte_ether_hdr *eh;

	assert_non_null(m);
	eh = (struct rte_ether_hdr *)rte_pktmbuf_append(m, (uint16_t)(sizeof(*eh) + len));
	assert_non_null(eh);
	eh->dst_addr = gw_mac;
	eh->src_addr = peer_mac;
	eh->ether_type = rte_cpu_to_be_16(ether_type);
	return m;
}

static void
wire_send(struct rte_mbuf *m)
{
	while (rte_ring_enqueue(wire_rx, m) != 0)
		pause_ms(1);
}

static void
arp_send(uint16_t op, const struct rte_ether_addr *tha, uint32_t tip)
{
	struct rte_mbuf *m = frame(RTE_ETHER_TYPE_ARP, sizeof(struct rte_arp_hdr));
	struct rte_arp_hdr *a =
	    rte_pktmbuf_mtod_offset(m, struct rte_arp_hdr *, sizeof(struct rte_ether_hdr));

	if (op == RTE_ARP_OP_REQUEST)
		memset(&rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->dst_addr, 0xff, 6);
	a->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	a->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	a->arp_hlen = 6;
	a->arp_plen = 4;
	a->arp_opcode = rte_cpu_to_be_16(op);
	a->arp_data.arp_sha = peer_mac;
	a->arp_data.arp_sip = rte_cpu_to_be_32(PEER_IP);
	a->arp_data.arp_tha = *tha;
	a->arp_data.arp_tip = rte_cpu_to_be_32(tip);
	wire_send(m);
}

static void
tcp_send_seg(struct peer *p, uint8_t flags, const void *data, size_t len)
{
	size_t hl = sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_tcp_hdr);
	struct rte_mbuf *m = frame(RTE_ETHER_TYPE_IPV4, hl + len);
	struct rte_ipv4_hdr *ip =
	    rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)(ip + 1);

	memset(ip, 0, hl);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(hl + len));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_TCP;
	ip->src_addr = rte_cpu_to_be_32(PEER_IP);
	ip->dst_addr = rte_cpu_to_be_32(OUR_IP);
	th->src_port = rte_cpu_to_be_16(p->port);
	th->dst_port = rte_cpu_to_be_16(p->dport);
	th->sent_seq = rte_cpu_to_be_32(p->snd_nxt);
	th->recv_ack = rte_cpu_to_be_32((flags & RTE_TCP_ACK_FLAG) ? p->rcv_nxt : 0);
	th->data_off = 5 << 4;
	th->tcp_flags = flags;
	th->rx_win = rte_cpu_to_be_16(65535);
	if (len > 0)
		memcpy(th + 1, data, len);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	th->cksum = rte_ipv4_udptcp_cksum(ip, th);
	p->snd_nxt += (uint32_t)len + ((flags & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG)) ? 1 : 0);
	wire_send(m);
}

static struct peer *
peer_of(uint16_t port)
{
	for (unsigned i = 0; i < n_peers; i++)
		if (peers[i]->port == port)
			return peers[i];
	return NULL;
}

/* What the dataplane sent: ARP answered, TCP payload taken in order, every segment acked. */
static void
pump(void)
{
	void *objs[32];
	unsigned n;

	notify_read();
	if (!__atomic_load_n(&plugged, __ATOMIC_ACQUIRE))
		return; /* the EAL is not up yet */
	n = rte_ring_dequeue_burst(wire_tx, objs, RTE_DIM(objs), NULL);
	for (unsigned i = 0; i < n; i++) {
		struct rte_mbuf *m = objs[i];
		struct rte_ether_hdr *eh = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

		if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
			struct rte_arp_hdr *a = (struct rte_arp_hdr *)(eh + 1);

			if (a->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY))
				arp_replies++;
			else if (a->arp_data.arp_tip == rte_cpu_to_be_32(PEER_IP))
				arp_send(RTE_ARP_OP_REPLY, &a->arp_data.arp_sha, OUR_IP);
		} else if (eh->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
			struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eh + 1);
			struct rte_tcp_hdr *th =
			    (struct rte_tcp_hdr *)((uint8_t *)ip + rte_ipv4_hdr_len(ip));
			struct peer *p = peer_of(rte_be_to_cpu_16(th->dst_port));

			if (ip->next_proto_id == IPPROTO_TCP && p != NULL) {
				uint32_t seq = rte_be_to_cpu_32(th->sent_seq);
				size_t hl = rte_ipv4_hdr_len(ip) + (size_t)(th->data_off >> 4) * 4;
				size_t len = rte_be_to_cpu_16(ip->total_length) - hl;

				if (th->tcp_flags & RTE_TCP_RST_FLAG)
					p->rst = true;
				if (th->tcp_flags & RTE_TCP_SYN_FLAG) {
					p->rcv_nxt = seq + 1;
					p->established = true;
					tcp_send_seg(p, RTE_TCP_ACK_FLAG, NULL, 0);
				} else if (seq == p->rcv_nxt && !p->rst) {
					assert_true(p->rxlen + len <= sizeof(p->rx));
					memcpy(p->rx + p->rxlen, (uint8_t *)ip + hl, len);
					p->rxlen += len;
					p->rcv_nxt += (uint32_t)len;
					if (th->tcp_flags & RTE_TCP_FIN_FLAG) {
						p->rcv_nxt++;
						p->fin = true;
					}
					if (len > 0 || (th->tcp_flags & RTE_TCP_FIN_FLAG))
						tcp_send_seg(p, RTE_TCP_ACK_FLAG, NULL, 0);
				}
			}
		}
		rte_pktmbuf_free(m);
	}
}

#define WAIT_FOR(cond)                                      \
	({                                                  \
		uint64_t dl_ = now_ms() + DEADLINE_MS;      \
		bool ok_;                                   \
		while (!(ok_ = (cond)) && now_ms() < dl_) { \
			pump();                             \
			pause_ms(1);                        \
		}                                           \
		ok_;                                        \
	})

static struct peer *
peer_connect(uint16_t port, uint16_t dport)
{
	struct peer *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	assert_true(n_peers < RTE_DIM(peers));
	peers[n_peers++] = p;
	p->port = port;
	p->dport = dport;
	p->snd_nxt = 1000u * port;
	tcp_send_seg(p, RTE_TCP_SYN_FLAG, NULL, 0);
	assert_true(WAIT_FOR(p->established));
	return p;
}

static void
peer_say(struct peer *p, const void *data, size_t len)
{
	tcp_send_seg(p, RTE_TCP_PSH_FLAG | RTE_TCP_ACK_FLAG, data, len);
}

/* the peer has received want (from the start of what it has not consumed); consumed */
static bool
peer_got(struct peer *p, const void *want, size_t len)
{
	if (p->rxlen < len || memcmp(p->rx, want, len) != 0)
		return false;
	memmove(p->rx, p->rx + len, p->rxlen - len);
	p->rxlen -= len;
	return true;
}

/* a CONNECT 3.1.1, client id id, clean session as given, keepalive 60 s; CONNACK expected */
static void
mqtt_connect(struct peer *p, const char *id, bool clean)
{
	uint8_t pkt[64] = { 0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 4, clean ? 0x02 : 0x00, 0, 60 };
	size_t idl = strlen(id), n = 12;
	const uint8_t connack[] = { 0x20, 2, 0, 0 };

	pkt[n++] = 0;
	pkt[n++] = (uint8_t)idl;
	memcpy(pkt + n, id, idl);
	n += idl;
	pkt[1] = (uint8_t)(n - 2);
	peer_say(p, pkt, n);
	assert_true(WAIT_FOR(peer_got(p, connack, sizeof(connack))));
}

/* --- telemetry: the socket edgegwctl and dpdk-telemetry.py use --- */

static int tel_fd = -1;

static void
tel_open(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[1024];

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.80s/dpdk_telemetry.v2", runtime_dir);
	tel_fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_true(tel_fd >= 0);
	assert_int_equal(connect(tel_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_true(recv(tel_fd, buf, sizeof(buf), 0) > 0); /* its greeting */
}

/* The answer to one command (a JSON object, malloc'd) */
static char *
tel(const char *cmd)
{
	char *buf = malloc(64 * 1024);
	ssize_t n;

	assert_non_null(buf);
	assert_int_equal(send(tel_fd, cmd, strlen(cmd), 0), (ssize_t)strlen(cmd));
	n = recv(tel_fd, buf, 64 * 1024 - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	return buf;
}

/* the answer to cmd holds want */
static bool
tel_has(const char *cmd, const char *want)
{
	char *r = tel(cmd);
	bool has = strstr(r, want) != NULL;

	if (!has)
		fprintf(stdout, "# %s -> %s (wanted %s)\n", cmd, r, want);
	free(r);
	return has;
}

/* occurrences of needle in text */
static unsigned
count(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *at = text; (at = strstr(at, needle)) != NULL; at++)
		n++;
	return n;
}

/* the u64 that follows "key": in the answer to cmd */
static uint64_t
tel_u64(const char *cmd, const char *key)
{
	char *r = tel(cmd), needle[128], *at;
	uint64_t v;

	snprintf(needle, sizeof(needle), "\"%s\":", key);
	at = strstr(r, needle);
	if (at == NULL)
		fprintf(stdout, "# %s -> %s (no %s)\n", cmd, r, key);
	assert_non_null(at);
	v = strtoull(at + strlen(needle), NULL, 10);
	free(r);
	return v;
}

/* --- the channel's other end (the agent): records taken, made durable when the test says --- */

static struct dpchan_server *chan;
static uint64_t chan_token, chan_records;
static char chan_topic[128];

static int
sink_submit(void *arg, const struct dpchan_hello *from, const struct dpchan_rec *r, uint64_t *token)
{
	(void)arg, (void)from;
	snprintf(chan_topic, sizeof(chan_topic), "%.*s", (int)r->topic_len, r->topic);
	chan_records++;
	*token = ++chan_token;
	return 0;
}

static const struct dpchan_sink_ops sink_ops = { .submit = sink_submit };

static bool
chan_run(void)
{
	dpchan_server_run(chan);
	return true;
}

static void
test_running(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dpchan_server_config scfg = { .path = chanpath };
	struct peer *e, *s, *q;
	char *r;
	int saved;

	(void)state;
	/* three lcores, one worker: the third is left alone */
	write_config(&(struct cf){ .lcores = "0@0,1@1,2@0", .mqtt = "    max_sessions: 100\n" });
	chan = dpchan_server_new(&scfg, &sink_ops, NULL);
	assert_non_null(chan);
	/* systemd's side: the notifications, and a watchdog of 200 ms */
	assert_true(strlen(sockpath) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, sockpath, strlen(sockpath) + 1);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_int_equal(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sockpath, 1);
	setenv("WATCHDOG_USEC", "200000", 1);

	fflush(stderr);
	saved = dup(2);
	{
		int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 2);
		close(fd);
	}
	assert_int_equal(pthread_create(&dp_thread, NULL, dp_thread_main, NULL), 0);
	assert_true(WAIT_FOR(log_has("ready: 1 worker(s), serving on port")));
	assert_true(WAIT_FOR(strstr(notes, "READY=1\nSTATUS=1 worker(s) serving on " PORT_NAME)));
	assert_true(WAIT_FOR(strstr(notes, "WATCHDOG=1")));
	/* DPDK's lines through our logger with their level (EAL info lines at start) */
	assert_true(log_has("dpdk: "));
	/* a DPDK line longer than a line's buffer comes out in pieces, none lost */
	{
		char longline[1200];

		memset(longline, 'x', sizeof(longline) - 2);
		memcpy(longline + 600, "MARK", 4);
		longline[sizeof(longline) - 2] = '\n';
		longline[sizeof(longline) - 1] = '\0';
		rte_log(RTE_LOG_WARNING, RTE_LOGTYPE_USER1, "%s", longline);
		rte_log(RTE_LOG_ERR, RTE_LOGTYPE_USER1, "an error line\n");
		rte_log(RTE_LOG_INFO, RTE_LOGTYPE_USER1, "\n"); /* an empty line: none of ours */
		assert_true(WAIT_FOR(log_has("dpdk: xxxxx") && log_has("xMARKx")));
		assert_true(log_has("an error line"));
		assert_false(log_has("dpdk: \n"));
	}
	rte_eth_macaddr_get(0, &gw_mac);

	/* the link watch: the ring port is up */
	assert_true(WAIT_FOR(log_has("link up")));

	/* ARP: asked for our address, the dataplane answers */
	arp_send(RTE_ARP_OP_REQUEST, &(struct rte_ether_addr){ { 0 } }, OUR_IP);
	assert_true(WAIT_FOR(arp_replies == 1));

	/* echo: what is sent comes back; the peer's FIN is echoed as one */
	e = peer_connect(50007, 7);
	peer_say(e, "hello, echo", 11);
	assert_true(WAIT_FOR(peer_got(e, "hello, echo", 11)));
	tcp_send_seg(e, RTE_TCP_FIN_FLAG | RTE_TCP_ACK_FLAG, NULL, 0);
	assert_true(WAIT_FOR(e->fin));
	/* discard: taken, nothing back, closed with the peer's FIN */
	q = peer_connect(50009, 9);
	peer_say(q, "into the void", 13);
	tcp_send_seg(q, RTE_TCP_FIN_FLAG | RTE_TCP_ACK_FLAG, NULL, 0);
	assert_true(WAIT_FOR(q->fin));
	assert_int_equal(q->rxlen, 0);

	tel_open();
	/* the dataplane's figures */
	assert_int_equal(tel_u64("/edgegw/status", "workers"), 1);
	assert_int_equal(tel_u64("/edgegw/status", "link_up"), 1);
	assert_true(tel_u64("/edgegw/counters", "port_rx_pkts") >= 8);
	assert_true(tel_has("/edgegw/describe", "\"port_rx_pkts\":\""));
	assert_true(tel_has("/edgegw/kinds", "\"port_tx_drop\":\"drop\""));
	assert_int_equal(tel_u64("/edgegw/workers", "w0_lcore"), 1);
	assert_int_equal(tel_u64("/edgegw/workers", "w0_tcp_accepted"), 2);
	assert_true(tel_has("/edgegw/mem", "\"state_ESTABLISHED\":") &&
	    tel_has("/edgegw/mem", "\"mqtt_sessions\":0"));
	assert_true(tel_has("/edgegw/broker_describe", "\"CONN_OPENED\":\""));
	assert_true(tel_has("/edgegw/broker_kinds", "\"CONN_OPENED\":\"info\""));
	assert_true(tel_has("/edgegw/dpchan_describe", "\"FRAMES_TX\":\""));
	assert_true(tel_has("/edgegw/dpchan_kinds", "\"FRAMES_TX\":\"info\""));

	/* the channel to the agent: the worker connects to our end */
	assert_true(WAIT_FOR(chan_run() && dpchan_server_connected(chan) == 1));

	/* an MQTT client with a persistent session and a subscription */
	s = peer_connect(50100, 1883);
	mqtt_connect(s, "sensor-1", false);
	{
		const uint8_t sub[] = { 0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1 };
		const uint8_t suback[] = { 0x90, 3, 0, 1, 1 };

		peer_say(s, sub, sizeof(sub));
		assert_true(WAIT_FOR(peer_got(s, suback, sizeof(suback))));
	}
	assert_int_equal(tel_u64("/edgegw/broker", "CONN_OPENED"), 1);
	assert_true(tel_has("/edgegw/mem", "\"mqtt_sessions\":1"));

	/* listings: the session and its subscription; an offset past the end lists nothing */
	r = tel("/edgegw/sessions");
	assert_non_null(strstr(r, "\"total\":1"));
	assert_non_null(strstr(r, "sensor-1"));
	free(r);
	r = tel("/edgegw/sessions,5");
	assert_non_null(strstr(r, "\"total\":1"));
	assert_non_null(strstr(r, "\"offset\":5"));
	assert_null(strstr(r, "sensor-1"));
	free(r);
	r = tel("/edgegw/subscriptions");
	assert_non_null(strstr(r, "\"total\":1"));
	assert_non_null(strstr(r, "a/#"));
	free(r);
	assert_true(tel_has("/edgegw/retained", "\"total\":0"));
	assert_true(tel_has("/edgegw/sessions,", "\"offset\":0")); /* an empty offset: 0 */

	/* publish from the gateway: bad requests refused, good ones delivered */
	assert_true(tel_has("/edgegw/publish", "null"));
	assert_true(tel_has("/edgegw/publish,3,0,3,a/bx", "null"));  /* qos 3 */
	assert_true(tel_has("/edgegw/publish,0,2,3,a/bx", "null"));  /* retain 2 */
	assert_true(tel_has("/edgegw/publish,0,0,0,x", "null"));     /* no topic */
	assert_true(tel_has("/edgegw/publish,0,0,9,a/b", "null"));   /* topic cut short */
	assert_true(tel_has("/edgegw/publish,0,0,x", "null"));       /* not numbers */
	assert_true(tel_has("/edgegw/publish,0,0,200,a/b", "null")); /* a topic too long */
	assert_true(tel_has("/edgegw/publish,0,0,4,a/+b", "null"));  /* a wildcard: refused */
	assert_true(tel_has("/edgegw/publish,0,1,3,a/bhi", "\"matched\":1"));
	{
		const uint8_t pub[] = { 0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i' };

		assert_true(WAIT_FOR(peer_got(s, pub, sizeof(pub))));
	}
	assert_true(tel_has("/edgegw/publish,0,1,3,z/zretained", "\"matched\":0"));
	r = tel("/edgegw/retained");
	assert_non_null(strstr(r, "\"total\":2"));
	assert_non_null(strstr(r, "z/z"));
	free(r);
	assert_true(tel_has("/edgegw/retained_delete,z/z", "\"found\":1"));
	assert_true(tel_has("/edgegw/retained_delete,z/z", "\"found\":0"));
	assert_true(tel_has("/edgegw/retained_delete", "null"));
	assert_true(tel_has("/edgegw/retained", "\"total\":1"));
	/* a listing longer than a page (100 lines): the rest from the offset given */
	for (unsigned i = 0; i < 100; i++) {
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "/edgegw/publish,0,1,5,r/%03uv", i);
		assert_true(tel_has(cmd, "\"matched\":0"));
	}
	/* the first page holds 100 of the 101, the page from offset 100 the last one */
	{
		char *p1 = tel("/edgegw/retained"), *p2 = tel("/edgegw/retained,100");

		assert_non_null(strstr(p1, "\"total\":101"));
		assert_non_null(strstr(p2, "\"total\":101"));
		assert_int_equal(count(p1, "r/0") + count(p2, "r/0"), 100);
		assert_int_equal(count(p1, "a/b") + count(p2, "a/b"), 1);
		assert_int_equal(count(p1, "\",\"") + 1, 100); /* lines, comma separated */
		assert_int_equal(count(p2, "\",\""), 0);
		free(p1);
		free(p2);
	}

	/* store and forward: a QoS 1 PUBLISH the rules send up is acknowledged once the agent
	 * says it is durable, not before */
	{
		const uint8_t pub[] = { 0x32, 12, 0, 7, 'p', 'l', 'a', 'n', 't', '/', 't', 0, 9,
			'v' };
		const uint8_t puback[] = { 0x40, 2, 0, 9 };

		peer_say(s, pub, sizeof(pub));
		assert_true(WAIT_FOR(chan_run() && chan_records == 1));
		assert_string_equal(chan_topic, "plant/t");
		assert_int_equal(s->rxlen, 0);
		dpchan_server_durable(chan, 1, 1, 0);
		assert_true(WAIT_FOR(chan_run() && peer_got(s, puback, sizeof(puback))));
		assert_true(tel_u64("/edgegw/dpchan", "RECS_TX") >= 1);
	}
	/* no rule for x/y: acknowledged at once, nothing goes up; a QoS 0 message the durable rule
	 * matches goes up best effort */
	{
		const uint8_t local[] = { 0x32, 8, 0, 3, 'x', '/', 'y', 0, 10, 'v' };
		const uint8_t puback[] = { 0x40, 2, 0, 10 };
		const uint8_t be[] = { 0x30, 10, 0, 7, 'p', 'l', 'a', 'n', 't', '/', 'q', 'w' };

		peer_say(s, local, sizeof(local));
		assert_true(WAIT_FOR(chan_run() && peer_got(s, puback, sizeof(puback))));
		assert_int_equal(chan_records, 1);
		peer_say(s, be, sizeof(be));
		assert_true(WAIT_FOR(chan_run() && chan_records == 2));
		assert_string_equal(chan_topic, "plant/q");
	}
	/* the cloud's message down the channel reaches the subscriber */
	{
		struct dpchan_rec down = { .qos = 0,
			.topic = "a/down",
			.topic_len = 6,
			.payload = (const uint8_t *)"cmd",
			.payload_len = 3 };
		const uint8_t pub[] = { 0x30, 11, 0, 6, 'a', '/', 'd', 'o', 'w', 'n', 'c', 'm',
			'd' };

		assert_int_equal(dpchan_server_down(chan, &down), 0);
		assert_true(WAIT_FOR(chan_run() && peer_got(s, pub, sizeof(pub))));
	}

	/* the link watch says when the link goes down */
	assert_int_equal(rte_eth_dev_set_link_down(0), 0);
	assert_true(WAIT_FOR(log_has("port 0 link down")));
	assert_int_equal(rte_eth_dev_set_link_up(0), 0);

	/* kick: the client is disconnected, its session stays; kick_purge removes it */
	assert_true(tel_has("/edgegw/kick", "null"));
	assert_true(tel_has("/edgegw/kick,", "null"));
	assert_true(tel_has("/edgegw/kick,nobody", "\"found\":0"));
	assert_true(tel_has("/edgegw/kick,sensor-1", "\"found\":1"));
	assert_true(WAIT_FOR(s->fin));
	tcp_send_seg(s, RTE_TCP_FIN_FLAG | RTE_TCP_ACK_FLAG, NULL, 0);
	assert_true(tel_has("/edgegw/sessions", "\"total\":1"));
	assert_true(tel_has("/edgegw/kick_purge,sensor-1", "\"found\":1"));
	assert_true(tel_has("/edgegw/sessions", "\"total\":0"));
	{
		char big[1200];

		memset(big, 'k', sizeof(big) - 1);
		memcpy(big, "/edgegw/kick,", 13);
		big[sizeof(big) - 1] = '\0';
		assert_true(tel_has(big, "null")); /* longer than a client id can be */
	}

	/* SIGHUP: a changed config, the log level and a broker limit live, the workers named as
	 * needing a restart; then a bad one, refused, the running one stays */
	write_config(&(struct cf){
	    .log_level = "debug", .mqtt = "    max_sessions: 200\n", .idle_sleep_us = 200 });
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(log_has("setting(s) changed live; needs a restart (running values "
				     "kept): ")));
	assert_true(log_has("idle_sleep_us"));
	/* the log level changed live: DPDK's debug lines come through now */
	rte_log_set_level(RTE_LOGTYPE_USER1, RTE_LOG_DEBUG);
	rte_log(RTE_LOG_DEBUG, RTE_LOGTYPE_USER1, "a debug line\n");
	assert_true(WAIT_FOR(log_has("[debug] dpdk: a debug line")));
	assert_true(WAIT_FOR(strstr(notes, "RELOADING=1")));
	/* back to info, the rest as running: live only, nothing named for a restart */
	write_config(&(struct cf){ .lcores = "0@0,1@1,2@0", .mqtt = "    max_sessions: 100\n" });
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(log_has("setting(s) changed live\n")));
	write_file(cfg, "dataplane:\n  eal: [a]\n  workers: [\n");
	kill(getpid(), SIGHUP);
	assert_true(WAIT_FOR(log_has("reload: config rejected, the running one stays: ")));

	/* SIGTERM: the workers leave, the counters are logged, the port closed, the EAL ends */
	close(tel_fd);
	kill(getpid(), SIGTERM);
	assert_int_equal(pthread_join(dp_thread, NULL), 0);
	assert_int_equal(dp_rc, 0);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	notify_read();
	assert_non_null(strstr(notes, "STOPPING=1"));
	assert_true(log_has("counter port_rx_pkts = "));
	assert_true(log_has("stopped"));
	for (unsigned i = 0; i < n_peers; i++)
		free(peers[i]);
	dpchan_server_free(chan);
	close(notify_fd);
	dirs_remove_flat(runtime_dir);
	assert_int_equal(access(runtime_dir, F_OK), -1);
	running_ok = true;
}

static int
group_teardown(void **state)
{
	char cmd[600];

	(void)state;
	if (!running_ok) {
		dup2(1, 2); /* cmocka's word on it, and the dataplane's log */
		system_cat(errlog);
	}
	dirs_remove_flat(eal_run_dir()); /* also when a test failed half way */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_check_and_plan),
		cmocka_unit_test(test_startup_failures),
		cmocka_unit_test(test_running),
	};

	snprintf(dir, sizeof(dir), "/tmp/egw-dpmain-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(cfg, sizeof(cfg), "%s/gateway.yaml", dir);
	snprintf(errlog, sizeof(errlog), "%s/err.log", dir);
	snprintf(outlog, sizeof(outlog), "%s/out.log", dir);
	snprintf(sockpath, sizeof(sockpath), "%s/notify.sock", dir);
	snprintf(chanpath, sizeof(chanpath), "%s/dpchan.sock", dir);
	snprintf(statedir, sizeof(statedir), "%s/broker", dir);
	mkdir(statedir, 0700);
	return cmocka_run_group_tests(tests, NULL, group_teardown);
}
