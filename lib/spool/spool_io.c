/*
 * spool_io.c: the spool's file operations on POSIX (the table tests replace to inject faults)
 * and its checksums: the standard CRC-32C (lib/util's crc32c, ISA-L's) of headers, records and
 * ack-log entries.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include "crc32c.h"
#include "spool_internal.h"

static int
io_open(void *ctx, const char *path, int flags, mode_t mode)
{
	(void)ctx;
	return open(path, flags | O_CLOEXEC, mode);
}

static int
io_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd);
}

static ssize_t
io_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	return pwrite(fd, buf, len, off);
}

static ssize_t
io_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	(void)ctx;
	return pread(fd, buf, len, off);
}

static int
io_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	return fdatasync(fd);
}

static int
io_ftruncate(void *ctx, int fd, off_t len)
{
	(void)ctx;
	return ftruncate(fd, len);
}

static int
io_unlink(void *ctx, const char *path)
{
	(void)ctx;
	return unlink(path);
}

static int
io_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	return rename(from, to);
}

static int
io_fsync_dir(void *ctx, const char *dir)
{
	(void)ctx;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

const struct spool_io_ops spool_io_posix = {
	.open = io_open,
	.close = io_close,
	.pwrite = io_pwrite,
	.pread = io_pread,
	.fdatasync = io_fdatasync,
	.ftruncate = io_ftruncate,
	.unlink = io_unlink,
	.rename = io_rename,
	.fsync_dir = io_fsync_dir,
};

uint32_t
spool_file_hdr_crc(const struct spool_file_hdr *h)
{
	return crc32c(h, offsetof(struct spool_file_hdr, crc), 0);
}

uint32_t
spool_rec_crc(const struct spool_rec_hdr *h, const void *body)
{
	uint32_t crc = crc32c(body, (size_t)h->topic_len + h->payload_len, 0);
	return spool_rec_crc_finish(h, crc);
}

uint32_t
spool_rec_crc_finish(const struct spool_rec_hdr *h, uint32_t body_crc)
{
	return crc32c((const uint8_t *)h + 8, sizeof(*h) - 8, body_crc);
}

uint32_t
spool_ack_crc(const struct spool_ack_ent *e)
{
	return crc32c((const uint8_t *)e + 4, sizeof(*e) - 4, 0);
}
