/*
 * tls.h: the uplink's TLS layer (mbedTLS 2.28: TLS 1.2; Debian builds it without 1.3). One
 * context per client holds the configuration (CA, client certificate, verification, SNI) and
 * the last session, which the next connection offers back (ticket or session id) so that a
 * reconnect over cellular costs an abbreviated handshake. Non-blocking over the client's fd;
 * every byte on the socket is added to the caller's counters.
 */
#ifndef EDGEGW_UPLINK_TLS_H
#define EDGEGW_UPLINK_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mqtt_conf.h"

struct uplink_tls_ctx;
struct uplink_tls;

/* host is the name checked (and sent as SNI) unless c->server_name is set. */
int uplink_tls_ctx_create(struct uplink_tls_ctx **out, const struct uplink_tls_conf *c,
    const char *host, char *err, size_t errlen);
void uplink_tls_ctx_destroy(struct uplink_tls_ctx *x);
/* Forget the saved session (the next handshake is a full one). */
void uplink_tls_ctx_forget(struct uplink_tls_ctx *x);

struct uplink_tls *
uplink_tls_open(struct uplink_tls_ctx *x, int fd, uint64_t *bytes_in, uint64_t *bytes_out);
/* 0 when done; -EAGAIN to call again when the fd is ready (uplink_tls_wants_write says for
 * what); -EACCES when the server's certificate was refused; another negative errno else. */
int uplink_tls_handshake(struct uplink_tls *t);
bool uplink_tls_wants_write(const struct uplink_tls *t);
bool uplink_tls_resumed(const struct uplink_tls *t);
/* > 0 bytes taken or read; -EAGAIN; 0 from read: closed by the peer; other negative: failed. */
ssize_t uplink_tls_write(struct uplink_tls *t, const void *buf, size_t len);
ssize_t uplink_tls_read(struct uplink_tls *t, void *buf, size_t len);
/* Bytes decrypted and waiting inside the TLS layer (read them before waiting for the fd). */
size_t uplink_tls_pending(const struct uplink_tls *t);
const char *uplink_tls_error(const struct uplink_tls *t);
const char *uplink_tls_version(const struct uplink_tls *t);
/* Frees the connection state; the fd stays the caller's. */
void uplink_tls_close(struct uplink_tls *t);

#endif
