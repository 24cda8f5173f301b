/*
 * spool.h: the durable store-and-forward spool. An append-only, segmented log in a directory
 * (default /var/lib/edgegw/spool) that producers (the broker's lcores for sensor messages, the
 * Modbus poller for readings) append to, and one consumer (the uplink) reads from and releases
 * records only after the cloud acknowledged them. Format, guarantees and numbers: docs/spool.md.
 *
 * Threads: spool_append() may be called from any thread at once (it copies the record into the
 * commit buffer under a short lock, and never does I/O or allocates); the consumer calls are for
 * one thread; the commit (write + one fdatasync for everything appended meanwhile) runs on the
 * spool's own flusher thread (spool_start_flusher) or on whoever calls spool_commit().
 */
#ifndef EDGEGW_SPOOL_H
#define EDGEGW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"

#define SPOOL_DEFAULT_DIR "/var/lib/edgegw/spool"
#define SPOOL_TOPIC_MAX   65535u
#define SPOOL_PAYLOAD_MAX (16u << 20)

/* Priority classes, most important first: the consumer drains alarm before normal before bulk,
 * and the drop policy goes the other way. */
enum spool_class {
	SPOOL_ALARM = 0,
	SPOOL_NORMAL,
	SPOOL_BULK,
	SPOOL_CLASS_N
};

/* Per class: how old a record may get before it is expired (0: no limit), and whether its QoS 1
 * and 2 records may be dropped to make room (QoS 0 records always may). A class that may not
 * drop is refused (-ENOBUFS) when the spool is full. */
struct spool_class_policy {
	uint64_t max_age_ms;
	bool drop_when_full;
};

/* File I/O, behind a table so tests inject faults (short writes, ENOSPC, EIO, a failing
 * fdatasync, a crash mid-write). Each returns what the POSIX call returns, -1 with errno set on
 * failure. spool_io_posix is the real one. */
struct spool_io_ops {
	int (*open)(void *ctx, const char *path, int flags, mode_t mode);
	int (*close)(void *ctx, int fd);
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t off);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
	int (*fdatasync)(void *ctx, int fd);
	int (*ftruncate)(void *ctx, int fd, off_t len);
	int (*unlink)(void *ctx, const char *path);
	int (*rename)(void *ctx, const char *from, const char *to);
	int (*fsync_dir)(void *ctx, const char *dir);
};
extern const struct spool_io_ops spool_io_posix;

/* Called by the committing thread once per commit with the range of sequence numbers it settled:
 * status 0 (all durable) or a negative errno (none of them is; the producer must not
 * acknowledge them, and they will never be delivered). */
typedef void (*spool_durable_fn)(void *arg, uint64_t first_seq, uint64_t last_seq, int status);
/* Called by the committing thread after each commit with its number (1, 2, ...: see
 * spool_commit_request) and the result of writing the consumer's acks and QoS 2 marks: 0 when
 * every one queued before that commit began is durable. */
typedef void (*spool_committed_fn)(void *arg, uint64_t commit_no, int status);

struct spool_config {
	const char *dir;    /* NULL: SPOOL_DEFAULT_DIR */
	uint64_t max_bytes; /* bound on segments + commit buffers; 0: 1 GiB */
	uint64_t
	    segment_bytes; /* a segment is sealed past this; 0: max_bytes / 32, 64 KiB..64 MiB */
	/* longest a record waits for its group commit; 0: 1000. One that finds the spool idle that
	 * long, while commits carry a record at a time, goes at once (docs/spool.md) */
	uint32_t commit_max_wait_us;
	uint32_t commit_bytes; /* commit at once when this much is buffered; 0: 256 KiB */
	uint32_t buffer_bytes; /* commit buffer per stream (x2); 0: 4 x commit_bytes */
	uint32_t
	    disk_full_retry_ms; /* after ENOSPC, refuse until space is freed or this passes; 0: 1000 */
	struct spool_class_policy
	    policy[SPOOL_CLASS_N]; /* all zero: the defaults in docs/spool.md */
	bool policy_set;           /* policy[] was filled in */
	spool_durable_fn on_durable;
	void *on_durable_arg;
	spool_committed_fn on_committed; /* optional */
	void *on_committed_arg;
	/* Optional: called by whoever commits (the flusher), at every commit (also one with
	 * nothing of its own: spool_commit_request, the idle flusher's each second), before it
	 * writes its records and acks: what a producer wrote elsewhere that must be durable no
	 * later than they are (the agent's QoS 2 packet ids, agent/downlink_q2.h) is made durable
	 * here. Nonzero fails the commit: its records are not durable (on_durable says so), its
	 * acks wait for the next one. */
	int (*before_commit)(void *arg);
	void *before_commit_arg;
	const struct spool_io_ops *io; /* NULL: spool_io_posix */
	void *io_ctx;
	uint64_t (*now_ms)(void *arg); /* NULL: CLOCK_REALTIME; tests move time by hand */
	void *now_arg;
	/* At open, once for each intact record found on disk whose flags have a bit of
	 * recover_flags: its sequence number, flags and payload (valid during the call only). Lets
	 * a producer learn what it had already made durable before a crash (the agent: which of
	 * the dataplane's records it holds, agent/dpchan_store.c). Called before the ack log is
	 * read: after spool_open(), spool_rec_kept() says whether such a record still counts. */
	uint8_t recover_flags;
	void (*on_recovered)(
	    void *arg, uint64_t seq, uint8_t flags, const uint8_t *payload, uint32_t payload_len);
	void *on_recovered_arg;
};

void spool_config_defaults(struct spool_config *cfg);
/* The config's `spool:` mapping (absent: the defaults) into cfg; errors are recorded in the
 * document (file:line:col) and make it return -1. cfg->dir points into the document: open the
 * spool before freeing it. */
int spool_config_parse(conf_node map, struct spool_config *cfg);

struct spool;

/* Opens (creating the directory if needed) and recovers: every segment is scanned, records with
 * a bad checksum, a torn tail or a bad segment header are skipped, counted and logged, the rest
 * is kept. Takes an exclusive lock on the directory (a second opener gets -EBUSY); a spool
 * written by a newer format version is refused (-EPROTONOSUPPORT) and left untouched. */
int spool_open(const struct spool_config *cfg, struct spool **out);
/* Stops the flusher, commits what is buffered and frees. */
void spool_close(struct spool *sp);
/* Frees without committing or any further I/O: what a crash leaves, for tests. */
void spool_abandon(struct spool *sp);

/* ---- producers ---- */
struct spool_rec_in {
	enum spool_class cls;
	uint8_t qos;   /* 0, 1, 2: QoS 0 records go first when room is needed */
	uint8_t flags; /* carried as is (the producer's: retain, ...) */
	const char *topic;
	uint16_t topic_len;
	const void *payload;
	uint32_t payload_len;
};

/* Appends one record and gives its sequence number (increasing, never reused). The record is
 * durable once spool_durable_seq() >= seq and spool_seq_status() says 1, or when on_durable
 * reports its range with status 0. Returns 0, -ENOBUFS when the spool cannot take it now (full
 * and no record it may drop, commit buffer full, disk full: hold the sender and retry), -EMSGSIZE,
 * -EINVAL. Never does I/O. */
int spool_append(struct spool *sp, const struct spool_rec_in *in, uint64_t *seq);
/* Every record up to this sequence number has been settled (durable, or failed: see below).
 * A plain atomic load: the dataplane polls it once per loop to release held PUBACKs. */
uint64_t spool_durable_seq(const struct spool *sp);
/* The sequence number the next spool_append() gets (with one producer, stable until it appends):
 * lets that producer write what names the record elsewhere before the record exists. */
uint64_t spool_next_seq(struct spool *sp);
/* The highest sequence number whose commit failed (0: none). A producer holding records in
 * sequence order knows without a lock that every record above this and up to
 * spool_durable_seq() is durable; for one at or below it, spool_seq_status() says. */
uint64_t spool_last_failed_seq(const struct spool *sp);
/* 1: durable; 0: not yet settled; negative errno: its commit failed (do not acknowledge). */
int spool_seq_status(struct spool *sp, uint64_t seq);
/* Whether seq is a record on disk that counts: durable, acknowledged or not; false when it was
 * never appended, its commit failed (VOID), or it was dropped, expired or released with its
 * segment. */
bool spool_rec_kept(struct spool *sp, uint64_t seq);
/* Whether seq is a record on disk the cloud acknowledged (released, its segment not yet gone). */
bool spool_rec_acked(struct spool *sp, uint64_t seq);
/* Blocks until seq is settled or timeout_ms passes (for producers that may block, e.g. the
 * poller); returns spool_seq_status()'s answer (0 on timeout). */
int spool_wait_durable(struct spool *sp, uint64_t seq, uint32_t timeout_ms);

/* ---- group commit ---- */
/* Writes everything buffered and makes it durable with one fdatasync per touched file; then
 * applies the bounds and releases acknowledged segments. Returns 0 or the failure (also
 * reported through on_durable and spool_seq_status). */
int spool_commit(struct spool *sp);
/* Starts the thread that commits whenever commit_bytes are buffered or the oldest buffered
 * record has waited commit_max_wait_us, or a commit was requested. */
int spool_start_flusher(struct spool *sp);
/* Asks the flusher for a commit now, without waiting for it: returns the number of the commit
 * that will carry everything queued so far (acks, QoS 2 marks, records); on_committed reports
 * it (or a later one) on the flusher's thread. What the uplink uses to make QoS 2 marks durable
 * off its loop. */
uint64_t spool_commit_request(struct spool *sp);

/* ---- the consumer ---- */
enum spool_q2_state {
	SPOOL_Q2_NONE = 0,  /* not sent with QoS 2 yet */
	SPOOL_Q2_PUBLISHED, /* PUBLISH sent with q2_packet_id: resend it with DUP */
	SPOOL_Q2_RELEASED,  /* PUBREC received: send PUBREL only, never the PUBLISH again */
};

struct spool_rec {
	uint64_t seq;
	uint64_t time_ms; /* when it was appended */
	enum spool_class cls;
	uint8_t qos;
	uint8_t flags;
	enum spool_q2_state q2_state;
	uint16_t q2_packet_id;
	const char *topic; /* points into the caller's buffer */
	uint16_t topic_len;
	const uint8_t *payload; /* points into the caller's buffer */
	uint32_t payload_len;
};

/* Gives the next durable, unacknowledged record of a class in sequence order, copying topic and
 * payload into buf. Returns 1, 0 when there is none, -ENOBUFS when buf is too small (rec's
 * lengths tell what is needed; the record stays next). Records past their class's age bound are
 * expired instead of given. A record read and not acknowledged is given again only after
 * spool_rewind() or a restart (at least once). */
int
spool_read(struct spool *sp, enum spool_class cls, struct spool_rec *rec, void *buf, size_t len);
/* The same, taking the most important class that has a record. */
int spool_read_next(struct spool *sp, struct spool_rec *rec, void *buf, size_t len);
/* Like spool_read, from the first record with seq >= from_seq on (a cursor of its own, placed
 * again when from_seq changes): the uplink sends its live data ahead of a backlog this way. A
 * record is given once until spool_rewind(), by whichever read reaches it first: spool_read
 * steps over the records this one gave, and the other way round. */
int spool_read_live(struct spool *sp, enum spool_class cls, uint64_t from_seq,
    struct spool_rec *rec, void *buf, size_t len);
/* The records with a QoS 2 phase (spool_q2_mark) not given yet, wherever they are: their
 * sequence numbers in class then sequence order into seqs (at most max); returns how many there
 * are. What was in flight before a restart; spool_read_seq() gives each. */
size_t spool_q2_pending(struct spool *sp, uint64_t *seqs, size_t max);
/* Gives record seq as spool_read would (1, -ENOBUFS), or -ENOENT when it is not there to give
 * (unknown, acknowledged, dropped, given already, or found bad or expired now). */
int spool_read_seq(struct spool *sp, uint64_t seq, struct spool_rec *rec, void *buf, size_t len);
/* Starts reading again from the first unacknowledged record of every class (after the uplink
 * reconnected): every record is given again. */
void spool_rewind(struct spool *sp);
/* The cloud acknowledged the record (PUBACK, PUBCOMP, or QoS 0 sent): it is released. Persisted
 * with the next commit; a record acknowledged but not yet committed may be delivered again after
 * a crash (at least once). -ENOENT if unknown (never appended, dropped, or acked). */
int spool_ack(struct spool *sp, uint64_t seq);
/* QoS 2 towards the cloud: records the packet id and phase. The uplink must have them committed
 * (spool_commit, or spool_commit_request and its on_committed report: one fdatasync for a whole
 * batch of marks) before it sends the PUBLISH or the PUBREL these marks announce: then a
 * restart resumes exactly where the cloud is, and nothing is delivered twice. */
int spool_q2_mark(struct spool *sp, uint64_t seq, enum spool_q2_state state, uint16_t packet_id);

/* ---- counters (spool_counters.def) ---- */
enum spool_counter {
#define SPOOL_C(name, kind, desc) SPOOL_C_##name,
#include "spool_counters.def"
#undef SPOOL_C
	SPOOL_C_N
};
enum spool_counter_kind {
	SPOOL_COUNTER,
	SPOOL_GAUGE
};
void spool_counters(struct spool *sp, uint64_t out[SPOOL_C_N]);
/* The append time (wall clock, ms) of the oldest durable record not yet acknowledged, in
 * *out; 0 when there is none. Reads one record header per stream (edgegwctl spool's age). */
int spool_oldest_ms(struct spool *sp, uint64_t *out);
const char *spool_counter_name(enum spool_counter c);
const char *spool_counter_desc(enum spool_counter c);
enum spool_counter_kind spool_counter_kind(enum spool_counter c);
const char *spool_class_name(enum spool_class cls);

#endif
