/*
 * mqtt_admin.c: the operator's requests to the broker instances (see mqtt_admin.h).
 * Publishing from the gateway (edgegwctl publish) goes through the first worker's instance,
 * which fans the message out to the others as any PUBLISH.
 *
 * A telemetry callback (DPDK's telemetry thread, one per client connection: serialised here by
 * a mutex) writes the request, then raises the generation (release); each worker sees it at its
 * next poll, answers into its own slot from its own broker and says so in its slot's generation
 * (release); the callback waits (1 s at most) for every worker, then merges. Listings are paged
 * (PAGE lines, under DPDK's 16 KiB reply): a first round asks every worker its count, a second
 * asks each the part of the page that falls in its share, in worker order. Retained messages are
 * on every instance (replicated): listed and cleared by the first worker alone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_lcore.h>
#include <rte_telemetry.h>

#include "broker.h"
#include "mqtt_admin.h"

#define PAGE    100
#define WAIT_MS 1000
#define ARG_MAX RTE_TEL_MAX_STRING_LEN

enum adm_op {
	ADM_SESSIONS,
	ADM_SUBS,
	ADM_RETAINED,
	ADM_KICK,
	ADM_KICK_PURGE,
	ADM_RETAINED_DELETE,
	ADM_PUBLISH,
};

/* The request in progress: written under adm_lock before adm_gen is raised. */
static pthread_mutex_t adm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	enum adm_op op;
	char arg[ARG_MAX];
	/* publish: the message (arg is the topic) */
	uint8_t qos;
	bool retain;
	size_t plen;
	char payload[1024]; /* a telemetry request is 1023 bytes at most */
} adm_req;
static uint32_t adm_gen;

struct mqtt_admin_slot {
	unsigned worker_idx;
	size_t skip, max; /* this worker's part of the page (set with the request) */
	/* the answer */
	size_t total; /* entries in all (listings), or found (kick, delete) */
	unsigned n;
	char line[PAGE][RTE_TEL_MAX_STRING_LEN];
	uint32_t done_gen;
};

static struct mqtt_admin_slot *slots[RTE_MAX_LCORE];
static unsigned n_slots;

struct mqtt_admin_slot *
mqtt_admin_slot_new(unsigned worker_idx)
{
	struct mqtt_admin_slot *s;

	if (worker_idx >= RTE_MAX_LCORE || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->worker_idx = worker_idx;
	slots[worker_idx] = s;
	if (worker_idx + 1 > n_slots)
		n_slots = worker_idx + 1;
	return s;
}

static void
add_line(void *arg, const char *line)
{
	struct mqtt_admin_slot *s = arg;

	if (s->n < PAGE) {
		strncpy(s->line[s->n], line, RTE_TEL_MAX_STRING_LEN - 1);
		s->line[s->n][RTE_TEL_MAX_STRING_LEN - 1] = '\0';
		s->n++;
	}
}

void
mqtt_admin_poll(struct mqtt_admin_slot *s, struct broker *b, uint64_t now_ms)
{
	uint32_t g = __atomic_load_n(&adm_gen, __ATOMIC_ACQUIRE);
	size_t len;
	bool first;

	if (s == NULL || g == s->done_gen)
		return;
	len = strlen(adm_req.arg);
	first = s->worker_idx == 0;
	s->n = 0;
	s->total = 0;
	switch (adm_req.op) {
	case ADM_SESSIONS:
		s->total = broker_admin_sessions(b, s->skip, s->max, add_line, s);
		break;
	case ADM_SUBS:
		s->total = broker_admin_subscriptions(b, s->skip, s->max, add_line, s);
		break;
	case ADM_RETAINED:
		if (first)
			s->total = broker_admin_retained(b, s->skip, s->max, add_line, s);
		break;
	case ADM_KICK:
	case ADM_KICK_PURGE:
		s->total = (size_t)broker_admin_kick(
		    b, adm_req.arg, len, adm_req.op == ADM_KICK_PURGE, now_ms);
		break;
	case ADM_RETAINED_DELETE:
		if (first && broker_admin_retained_delete(b, adm_req.arg, len, now_ms) > 0)
			s->total = 1;
		break;
	case ADM_PUBLISH:
		if (first)
			s->total = (size_t)(int64_t)broker_admin_publish(b, adm_req.arg, len,
			    adm_req.payload, adm_req.plen, adm_req.qos, adm_req.retain, now_ms);
		break;
	}
	__atomic_store_n(&s->done_gen, g, __ATOMIC_RELEASE);
}

/* One round: every worker answers the request now in adm_req (under adm_lock). */
static int
round_trip(void)
{
	uint32_t g = adm_gen + 1;

	__atomic_store_n(&adm_gen, g, __ATOMIC_RELEASE);
	for (int waited = 0; waited < WAIT_MS * 5; waited++) {
		bool all = true;

		for (unsigned i = 0; i < n_slots && all; i++)
			all = slots[i] == NULL ||
			    __atomic_load_n(&slots[i]->done_gen, __ATOMIC_ACQUIRE) == g;
		if (all)
			return 0;
		usleep(200);
	}
	return -ETIMEDOUT;
}

/* A page of a listing from offset on: counts first, then each worker's share of the page. */
static int
listing(enum adm_op op, const char *params, struct rte_tel_data *d)
{
	size_t offset = params != NULL && *params ? strtoull(params, NULL, 10) : 0, total = 0;
	size_t before = 0, want = PAGE;
	struct rte_tel_data *lines;
	int rc;

	if ((lines = rte_tel_data_alloc()) == NULL)
		return -ENOMEM;
	rte_tel_data_start_array(lines, RTE_TEL_STRING_VAL);
	pthread_mutex_lock(&adm_lock);
	adm_req.op = op;
	adm_req.arg[0] = '\0';
	for (unsigned i = 0; i < n_slots; i++)
		if (slots[i] != NULL)
			slots[i]->skip = slots[i]->max = 0;
	if ((rc = round_trip()) != 0)
		goto out;
	/* each worker's share: the entries of the page that fall in its range */
	for (unsigned i = 0; i < n_slots; i++) {
		size_t n, lo;

		if (slots[i] == NULL)
			continue;
		n = slots[i]->total;
		total += n;
		lo = offset > before ? offset - before : 0;
		slots[i]->skip = lo;
		slots[i]->max = lo < n ? RTE_MIN(n - lo, want) : 0;
		want -= slots[i]->max;
		before += n;
	}
	if ((rc = round_trip()) != 0)
		goto out;
	for (unsigned i = 0; i < n_slots; i++)
		for (unsigned k = 0; slots[i] != NULL && k < slots[i]->n; k++)
			rte_tel_data_add_array_string(lines, slots[i]->line[k]);
out:
	pthread_mutex_unlock(&adm_lock);
	if (rc != 0) {
		rte_tel_data_free(lines);
		return rc;
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "total", total);
	rte_tel_data_add_dict_u64(d, "offset", offset);
	rte_tel_data_add_dict_u64(d, "page", PAGE);
	rte_tel_data_add_dict_container(d, "lines", lines, 0);
	return 0;
}

static int
tel_listing(const char *cmd, const char *params, struct rte_tel_data *d)
{
	if (strcmp(cmd, "/edgegw/sessions") == 0)
		return listing(ADM_SESSIONS, params, d);
	if (strcmp(cmd, "/edgegw/subscriptions") == 0)
		return listing(ADM_SUBS, params, d);
	return listing(ADM_RETAINED, params, d);
}

/* kick, kick_purge, retained_delete: the parameter is the client id or topic, whole. */
static int
tel_action(const char *cmd, const char *params, struct rte_tel_data *d)
{
	enum adm_op op = strcmp(cmd, "/edgegw/kick") == 0 ? ADM_KICK
	    : strcmp(cmd, "/edgegw/kick_purge") == 0      ? ADM_KICK_PURGE
							  : ADM_RETAINED_DELETE;
	size_t found = 0;
	int rc;

	if (params == NULL || *params == '\0' || strlen(params) >= ARG_MAX)
		return -EINVAL;
	pthread_mutex_lock(&adm_lock);
	adm_req.op = op;
	strcpy(adm_req.arg, params);
	rc = round_trip();
	for (unsigned i = 0; rc == 0 && i < n_slots; i++)
		if (slots[i] != NULL)
			found += slots[i]->total;
	pthread_mutex_unlock(&adm_lock);
	if (rc != 0)
		return rc;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "found", found);
	return 0;
}

/* publish: "QOS,RETAIN,TOPIC_LEN,TOPIC PAYLOAD" (the topic's length says where the payload
 * starts, so both may hold commas). Answers {"matched": 0|1} or an error. */
static int
tel_publish(const char *cmd, const char *params, struct rte_tel_data *d)
{
	unsigned qos, retain;
	size_t tlen, plen;
	const char *at;
	int used = 0, rc;
	int64_t r = 0;

	(void)cmd;
	if (params == NULL || sscanf(params, "%u,%u,%zu,%n", &qos, &retain, &tlen, &used) != 3 ||
	    used == 0 || qos > 2 || retain > 1 || tlen == 0 || tlen >= ARG_MAX)
		return -EINVAL;
	at = params + used;
	if (strlen(at) < tlen)
		return -EINVAL;
	plen = strlen(at + tlen);
	if (plen > sizeof(adm_req.payload))
		return -E2BIG;
	pthread_mutex_lock(&adm_lock);
	adm_req.op = ADM_PUBLISH;
	memcpy(adm_req.arg, at, tlen);
	adm_req.arg[tlen] = '\0';
	memcpy(adm_req.payload, at + tlen, plen);
	adm_req.plen = plen;
	adm_req.qos = (uint8_t)qos;
	adm_req.retain = retain != 0;
	rc = round_trip();
	if (rc == 0 && n_slots > 0 && slots[0] != NULL)
		r = (int64_t)slots[0]->total;
	pthread_mutex_unlock(&adm_lock);
	if (rc != 0)
		return rc;
	if (r < 0)
		return (int)r;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "matched", (uint64_t)r);
	return 0;
}

int
mqtt_admin_telemetry_init(void)
{
	return rte_telemetry_register_cmd("/edgegw/sessions", tel_listing,
		   "MQTT sessions, a page of 100 lines from the offset given. Param: offset") |
	    rte_telemetry_register_cmd("/edgegw/subscriptions", tel_listing,
		"MQTT subscriptions, a page of 100 lines from the offset given. Param: offset") |
	    rte_telemetry_register_cmd("/edgegw/retained", tel_listing,
		"Retained messages, a page of 100 lines from the offset given. Param: offset") |
	    rte_telemetry_register_cmd("/edgegw/kick", tel_action,
		"Disconnect an MQTT client (5.0: reason 0x98). Param: client id") |
	    rte_telemetry_register_cmd("/edgegw/kick_purge", tel_action,
		"Disconnect an MQTT client and remove its session. Param: client id") |
	    rte_telemetry_register_cmd(
		"/edgegw/retained_delete", tel_action, "Clear a retained message. Param: topic") |
	    rte_telemetry_register_cmd("/edgegw/publish", tel_publish,
		"Publish a message from the gateway. Params: qos,retain,topic_len,topic+payload");
}
