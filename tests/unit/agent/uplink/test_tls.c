/*
 * test_tls.c: the uplink's TLS layer (agent/uplink/tls.c) against an mbedTLS server on the
 * other end of a socketpair, in a thread. The certificates are made by the test itself (a CA,
 * server and client certificates signed by it, one expired, one for another host, one
 * self-signed) so that nothing depends on a tool or on today's date. Refusals must say why
 * (-EACCES and the verification text) and forget the saved session; a second connection
 * resumes the first's session; a silent server leaves the handshake waiting, not blocked; a
 * server that closes mid-handshake, or wants a client certificate we lack, fails it.
 * (tls.c has no pre-shared keys: the uplink is configured with certificates only.)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/x509_crt.h>

#include "tls.h"

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static char dir[64];

/* ---- certificates ---- */

static void
gen_key(mbedtls_pk_context *k, const char *name)
{
	unsigned char pem[2048];
	char path[128];
	FILE *f;

	mbedtls_pk_init(k);
	assert_int_equal(mbedtls_pk_setup(k, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
	assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*k),
			     mbedtls_ctr_drbg_random, &drbg),
	    0);
	assert_int_equal(mbedtls_pk_write_key_pem(k, pem, sizeof(pem)), 0);
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs((const char *)pem, f);
	fclose(f);
}

/* name.crt: subject CN=cn with subject_key, signed by issuer (its name and key). */
static void
gen_cert(const char *name, const char *cn, mbedtls_pk_context *subject_key, const char *issuer,
    mbedtls_pk_context *issuer_key, const char *not_before, const char *not_after, bool ca)
{
	static int serial_no;
	mbedtls_x509write_cert w;
	unsigned char pem[4096];
	mbedtls_mpi serial;
	char path[128], subject[64];
	FILE *f;

	snprintf(subject, sizeof(subject), "CN=%s,O=edgegw test", cn);
	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, subject_key);
	mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
	assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w, subject), 0);
	assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w, issuer), 0);
	assert_int_equal(mbedtls_mpi_lset(&serial, ++serial_no), 0);
	assert_int_equal(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
	assert_int_equal(mbedtls_x509write_crt_set_validity(&w, not_before, not_after), 0);
	assert_int_equal(mbedtls_x509write_crt_set_basic_constraints(&w, ca, -1), 0);
	assert_int_equal(
	    mbedtls_x509write_crt_pem(&w, pem, sizeof(pem), mbedtls_ctr_drbg_random, &drbg), 0);
	snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs((const char *)pem, f);
	fclose(f);
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
}

static int
group_setup(void **state)
{
	static const char ca_name[] = "CN=edgegw test CA,O=edgegw test";
	mbedtls_pk_context ca, srv, cli, other;

	(void)state;
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(
			     &drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)"t", 1),
	    0);
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(dir));
	gen_key(&ca, "ca");
	gen_key(&srv, "server");
	gen_key(&cli, "client");
	gen_key(&other, "other");
	gen_cert(
	    "ca", "edgegw test CA", &ca, ca_name, &ca, "20200101000000", "20991231235959", true);
	gen_cert(
	    "server", "localhost", &srv, ca_name, &ca, "20200101000000", "20991231235959", false);
	gen_cert("client", "edge1", &cli, ca_name, &ca, "20200101000000", "20991231235959", false);
	gen_cert(
	    "expired", "localhost", &srv, ca_name, &ca, "20000101000000", "20010101000000", false);
	gen_cert("selfsigned", "localhost", &other, "CN=localhost,O=edgegw test", &other,
	    "20200101000000", "20991231235959", false);
	mbedtls_pk_free(&ca);
	mbedtls_pk_free(&srv);
	mbedtls_pk_free(&cli);
	mbedtls_pk_free(&other);
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[96];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return system(cmd);
}

/* ---- the server, in a thread on its end of a socketpair (blocking) ---- */

enum srv_mode {
	SRV_ECHO,       /* handshake, echo one read, close_notify */
	SRV_DRAIN,      /* handshake, wait for go, read until the client closes, count the bytes */
	SRV_SILENT,     /* never answer the ClientHello */
	SRV_HANGUP,     /* read the ClientHello, close */
	SRV_CLIENTCERT, /* require a client certificate signed by the CA */
	SRV_PSK,        /* a pre-shared key (srv_psk) for the identity "edgegw-site" */
};

/* SRV_PSK's key (16 bytes); a test changes it to be refused. */
static unsigned char srv_psk[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99,
	0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };

struct srv {
	enum srv_mode mode;
	const char *cert; /* server.crt, expired.crt, selfsigned.crt */
	const char *key;
	int fd;
	int hs_rc; /* the server's handshake result */
	size_t drained;
	sem_t go; /* SRV_DRAIN reads only once posted: the client meets a full socket first */
	pthread_t th;
};

static mbedtls_ssl_cache_context cache; /* shared: a second connection can resume */

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	mbedtls_net_context net = { .fd = s->fd };
	mbedtls_x509_crt crt, ca;
	mbedtls_pk_context key;
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	unsigned char buf[16384];
	char path[128];
	int rc;

	if (s->mode == SRV_SILENT || s->mode == SRV_HANGUP) {
		if (s->mode == SRV_HANGUP)
			(void)recv(s->fd, buf, sizeof(buf), 0);
		else
			while (recv(s->fd, buf, sizeof(buf), 0) > 0)
				;
		close(s->fd);
		return NULL;
	}
	mbedtls_x509_crt_init(&crt);
	mbedtls_x509_crt_init(&ca);
	mbedtls_pk_init(&key);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	snprintf(path, sizeof(path), "%s/%s", dir, s->cert);
	s->hs_rc = mbedtls_x509_crt_parse_file(&crt, path);
	snprintf(path, sizeof(path), "%s/%s", dir, s->key);
	s->hs_rc |= mbedtls_pk_parse_keyfile(&key, path, NULL);
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	s->hs_rc |= mbedtls_x509_crt_parse_file(&ca, path);
	s->hs_rc |= mbedtls_ssl_config_defaults(
	    &conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	s->hs_rc |= mbedtls_ssl_conf_own_cert(&conf, &crt, &key);
	if (strcmp(s->cert, "server.crt") == 0) /* the others never saw our session */
		mbedtls_ssl_conf_session_cache(
		    &conf, &cache, mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
	if (s->mode == SRV_PSK)
		s->hs_rc |= mbedtls_ssl_conf_psk(
		    &conf, srv_psk, sizeof(srv_psk), (const unsigned char *)"edgegw-site", 11);
	if (s->mode == SRV_CLIENTCERT) {
		mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
		mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	}
	if (s->hs_rc == 0)
		s->hs_rc = mbedtls_ssl_setup(&ssl, &conf);
	mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv, NULL);
	while (s->hs_rc == 0 && (rc = mbedtls_ssl_handshake(&ssl)) != 0) {
		if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
			s->hs_rc = rc;
			break;
		}
	}
	if (s->hs_rc == 0 && s->mode == SRV_DRAIN) {
		while (sem_wait(&s->go) != 0)
			;
		while ((rc = mbedtls_ssl_read(&ssl, buf, sizeof(buf))) > 0)
			s->drained += (size_t)rc;
	} else if (s->hs_rc == 0) {
		rc = mbedtls_ssl_read(&ssl, buf, sizeof(buf));
		if (rc > 0)
			(void)mbedtls_ssl_write(&ssl, buf, (size_t)rc);
		(void)mbedtls_ssl_close_notify(&ssl);
	}
	close(s->fd);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_pk_free(&key);
	mbedtls_x509_crt_free(&ca);
	mbedtls_x509_crt_free(&crt);
	return NULL;
}

/* Starts a server; returns the client's end (non-blocking). */
static int
srv_start(struct srv *s, enum srv_mode mode, const char *cert)
{
	int sv[2];

	s->mode = mode;
	s->cert = cert;
	s->key = strcmp(cert, "selfsigned.crt") == 0 ? "other.key" : "server.key";
	s->hs_rc = 0;
	s->drained = 0;
	assert_int_equal(sem_init(&s->go, 0, 0), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->fd = sv[1];
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
	return sv[0];
}

static void
srv_join(struct srv *s, int cfd)
{
	close(cfd);
	pthread_join(s->th, NULL);
	sem_destroy(&s->go);
}

/* ---- the client ---- */

static struct uplink_tls_conf
conf_verify(void)
{
	struct uplink_tls_conf c = { .enabled = true, .verify = true, .resume = true };

	snprintf(c.ca, sizeof(c.ca), "%s/ca.crt", dir);
	return c;
}

static void
wait_fd(struct uplink_tls *t, int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = uplink_tls_wants_write(t) ? POLLOUT : POLLIN };

	(void)poll(&p, 1, ms);
}

/* Handshake until done or failed (bounded: a silent peer gives -EAGAIN). */
static int
handshake(struct uplink_tls *t, int fd, int rounds)
{
	int rc = -EAGAIN;

	for (int i = 0; i < rounds && (rc = uplink_tls_handshake(t)) == -EAGAIN; i++)
		wait_fd(t, fd, 50);
	return rc;
}

struct conn {
	struct uplink_tls_ctx *x;
	struct uplink_tls *t;
	struct srv s;
	int fd;
	uint64_t in, out;
};

static int
conn_open(struct conn *k, struct uplink_tls_ctx *x, enum srv_mode mode, const char *cert)
{
	k->x = x;
	k->in = k->out = 0;
	k->fd = srv_start(&k->s, mode, cert);
	k->t = uplink_tls_open(x, k->fd, &k->in, &k->out);
	assert_non_null(k->t);
	return handshake(k->t, k->fd, mode == SRV_SILENT ? 4 : 400);
}

static void
conn_close(struct conn *k)
{
	uplink_tls_close(k->t);
	srv_join(&k->s, k->fd);
}

static struct uplink_tls_ctx *
ctx(const struct uplink_tls_conf *c, const char *host)
{
	struct uplink_tls_ctx *x;
	char err[256];

	if (uplink_tls_ctx_create(&x, c, host, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	return x;
}

/* A verified handshake, data both ways, the server's close_notify read as the end; the
 * second connection resumes the first one's session. */
static void
test_verified_echo_and_resumption(void **state)
{
	struct uplink_tls_conf c = conf_verify();
	struct uplink_tls_ctx *x = ctx(&c, "localhost");
	struct conn k;
	char buf[64] = { 0 };
	ssize_t n = -EAGAIN;

	(void)state;
	assert_int_equal(conn_open(&k, x, SRV_ECHO, "server.crt"), 0);
	assert_false(uplink_tls_resumed(k.t));
	assert_string_equal(uplink_tls_version(k.t), "TLSv1.2");
	assert_true(k.in > 0 && k.out > 0); /* every byte on the socket counted */
	assert_int_equal(uplink_tls_write(k.t, "hello", 5), 5);
	for (int i = 0; i < 100 && (n = uplink_tls_read(k.t, buf, sizeof(buf))) == -EAGAIN; i++)
		wait_fd(k.t, k.fd, 50);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(uplink_tls_pending(k.t), 0);
	for (int i = 0; i < 100 && (n = uplink_tls_read(k.t, buf, sizeof(buf))) == -EAGAIN; i++)
		wait_fd(k.t, k.fd, 50);
	assert_int_equal(n, 0); /* close_notify */
	conn_close(&k);
	assert_int_equal(k.s.hs_rc, 0);

	assert_int_equal(conn_open(&k, x, SRV_ECHO, "server.crt"), 0);
	assert_true(uplink_tls_resumed(k.t));
	conn_close(&k);
	/* forgotten: a full handshake again */
	uplink_tls_ctx_forget(x);
	assert_int_equal(conn_open(&k, x, SRV_ECHO, "server.crt"), 0);
	assert_false(uplink_tls_resumed(k.t));
	conn_close(&k);
	uplink_tls_ctx_destroy(x);
}

/* Each refusal is -EACCES with mbedTLS's reason; the session saved before is forgotten
 * (a refused server gets nothing to resume). */
static void
test_refused_certificates(void **state)
{
	static const struct {
		const char *cert, *host, *why;
	} cases[] = {
		{ "expired.crt", "localhost", "expired" },
		{ "selfsigned.crt", "localhost", "not correctly signed" },
		{ "server.crt", "broker.example", "Common Name" },
	};
	struct uplink_tls_conf c = conf_verify();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct uplink_tls_ctx *x = ctx(&c, cases[i].host);
		struct conn k;

		if (strcmp(cases[i].host, "localhost") == 0) {
			/* a session to offer first */
			assert_int_equal(conn_open(&k, x, SRV_ECHO, "server.crt"), 0);
			conn_close(&k);
		}
		assert_int_equal(conn_open(&k, x, SRV_ECHO, cases[i].cert), -EACCES);
		if (strstr(uplink_tls_error(k.t), cases[i].why) == NULL)
			fail_msg("%s: '%s' does not say '%s'", cases[i].cert, uplink_tls_error(k.t),
			    cases[i].why);
		conn_close(&k);
		assert_int_not_equal(k.s.hs_rc, 0);
		/* the next handshake, to the right server (which still has the session), is a
		 * full one */
		if (strcmp(cases[i].host, "localhost") == 0) {
			assert_int_equal(conn_open(&k, x, SRV_ECHO, "server.crt"), 0);
			assert_false(uplink_tls_resumed(k.t));
			conn_close(&k);
		}
		uplink_tls_ctx_destroy(x);
	}
}

/* Without verification a self-signed server is taken (the client warns; mqttc.c). */
static void
test_no_verify_takes_self_signed(void **state)
{
	struct uplink_tls_conf c = { .enabled = true, .verify = false, .resume = false };
	struct uplink_tls_ctx *x = ctx(&c, "anything");
	struct conn k;

	(void)state;
	assert_int_equal(conn_open(&k, x, SRV_ECHO, "selfsigned.crt"), 0);
	conn_close(&k);
	/* resumption off: nothing saved, the next one is full */
	assert_int_equal(conn_open(&k, x, SRV_ECHO, "selfsigned.crt"), 0);
	assert_false(uplink_tls_resumed(k.t));
	conn_close(&k);
	uplink_tls_ctx_destroy(x);
}

/* A server that wants a client certificate: given one, the handshake completes; without, it
 * fails (not as a refused server certificate). */
static void
test_client_certificate(void **state)
{
	struct uplink_tls_conf c = conf_verify();
	struct uplink_tls_ctx *x;
	struct conn k;
	int rc;

	(void)state;
	snprintf(c.cert, sizeof(c.cert), "%s/client.crt", dir);
	snprintf(c.key, sizeof(c.key), "%s/client.key", dir);
	c.resume = false;
	x = ctx(&c, "localhost");
	assert_int_equal(conn_open(&k, x, SRV_CLIENTCERT, "server.crt"), 0);
	conn_close(&k);
	assert_int_equal(k.s.hs_rc, 0);
	uplink_tls_ctx_destroy(x);

	c = conf_verify();
	c.resume = false;
	x = ctx(&c, "localhost");
	rc = conn_open(&k, x, SRV_CLIENTCERT, "server.crt");
	assert_true(rc < 0 && rc != -EAGAIN && rc != -EACCES);
	assert_true(uplink_tls_error(k.t)[0] != '\0');
	conn_close(&k);
	assert_int_not_equal(k.s.hs_rc, 0);
	uplink_tls_ctx_destroy(x);
}

/* A server that never answers: the handshake waits for input, never blocks (the client's
 * connect_timeout ends it, test_mqttc.c); one that hangs up mid-handshake: a reset. */
static void
test_stall_and_hangup(void **state)
{
	struct uplink_tls_conf c = conf_verify();
	struct uplink_tls_ctx *x = ctx(&c, "localhost");
	struct conn k;

	(void)state;
	assert_int_equal(conn_open(&k, x, SRV_SILENT, "server.crt"), -EAGAIN);
	assert_false(uplink_tls_wants_write(k.t));
	assert_true(k.out > 0 && k.in == 0); /* the ClientHello left, nothing came */
	conn_close(&k);
	assert_int_equal(conn_open(&k, x, SRV_HANGUP, "server.crt"), -ECONNRESET);
	conn_close(&k);
	uplink_tls_ctx_destroy(x);
}

/* More than the socket holds: a write mbedTLS must repeat (WANT_WRITE) goes on with the same
 * bytes once the socket drains, and the server gets all of them. */
static void
test_write_backpressure(void **state)
{
	static char data[1 << 20];
	struct uplink_tls_conf c = conf_verify();
	struct uplink_tls_ctx *x = ctx(&c, "localhost");
	struct conn k;
	size_t off = 0;
	bool waited = false;

	(void)state;
	memset(data, 'd', sizeof(data));
	assert_int_equal(conn_open(&k, x, SRV_DRAIN, "server.crt"), 0);
	while (off < sizeof(data)) {
		ssize_t n = uplink_tls_write(k.t, data + off, sizeof(data) - off);

		if (n == -EAGAIN) {
			assert_true(uplink_tls_wants_write(k.t));
			if (!waited) /* the socket is full: now the server may read */
				assert_int_equal(sem_post(&k.s.go), 0);
			waited = true;
			wait_fd(k.t, k.fd, 100);
			continue;
		}
		assert_true(n > 0);
		off += (size_t)n;
	}
	if (!waited)
		assert_int_equal(sem_post(&k.s.go), 0); /* (the server is not left waiting) */
	assert_true(waited);
	uplink_tls_close(k.t); /* close_notify: the server stops reading */
	k.t = NULL;
	shutdown(k.fd, SHUT_WR);
	srv_join(&k.s, k.fd);
	assert_int_equal(k.s.drained, sizeof(data));
	uplink_tls_ctx_destroy(x);
}

/* Files that cannot be read or parsed: refused at create, saying which. */
static void
test_bad_files(void **state)
{
	static const struct {
		const char *ca, *cert, *key, *says;
	} cases[] = {
		{ "nosuch.crt", "", "", "CA file" },
		{ "server.key", "", "", "CA file" }, /* not a certificate */
		{ "ca.crt", "nosuch.crt", "client.key", "certificate" },
		{ "ca.crt", "client.crt", "nosuch.key", "key" },
		{ "ca.crt", "client.crt", "client.crt", "key" }, /* a certificate is not a key */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct uplink_tls_conf c = { .enabled = true, .verify = true };
		struct uplink_tls_ctx *x = NULL;
		char err[256] = "";

		snprintf(c.ca, sizeof(c.ca), "%s/%s", dir, cases[i].ca);
		if (cases[i].cert[0])
			snprintf(c.cert, sizeof(c.cert), "%s/%s", dir, cases[i].cert);
		if (cases[i].key[0])
			snprintf(c.key, sizeof(c.key), "%s/%s", dir, cases[i].key);
		assert_int_equal(uplink_tls_ctx_create(&x, &c, "h", err, sizeof(err)), -EINVAL);
		if (strstr(err, cases[i].says) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].says);
	}
	uplink_tls_ctx_destroy(NULL);
	uplink_tls_close(NULL);
}

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static struct uplink_tls_conf
conf_psk(const char *file)
{
	struct uplink_tls_conf c = { .enabled = true, .verify = true, .resume = false };

	snprintf(c.psk_identity, sizeof(c.psk_identity), "edgegw-site");
	snprintf(c.psk_file, sizeof(c.psk_file), "%s/%s", dir, file);
	return c;
}

/* TLS-PSK (no CA: only PSK suites offered; the key authenticates the server): the handshake
 * with the right key completes and carries data, in TLS 1.2; a server with another key is
 * refused (not as a certificate), and a key file that is not 16 to 32 bytes of hex, or is
 * missing, fails at load and says so. */
static void
test_psk(void **state)
{
	static const struct {
		const char *text, *says;
	} bad[] = {
		{ "00112233445566778899aabbccddee\n", "16 to 32 bytes" }, /* 15 bytes */
		{ "00112233445566778899aabbccddeeffzz\n", "hex digits" },
		{ "00112233445566778899aabbccddeeff0\n", "hex digits" }, /* odd */
		{ "0011223344556677889900112233445566778899001122334455667788990011223344\n",
		    "16 to 32 bytes" }, /* 35 bytes */
	};
	struct uplink_tls_conf c = conf_psk("good.psk");
	struct uplink_tls_ctx *x;
	struct conn k;
	char buf[16], err[256];
	ssize_t n = -1;
	int rc;

	(void)state;
	write_file("good.psk", "  00112233445566778899AABBCCDDEEFF\n", 0600);
	x = ctx(&c, "localhost");
	assert_int_equal(conn_open(&k, x, SRV_PSK, "server.crt"), 0);
	assert_string_equal(uplink_tls_version(k.t), "TLSv1.2");
	assert_int_equal(uplink_tls_write(k.t, "psk", 3), 3);
	for (int i = 0; i < 100 && (n = uplink_tls_read(k.t, buf, sizeof(buf))) == -EAGAIN; i++)
		wait_fd(k.t, k.fd, 50);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "psk", 3);
	conn_close(&k);
	assert_int_equal(k.s.hs_rc, 0);

	srv_psk[0] ^= 1; /* the server holds another key */
	rc = conn_open(&k, x, SRV_PSK, "server.crt");
	srv_psk[0] ^= 1;
	assert_true(rc < 0 && rc != -EAGAIN && rc != -EACCES);
	conn_close(&k);
	assert_int_not_equal(k.s.hs_rc, 0);
	uplink_tls_ctx_destroy(x);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("bad.psk", bad[i].text, 0600);
		c = conf_psk("bad.psk");
		x = NULL;
		assert_int_equal(uplink_tls_ctx_create(&x, &c, "h", err, sizeof(err)), -EINVAL);
		if (strstr(err, bad[i].says) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].says);
	}
	c = conf_psk("nosuch.psk");
	assert_int_equal(uplink_tls_ctx_create(&x, &c, "h", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "No such file"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verified_echo_and_resumption),
		cmocka_unit_test(test_refused_certificates),
		cmocka_unit_test(test_no_verify_takes_self_signed),
		cmocka_unit_test(test_client_certificate),
		cmocka_unit_test(test_stall_and_hangup),
		cmocka_unit_test(test_write_backpressure),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_psk),
	};

	signal(SIGPIPE, SIG_IGN); /* the server writes with write(): a closed client is EPIPE */
	mbedtls_ssl_cache_init(&cache);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
