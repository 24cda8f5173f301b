/*
 * tls.c: mbedTLS under the uplink (see tls.h). The BIO callbacks are ours so that every byte
 * on the wire is counted (bytes_in/out, and handshake bytes apart). Resumption: after each
 * full handshake the session is saved; the next connection offers it with
 * mbedtls_ssl_set_session(), and the server's answer tells whether it was taken. mbedTLS 2.28
 * has no accessor for that, so the handshake is stepped here and the step after the
 * ServerHello tells: a resumed session goes straight to the server's ChangeCipherSpec.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "tls.h"
#include "log.h"

struct uplink_tls_ctx {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca, cert;
	mbedtls_pk_context key;
	mbedtls_ssl_config conf;
	mbedtls_ssl_session saved;
	bool have_saved, resume, verify;
	char name[128];
};

struct uplink_tls {
	struct uplink_tls_ctx *x;
	mbedtls_ssl_context ssl;
	int fd;
	uint64_t *bytes_in, *bytes_out;
	size_t write_len; /* length of a write mbedTLS asked to repeat (WANT_WRITE) */
	bool want_write, resumed, done;
	char err[160];
};

static int
bio_send(void *arg, const unsigned char *buf, size_t len)
{
	struct uplink_tls *t = arg;
	ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);

	if (n < 0) {
		t->want_write = errno == EAGAIN || errno == EINTR;
		return t->want_write ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
	}
	*t->bytes_out += (uint64_t)n;
	return (int)n;
}

static int
bio_recv(void *arg, unsigned char *buf, size_t len)
{
	struct uplink_tls *t = arg;
	ssize_t n = recv(t->fd, buf, len, 0);

	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? MBEDTLS_ERR_SSL_WANT_READ
							   : MBEDTLS_ERR_NET_RECV_FAILED;
	if (n == 0)
		return MBEDTLS_ERR_NET_CONN_RESET;
	*t->bytes_in += (uint64_t)n;
	return (int)n;
}

static int
ctx_fail(char *err, size_t errlen, const char *what, const char *file, int rc)
{
	char e[100];

	mbedtls_strerror(rc, e, sizeof(e));
	snprintf(err, errlen, "tls: %s %s: %s", what, file, e);
	return -EINVAL;
}

static int
ctx_load(struct uplink_tls_ctx *x, const struct uplink_tls_conf *c, char *err, size_t errlen)
{
	int rc;

	if (c->ca[0] && (rc = mbedtls_x509_crt_parse_file(&x->ca, c->ca)) != 0)
		return ctx_fail(err, errlen, "CA file", c->ca, rc);
	if (c->cert[0] && (rc = mbedtls_x509_crt_parse_file(&x->cert, c->cert)) != 0)
		return ctx_fail(err, errlen, "certificate", c->cert, rc);
	if (c->key[0] && (rc = mbedtls_pk_parse_keyfile(&x->key, c->key, NULL)) != 0)
		return ctx_fail(err, errlen, "key", c->key, rc);
	if (c->cert[0] && (rc = mbedtls_ssl_conf_own_cert(&x->conf, &x->cert, &x->key)) != 0)
		return ctx_fail(err, errlen, "certificate and key", c->cert, rc);
	if (c->ca[0])
		mbedtls_ssl_conf_ca_chain(&x->conf, &x->ca, NULL);
	return 0;
}

int
uplink_tls_ctx_create(struct uplink_tls_ctx **out, const struct uplink_tls_conf *c,
    const char *host, char *err, size_t errlen)
{
	static const char pers[] = "edgegw-uplink";
	struct uplink_tls_ctx *x = calloc(1, sizeof(*x));
	int rc;

	if (x == NULL)
		return -ENOMEM;
	mbedtls_entropy_init(&x->entropy);
	mbedtls_ctr_drbg_init(&x->drbg);
	mbedtls_x509_crt_init(&x->ca);
	mbedtls_x509_crt_init(&x->cert);
	mbedtls_pk_init(&x->key);
	mbedtls_ssl_config_init(&x->conf);
	mbedtls_ssl_session_init(&x->saved);
	x->resume = c->resume;
	x->verify = c->verify;
	snprintf(x->name, sizeof(x->name), "%s", c->server_name[0] ? c->server_name : host);
	if ((rc = mbedtls_ctr_drbg_seed(&x->drbg, mbedtls_entropy_func, &x->entropy,
		 (const unsigned char *)pers, sizeof(pers) - 1)) != 0 ||
	    (rc = mbedtls_ssl_config_defaults(&x->conf, MBEDTLS_SSL_IS_CLIENT,
		 MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
		ctx_fail(err, errlen, "setup", "", rc);
		uplink_tls_ctx_destroy(x);
		return -EINVAL;
	}
	mbedtls_ssl_conf_rng(&x->conf, mbedtls_ctr_drbg_random, &x->drbg);
	mbedtls_ssl_conf_min_version(
	    &x->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_authmode(
	    &x->conf, c->verify ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_session_tickets(&x->conf,
	    c->resume ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	if (ctx_load(x, c, err, errlen) != 0) {
		uplink_tls_ctx_destroy(x);
		return -EINVAL;
	}
	*out = x;
	return 0;
}

void
uplink_tls_ctx_forget(struct uplink_tls_ctx *x)
{
	mbedtls_ssl_session_free(&x->saved);
	mbedtls_ssl_session_init(&x->saved);
	x->have_saved = false;
}

void
uplink_tls_ctx_destroy(struct uplink_tls_ctx *x)
{
	if (x == NULL)
		return;
	mbedtls_ssl_session_free(&x->saved);
	mbedtls_ssl_config_free(&x->conf);
	mbedtls_pk_free(&x->key);
	mbedtls_x509_crt_free(&x->cert);
	mbedtls_x509_crt_free(&x->ca);
	mbedtls_ctr_drbg_free(&x->drbg);
	mbedtls_entropy_free(&x->entropy);
	free(x);
}

struct uplink_tls *
uplink_tls_open(struct uplink_tls_ctx *x, int fd, uint64_t *bytes_in, uint64_t *bytes_out)
{
	struct uplink_tls *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->x = x;
	t->fd = fd;
	t->bytes_in = bytes_in;
	t->bytes_out = bytes_out;
	mbedtls_ssl_init(&t->ssl);
	if (mbedtls_ssl_setup(&t->ssl, &x->conf) != 0 ||
	    mbedtls_ssl_set_hostname(&t->ssl, x->name) != 0 ||
	    (x->resume && x->have_saved && mbedtls_ssl_set_session(&t->ssl, &x->saved) != 0)) {
		uplink_tls_close(t);
		return NULL;
	}
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	return t;
}

static int
tls_fail(struct uplink_tls *t, int rc)
{
	uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
	char e[100];

	if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 && flags != (uint32_t)-1) {
		mbedtls_x509_crt_verify_info(t->err, sizeof(t->err), "", flags);
		t->err[strcspn(t->err, "\n")] = '\0';
		/* A refused server also loses the session we would have offered it. */
		uplink_tls_ctx_forget(t->x);
		return -EACCES;
	}
	mbedtls_strerror(rc, e, sizeof(e));
	snprintf(t->err, sizeof(t->err), "%s", e);
	return rc == MBEDTLS_ERR_NET_CONN_RESET ? -ECONNRESET : -EPROTO;
}

int
uplink_tls_handshake(struct uplink_tls *t)
{
	int rc = 0;

	t->want_write = false;
	while (t->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
		int before = t->ssl.state;

		rc = mbedtls_ssl_handshake_step(&t->ssl);
		/* After a ServerHello that takes our session, the server's certificate and key
		 * exchange are skipped: the next step is its ChangeCipherSpec. */
		if (before == MBEDTLS_SSL_SERVER_HELLO && t->ssl.state != before)
			t->resumed = t->ssl.state == MBEDTLS_SSL_SERVER_CHANGE_CIPHER_SPEC;
		if (rc != 0)
			break;
	}
	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
		t->want_write = rc == MBEDTLS_ERR_SSL_WANT_WRITE;
		return -EAGAIN;
	}
	if (rc != 0)
		return tls_fail(t, rc);
	t->done = true;
	if (t->x->resume) { /* the server may have issued a new ticket: keep the newest */
		mbedtls_ssl_session_free(&t->x->saved);
		mbedtls_ssl_session_init(&t->x->saved);
		t->x->have_saved = mbedtls_ssl_get_session(&t->ssl, &t->x->saved) == 0;
	}
	return 0;
}

bool
uplink_tls_wants_write(const struct uplink_tls *t)
{
	return t->want_write;
}

bool
uplink_tls_resumed(const struct uplink_tls *t)
{
	return t->resumed;
}

ssize_t
uplink_tls_write(struct uplink_tls *t, const void *buf, size_t len)
{
	int rc;

	/* mbedTLS wants the same call again after WANT_WRITE: the record is already built. */
	if (t->write_len != 0 && len >= t->write_len)
		len = t->write_len;
	t->want_write = false;
	rc = mbedtls_ssl_write(&t->ssl, buf, len);
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
		t->write_len = len;
		t->want_write = rc == MBEDTLS_ERR_SSL_WANT_WRITE;
		return -EAGAIN;
	}
	t->write_len = 0;
	if (rc < 0)
		return tls_fail(t, rc);
	return rc;
}

ssize_t
uplink_tls_read(struct uplink_tls *t, void *buf, size_t len)
{
	int rc = mbedtls_ssl_read(&t->ssl, buf, len);

	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return -EAGAIN;
	if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == 0)
		return 0;
	if (rc < 0)
		return tls_fail(t, rc);
	return rc;
}

size_t
uplink_tls_pending(const struct uplink_tls *t)
{
	return mbedtls_ssl_get_bytes_avail(&t->ssl);
}

const char *
uplink_tls_error(const struct uplink_tls *t)
{
	return t->err;
}

const char *
uplink_tls_version(const struct uplink_tls *t)
{
	return mbedtls_ssl_get_version(&t->ssl);
}

void
uplink_tls_close(struct uplink_tls *t)
{
	if (t == NULL)
		return;
	if (t->done)
		(void)mbedtls_ssl_close_notify(&t->ssl);
	mbedtls_ssl_free(&t->ssl);
	free(t);
}
