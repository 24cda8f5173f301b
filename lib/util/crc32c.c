/*
 * crc32c.c: the one CRC-32C of the gateway (crc32c.h). ISA-L's crc32_iscsi neither inverts its
 * input nor its output: ~crc32_iscsi(buf, len, ~crc) is the standard CRC-32C continued from crc.
 * The spool, the broker's journal and the agent's QoS 2 origins each had a copy of their own
 * before this file (ISA-L, a table with an SSE 4.2 path, a bitwise loop), all of the same
 * standard CRC: files written by those versions read the same.
 */
#include <isa-l/crc.h>
#include <stdint.h>

#include "crc32c.h"

uint32_t
crc32c(const void *buf, size_t len, uint32_t crc)
{
	const unsigned char *b = buf;

	/* crc32_iscsi takes an int length: longer buffers go in pieces */
	while (len > INT32_MAX) {
		crc = ~crc32_iscsi((unsigned char *)(uintptr_t)b, INT32_MAX, ~crc);
		b += INT32_MAX;
		len -= INT32_MAX;
	}
	return ~crc32_iscsi((unsigned char *)(uintptr_t)b, (int)len, ~crc);
}
