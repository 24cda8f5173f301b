/*
 * resolve.h: host name lookup off the event loop. getaddrinfo() can block for seconds on a
 * cellular link, so a name goes to a short-lived thread that writes the answer into a pipe; the
 * client watches the pipe's read end like any other fd. Numeric addresses need no thread.
 */
#ifndef EDGEGW_UPLINK_RESOLVE_H
#define EDGEGW_UPLINK_RESOLVE_H

#include <stddef.h>
#include <sys/socket.h>

struct uplink_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
};

/* A numeric address: 0 and *a filled; a name: -EAGAIN (use uplink_resolve_start). */
int uplink_resolve_numeric(const char *host, const char *port, struct uplink_addr *a);
/* Start a lookup: 0 and *fd, the pipe to watch for EPOLLIN. */
int uplink_resolve_start(const char *host, const char *port, int *fd);
/* Read the answer from fd (and close it): 0 and *a, or -1 with the reason in err. */
int uplink_resolve_finish(int fd, struct uplink_addr *a, char *err, size_t errlen);

#endif
