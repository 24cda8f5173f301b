/*
 * resolve.h: host name lookup off the event loop. getaddrinfo() can block for seconds on a
 * cellular link, so a name goes to a short-lived thread that writes the answer into a pipe; the
 * client watches the pipe's read end like any other fd. Numeric addresses need no thread.
 *
 * A name may stand for several addresses (a cloud endpoint behind several A records, IPv4 and
 * IPv6): the answer holds up to UPLINK_ADDRS_MAX of them in getaddrinfo's order (RFC 6724),
 * the client interleaves their families (uplink_addrs_interleave) and tries the next one when a
 * TCP connect to one fails or takes longer than address_timeout (mqttc.c).
 */
#ifndef EDGEGW_UPLINK_RESOLVE_H
#define EDGEGW_UPLINK_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UPLINK_ADDRS_MAX 8 /* the answer (about 1.1 KB) stays one atomic pipe write */

struct uplink_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
};

struct uplink_addrs {
	uint32_t n; /* 1..UPLINK_ADDRS_MAX once resolved */
	struct uplink_addr a[UPLINK_ADDRS_MAX];
};

/* What the resolver thread runs: 0 and *out (n >= 1), or a getaddrinfo error (EAI_*). */
typedef int (*uplink_lookup_fn)(const char *host, const char *port, struct uplink_addrs *out);

/* A numeric address: 0 and *a filled (one address); a name: -EAGAIN (use uplink_resolve_start). */
int uplink_resolve_numeric(const char *host, const char *port, struct uplink_addrs *a);
/* Start a lookup with fn on a thread (NULL: getaddrinfo, AI_ADDRCONFIG first): 0 and *fd, the
 * pipe to watch for EPOLLIN. */
int uplink_resolve_start(const char *host, const char *port, uplink_lookup_fn fn, int *fd);
/* Read the answer from fd (and close it): 0 and *a, or -1 with the reason in err. */
int uplink_resolve_finish(int fd, struct uplink_addrs *a, char *err, size_t errlen);
/* RFC 8305 4: the addresses reordered so that families alternate, the first address's family
 * first, each family's own order kept (a dead IPv6 path, or a dead IPv4 one, costs one address
 * timeout, not one per address of that family). */
void uplink_addrs_interleave(struct uplink_addrs *a);
/* The same address (family, length and bytes). */
bool uplink_addr_eq(const struct uplink_addr *a, const struct uplink_addr *b);
/* a as text ("198.18.0.1:8883", "[2001:db8::1]:8883") for logs. */
const char *uplink_addr_str(const struct uplink_addr *a, char *buf, size_t len);

#endif
