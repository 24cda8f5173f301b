/*
 * transport.h: how a bus reaches its devices, behind a small ops table (libmodbus's
 * modbus_backend_t is the model): transport_rtu.c for a serial line, transport_tcp.c for a
 * Modbus TCP server or gateway. bus.c runs the protocol (requests, retries, planning) and never
 * asks which transport it has; libmodbus still frames the requests on both.
 */
#ifndef EDGEGW_MB_TRANSPORT_H
#define EDGEGW_MB_TRANSPORT_H

#include <modbus/modbus.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent_config.h"
#include "planner.h"

struct mb_transport;

/* Why a failed request failed, as far as the link is concerned. */
enum mb_link_err {
	MB_LINK_DEVICE = 0, /* the line is fine, this answer (or its absence) was bad */
	MB_LINK_LOST,       /* the connection or the port is gone: close and reopen it */
};

struct mb_transport_ops {
	const char *name; /* "rtu", "tcp" */
	/* The libmodbus context for the bus's settings, or NULL. */
	modbus_t *(*ctx_new)(const struct agent_bus_conf *c);
	/* Before modbus_connect, optional: what the port turns out to be may change the context
	 * (a pseudo-terminal gets one without parity). 0 or -errno. */
	int (*before_open)(struct mb_transport *t);
	/* After modbus_connect: line settings libmodbus does not do (RS-485 mode). 0 or -errno. */
	int (*setup)(struct mb_transport *t);
	/* Silence to keep between frames, us (0 where the link frames messages itself). */
	uint32_t (*gap_us)(const struct agent_bus_conf *c);
	/* The silence inside an answer that ends it, us, given the response timeout. */
	uint32_t (*byte_timeout_us)(uint32_t timeout_ms);
	/* Bus time model for the planner. */
	void (*cost)(const struct agent_bus_conf *c, struct mb_cost *out);
	enum mb_link_err (*classify)(int err);
	/* Where it goes, for log lines: the serial device or the host. */
	const char *(*where)(const struct agent_bus_conf *c);
	/* Is a connect error a fault of the bus itself (port missing, no permission)? */
	bool (*open_fault)(int err);
};

struct mb_transport {
	const struct mb_transport_ops *ops;
	const struct agent_bus_conf *c;
	modbus_t *ctx;
	uint32_t gap_us;
	bool connected;
	bool pty; /* RTU on a pseudo-terminal: opened without parity (transport_rtu.c) */
};

extern const struct mb_transport_ops mb_transport_rtu, mb_transport_tcp;

const struct mb_transport_ops *mb_transport_for(enum agent_bus_kind kind);
/* 0, or -EINVAL when libmodbus rejects the settings. */
int mb_transport_init(struct mb_transport *t, const struct agent_bus_conf *c);
/* Open the port or connect. 0, or -errno (the errno of the failure). */
int mb_transport_connect(struct mb_transport *t);
void mb_transport_close(struct mb_transport *t);
void mb_transport_fini(struct mb_transport *t);
/* Where it goes, for log lines: the serial device or the host. */
const char *mb_transport_where(const struct mb_transport *t);
/* Drop what the line holds; wait up to limit_ms for it to stay quiet for quiet_ms. */
void mb_transport_drain(struct mb_transport *t, uint32_t quiet_ms, uint32_t limit_ms);
/* Set slave, response and byte timeouts for the next request. */
void mb_transport_prepare(struct mb_transport *t, uint8_t unit, uint32_t timeout_ms);

#endif
