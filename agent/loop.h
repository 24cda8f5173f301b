/*
 * loop.h: the agent's one event loop: epoll over file descriptors, a timerfd tick that drives
 * everything periodic (MQTT keepalive and reconnect, stats), and a signalfd so signals become
 * ordinary events. Nothing registered here may block.
 */
#ifndef EDGEGW_AGENT_LOOP_H
#define EDGEGW_AGENT_LOOP_H

#include <stdint.h>

struct agent_loop;

typedef void (*agent_fd_fn)(void *arg, uint32_t events);
typedef void (*agent_tick_fn)(void *arg, uint64_t now_ms);
typedef void (*agent_signal_fn)(void *arg, int signo);

int agent_loop_create(struct agent_loop **out, unsigned tick_ms);
void agent_loop_destroy(struct agent_loop *l);
int agent_loop_add_fd(struct agent_loop *l, int fd, uint32_t events, agent_fd_fn fn, void *arg);
int agent_loop_mod_fd(struct agent_loop *l, int fd, uint32_t events);
void agent_loop_del_fd(struct agent_loop *l, int fd);
int agent_loop_add_tick(struct agent_loop *l, agent_tick_fn fn, void *arg);
/* Handle SIGINT, SIGTERM, SIGHUP, SIGUSR1 (blocked in every thread, read from the signalfd). */
int agent_loop_set_signal_handler(struct agent_loop *l, agent_signal_fn fn, void *arg);
int agent_loop_run(struct agent_loop *l);
void agent_loop_stop(struct agent_loop *l);

#endif
