/*
 * sim_transport.h: how the simulator reaches a broker, behind an ops table (the libmodbus backend
 * habit): the session code calls connect/send/recv/close and waits on the transport's poller.
 * sim_transport_kernel.c implements it on kernel TCP sockets and epoll; sim_transport_memif.c on a
 * DPDK net_memif port with the dataplane's own TCP stack as the client (built with the dataplane).
 */
#ifndef EDGEGW_SIM_TRANSPORT_H
#define EDGEGW_SIM_TRANSPORT_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/types.h>

#define SIM_EV_IN  1u
#define SIM_EV_OUT 2u
#define SIM_EV_ERR 4u

struct sim_event {
	void *ctx;       /* what was given to connect() */
	uint32_t events; /* SIM_EV_* */
};

struct sim_transport;

struct sim_transport_ops {
	const char *name;
	/* One poller per worker thread. */
	int (*open)(struct sim_transport *t);
	void (*destroy)(struct sim_transport *t);
	/*
	 * Start a non-blocking connect from src (sin_addr 0: any) to dst; the handle is polled for
	 * SIM_EV_OUT until connected, then SIM_EV_IN. Returns a handle >= 0 or -errno
	 * (-EADDRNOTAVAIL for a bind failure).
	 */
	int (*connect)(struct sim_transport *t, const struct sockaddr_in *src,
	    const struct sockaddr_in *dst, void *ctx);
	/* After SIM_EV_OUT on a connecting handle: 0 when established, else -errno. */
	int (*connect_result)(struct sim_transport *t, int h);
	/* Bytes sent (> 0), -EAGAIN, or -errno. */
	ssize_t (*send)(struct sim_transport *t, int h, const void *buf, size_t len);
	/* Bytes read (> 0), 0 at end of stream, -EAGAIN, or -errno. */
	ssize_t (*recv)(struct sim_transport *t, int h, void *buf, size_t len);
	/* Which events to wait for (SIM_EV_IN / SIM_EV_OUT). */
	int (*want)(struct sim_transport *t, int h, uint32_t events, void *ctx);
	void (*close)(struct sim_transport *t, int h);
	/* Wait up to timeout_ms; returns the number of events written (<= max) or -errno. */
	int (*poll)(struct sim_transport *t, struct sim_event *ev, int max, int timeout_ms);
};

struct sim_transport {
	const struct sim_transport_ops *ops;
	int fd;     /* kernel: the epoll instance */
	void *priv; /* memif: the stack */
};

extern const struct sim_transport_ops sim_transport_kernel;
extern const struct sim_transport_ops sim_transport_memif;

#endif
