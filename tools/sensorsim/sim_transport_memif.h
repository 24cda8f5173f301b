/*
 * sim_transport_memif.h: bring-up of the memif transport (sim_transport_memif.c), called by
 * main around the workers: the EAL, the net_memif client port, the dataplane's stack as a
 * client, and a ping to the broker so ARP is resolved before the first SYN.
 */
#ifndef EDGEGW_SIM_TRANSPORT_MEMIF_H
#define EDGEGW_SIM_TRANSPORT_MEMIF_H

#include <stdint.h>

#include "sim_opts.h"

/* 0, or a negative errno with the reason printed. dst_be: the broker (network order). */
int sim_memif_init(const struct sim_opts *o, uint32_t sessions, uint32_t dst_be);
/* After the workers stopped: lets the last FINs out, prints the stack's counters, frees. */
void sim_memif_fini(void);

#endif
