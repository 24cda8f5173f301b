/* echo.h: the built-in TCP test services (RFC 862 echo, RFC 863 discard), off by default. */
#ifndef EDGEGW_APP_ECHO_H
#define EDGEGW_APP_ECHO_H

#include <stdint.h>

struct dp_lcore;

int echo_service_listen(struct dp_lcore *lc, uint16_t port);
int discard_service_listen(struct dp_lcore *lc, uint16_t port);

#endif
