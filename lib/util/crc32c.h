/* crc32c.h: CRC-32C (Castagnoli), the checksum of every record the gateway writes to disk (the
 * spool's segments and ack log, the broker's journal and snapshot, the agent's QoS 2 origins). */
#ifndef EDGEGW_CRC32C_H
#define EDGEGW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The standard CRC-32C of len bytes at buf ("123456789" gives 0xe3069283), continued from crc:
 * 0 to start, or the CRC of the bytes before buf (crc32c(b, n, crc32c(a, m, 0)) is the CRC of
 * a then b). ISA-L's crc32_iscsi, which picks its SSE 4.2 / PCLMULQDQ code at run time. */
uint32_t crc32c(const void *buf, size_t len, uint32_t crc);

#endif
