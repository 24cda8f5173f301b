/*
 * tls.c: mbedTLS under the uplink (see tls.h). The BIO callbacks are ours so that every byte
 * on the wire is counted (bytes_in/out, and handshake bytes apart). Resumption: after each
 * full handshake the session is saved; the next connection offers it with
 * mbedtls_ssl_set_session(), and the server's answer tells whether it was taken. mbedTLS 2.28
 * has no accessor for that, so the handshake is stepped here and the step after the
 * ServerHello tells: a resumed session goes straight to the server's ChangeCipherSpec.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
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

#define PSK_MIN 16u /* bytes: 128 bits at least */
#ifdef MBEDTLS_PSK_MAX_LEN
#define PSK_MAX MBEDTLS_PSK_MAX_LEN
#else
#define PSK_MAX 32u /* mbedTLS 2.28's default */
#endif

/* With a PSK and no CA to check a certificate with, only these are offered: PSK suites, those
 * with an ephemeral key exchange (forward secrecy) first, AEAD before CBC. */
static const int psk_suites[] = {
	MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_DHE_PSK_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_DHE_PSK_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384,
	MBEDTLS_TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
	MBEDTLS_TLS_PSK_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
	0,
};

static int
hexval(int ch)
{
	return isdigit(ch) ? ch - '0' : isxdigit(ch) ? (tolower(ch) - 'a' + 10) : -1;
}

/* The key in c->psk_file: hex digits (whitespace around them ignored), PSK_MIN..PSK_MAX bytes,
 * handed to mbedTLS (which keeps its own copy) with the identity; our copies are wiped. */
static int
psk_load(struct uplink_tls_ctx *x, const struct uplink_tls_conf *c, char *err, size_t errlen)
{
	char text[2 * PSK_MAX + 64];
	unsigned char key[PSK_MAX];
	size_t n = 0, len = 0;
	struct stat st;
	ssize_t got;
	int fd = open(c->psk_file, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0) {
		snprintf(err, errlen, "tls: PSK file %s: %s", c->psk_file, strerror(errno));
		return -EINVAL;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
		log_warnx("mqtt: tls: PSK file %s can be read by other users (chmod 600 it)",
		    c->psk_file);
	got = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (got < 0) {
		snprintf(err, errlen, "tls: PSK file %s: %s", c->psk_file, strerror(errno));
		return -EINVAL;
	}
	text[got] = '\0';
	while (n < (size_t)got && isspace((unsigned char)text[n]))
		n++;
	for (; n + 1 < (size_t)got && len < sizeof(key) && hexval((unsigned char)text[n]) >= 0 &&
	     hexval((unsigned char)text[n + 1]) >= 0;
	     n += 2)
		key[len++] = (unsigned char)(hexval((unsigned char)text[n]) << 4 |
		    hexval((unsigned char)text[n + 1]));
	while (n < (size_t)got && isspace((unsigned char)text[n]))
		n++;
	if (n != (size_t)got || len < PSK_MIN) {
		snprintf(err, errlen,
		    "tls: PSK file %s: wants %u to %u bytes as hex digits (openssl rand -hex %u)",
		    c->psk_file, PSK_MIN, PSK_MAX, PSK_MAX);
		rc = -EINVAL;
	} else if ((rc = mbedtls_ssl_conf_psk(&x->conf, key, len,
			(const unsigned char *)c->psk_identity, strlen(c->psk_identity))) != 0)
		rc = ctx_fail(err, errlen, "PSK", c->psk_file, rc);
	mbedtls_platform_zeroize(key, sizeof(key));
	mbedtls_platform_zeroize(text, sizeof(text));
	if (rc == 0 && !c->ca[0])
		mbedtls_ssl_conf_ciphersuites(&x->conf, psk_suites);
	return rc;
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
	if (c->psk_file[0])
		return psk_load(x, c, err, errlen);
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
