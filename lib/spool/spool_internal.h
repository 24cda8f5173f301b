/*
 * spool_internal.h: the spool's on-disk format and in-memory state, shared by its files:
 * spool.c (open, append, bounds, counters), spool_commit.c (group commit, release, flusher),
 * spool_recover.c (scan at open), spool_consume.c (read, ack, QoS 2 marks, ack log),
 * spool_io.c (the POSIX ops). Nothing here is for other folders.
 */
#ifndef EDGEGW_SPOOL_INTERNAL_H
#define EDGEGW_SPOOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "spool.h"

/* ---- on disk (little-endian; this code runs on little-endian machines only) ---- */
#define SPOOL_FORMAT_VERSION 1
#define SPOOL_SEG_MAGIC      "EGWSPSEG"
#define SPOOL_ACK_MAGIC      "EGWSPACK"
#define SPOOL_REC_MAGIC      0x4c505345u /* "ESPL" */
/* No sequence number this code hands out reaches it (at a million records a second, 146,000
 * years): a record or ack entry that names one checks out only because someone forged its
 * CRC, and is taken as corrupt. Keeps next_seq far from wrapping around. */
#define SPOOL_SEQ_LIMIT (1ull << 62)

/* Segment (and ack log) header: 32 bytes, CRC-32C over the first 28. */
struct spool_file_hdr {
	char magic[8];
	uint16_t version;
	uint16_t hdr_len;
	uint8_t stream; /* class * 2 + (QoS 0 ? 1 : 0) */
	uint8_t rsv0[3];
	uint64_t first_seq;
	uint32_t rsv1;
	uint32_t crc;
};
_Static_assert(sizeof(struct spool_file_hdr) == 32, "segment header is 32 bytes");

/* Record header: 32 bytes, then topic, then payload. The CRC-32C runs over topic and payload,
 * then continues over the header after the crc field (seq onwards): producers checksum the body
 * before they take the lock, and only the 24 header bytes under it. */
struct spool_rec_hdr {
	uint32_t magic;
	uint32_t crc;
	uint64_t seq;
	uint64_t time_ms;
	uint32_t payload_len;
	uint16_t topic_len;
	uint8_t cls_qos; /* class << 4 | qos */
	uint8_t flags;
};
_Static_assert(sizeof(struct spool_rec_hdr) == 32, "record header is 32 bytes");

/* Ack log entry: 24 bytes, CRC-32C over the last 20. */
enum spool_ack_type {
	SPOOL_ACK_RANGE = 1, /* records of `stream` with lo <= seq <= hi are acknowledged */
	SPOOL_ACK_Q2,        /* record lo of `stream`: QoS 2 phase `hi`, packet id `pid` */
	SPOOL_ACK_FLOOR,     /* sequence numbers up to lo were used */
	SPOOL_ACK_VOID,      /* records of any stream with lo <= seq <= hi failed their commit */
};
struct spool_ack_ent {
	uint32_t crc;
	uint8_t type;
	uint8_t stream;
	uint16_t pid;
	uint64_t lo;
	uint64_t hi;
};
_Static_assert(sizeof(struct spool_ack_ent) == 24, "ack entry is 24 bytes");

#define SPOOL_STREAMS   (SPOOL_CLASS_N * 2)
#define SPOOL_ACK_FILE  "acks.log"
#define SPOOL_LOCK_FILE "lock"
#define SPOOL_FAIL_RING 64
#define SPOOL_NAME_MAX  64

uint32_t spool_file_hdr_crc(const struct spool_file_hdr *h);
uint32_t spool_rec_crc(const struct spool_rec_hdr *h, const void *body);
uint32_t spool_rec_crc_finish(const struct spool_rec_hdr *h, uint32_t body_crc);
uint32_t spool_ack_crc(const struct spool_ack_ent *e);

static inline unsigned
spool_stream_of(enum spool_class cls, uint8_t qos)
{
	return (unsigned)cls * 2 + (qos == 0 ? 1 : 0);
}
static inline enum spool_class
spool_stream_class(unsigned stream)
{
	return (enum spool_class)(stream / 2);
}
static inline bool
spool_stream_qos0(unsigned stream)
{
	return stream % 2 == 1;
}

/* ---- in memory ---- */
enum spool_idx_state {
	SPOOL_IDX_LIVE = 0,
	SPOOL_IDX_ACKED,
	SPOOL_IDX_DEAD, /* dropped, expired, void or unreadable */
};

struct spool_idx {
	uint64_t seq;
	uint32_t off;
	uint32_t len; /* whole record, header included */
	uint16_t q2_pid;
	uint8_t state;
	uint8_t q2_state;
	uint8_t given; /* handed to the consumer since the last rewind (in memory only) */
};

struct spool_seg {
	struct spool_seg *next;
	int fd;
	uint8_t stream;
	bool sealed; /* no more appends (full, failed, bad header or recovered mid-log) */
	uint64_t first_seq;
	uint64_t size; /* bytes on disk that count (valid prefix) */
	uint64_t newest_ms;
	uint64_t created_ms;
	struct spool_idx *idx;
	uint32_t n, cap;
	uint32_t live;
	char name[SPOOL_NAME_MAX];
};

/* A commit buffer: whole records, ready to write. */
struct spool_buf {
	uint8_t *data;
	uint32_t len, cap;
	uint32_t nrec;
};

struct spool_stream {
	struct spool_seg *head, *tail; /* oldest first; tail takes appends unless sealed */
	struct spool_buf buf;          /* appends go here */
	struct spool_buf flight;       /* being written by the commit */
	struct spool_seg *cur_seg;     /* consumer cursor */
	uint32_t cur_pos;
	struct spool_seg *live_seg; /* spool_read_live's cursor; NULL: seek live_from again */
	uint32_t live_pos;
	uint64_t live_from; /* the from_seq it was placed for */
};

struct spool_fail {
	uint64_t lo, hi;
	int err;
};

struct spool {
	struct spool_config cfg;
	char dir[4096 - SPOOL_NAME_MAX - 2];
	int lock_fd;
	const struct spool_io_ops *io;
	void *io_ctx;

	pthread_mutex_t lock;        /* everything below */
	pthread_cond_t settled_cond; /* resolved_seq moved */
	pthread_cond_t work_cond;    /* something for the flusher */
	pthread_mutex_t commit_lock; /* one commit at a time; taken before lock */

	struct spool_stream st[SPOOL_STREAMS];
	uint64_t next_seq;
	_Atomic uint64_t resolved_seq;
	struct spool_fail fails[SPOOL_FAIL_RING];
	unsigned nfails;

	uint64_t seg_bytes;      /* sum of segment sizes, doomed ones excluded */
	uint64_t buffered_bytes; /* in buf and flight */
	uint64_t
	    oldest_buffered_ns;  /* monotonic time of the first record in the buffers; 0: none */
	uint64_t last_commit_ns; /* when the last commit of records ended (monotonic; 0: none) */
	int64_t nrec_avg;        /* records per commit, a moving average (x256, weight 1/8) */

	struct spool_seg *doomed; /* released or dropped, unlinked by the next commit */

	int ack_fd;
	uint64_t ack_size;
	struct spool_ack_ent *ack_pend;
	uint32_t ack_n, ack_cap;
	struct spool_ack_ent *ack_flight;
	uint32_t ack_flight_n, ack_flight_cap;

	bool disk_full;
	uint64_t disk_full_until_ns;
	_Atomic uint64_t last_failed_seq;

	pthread_t flusher;
	bool flusher_running, stopping;
	uint64_t commit_no;   /* commits that took their input (the last one's number) */
	uint64_t commit_want; /* spool_commit_request: the flusher runs commits up to this one */

	uint64_t c[SPOOL_C_N];
};

uint64_t spool_now_ms(struct spool *sp);
uint64_t spool_mono_ns(void);
int spool_path(struct spool *sp, const char *name, char *out, size_t len);
void spool_seg_name(char *out, size_t len, unsigned stream, uint64_t first_seq);
int spool_seg_name_parse(const char *name, unsigned *stream, uint64_t *first_seq);
int spool_idx_push(struct spool_seg *seg, const struct spool_idx *e);
void spool_seg_free(struct spool *sp, struct spool_seg *seg);
/* Marks every live record of seg dead and moves seg to the doomed list (lock held). */
void spool_seg_doom(struct spool *sp, struct spool_seg *seg);
struct spool_idx *spool_find(struct spool *sp, uint64_t seq, struct spool_seg **segp);
void spool_cursor_fix(struct spool *sp, struct spool_seg *gone);

/* Reads a whole file through the ops table into a malloc'd buffer. */
int spool_read_whole(struct spool *sp, int fd, uint8_t **out, uint64_t *size);
int spool_recover(struct spool *sp);
int spool_acklog_open(struct spool *sp);
/* Queue an entry for the next commit / for the commit running now; put a failed commit's
 * entries back in front of the queue (all with the lock held). */
int spool_acklog_queue(struct spool *sp, const struct spool_ack_ent *e);
int spool_acklog_queue_flight(struct spool *sp, const struct spool_ack_ent *e);
void spool_acklog_requeue(struct spool *sp);
int spool_acklog_compact(struct spool *sp);
void spool_expire_sealed(struct spool *sp, uint64_t now_ms);

#endif
