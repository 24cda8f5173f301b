/*
 * agent_config.h: the agent's part of the gateway config (the top-level "agent:" section; the
 * "dataplane:" section belongs to edgegw-dataplane and is skipped). Parsed with lib/conf into
 * this struct and validated whole, with file:line errors, before anything starts.
 */
#ifndef EDGEGW_AGENT_CONFIG_H
#define EDGEGW_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rs485.h"
#include "profile.h"
#include "log.h"

enum agent_bus_kind {
	AGENT_BUS_RTU = 0,
	AGENT_BUS_TCP
};
enum agent_uplink_kind {
	AGENT_UPLINK_MQTT = 0,
	AGENT_UPLINK_JSONL
};

struct uplink_mqtt_conf;
struct store_conf;

struct agent_device_conf {
	char name[MB_NAME_MAX];
	uint8_t unit_id;
	uint64_t interval_ms;
	uint64_t timeout_ms;
	uint32_t retries;
	uint64_t pause_ms;                /* silence before each request to it; 0: the bus's */
	const struct mb_profile *profile; /* points into agent_config.profiles; NULL: disabled */
	char profile_name[MB_NAME_MAX];
	char disabled[512]; /* why it does not run (its profile does not load); "": it runs */
};

struct agent_bus_conf {
	char name[MB_NAME_MAX];
	enum agent_bus_kind kind;
	char device[256]; /* RTU: serial device path */
	struct rs485_line line;
	struct rs485_mode rs485;
	char host[128]; /* TCP: server (or RTU gateway) address */
	uint16_t port;
	uint64_t turnaround_ms; /* expected device think time / round trip, for planning */
	uint64_t max_backoff_ms;
	uint64_t pause_ms;   /* pause_between_requests: silence kept before every request */
	char state_dir[256]; /* agent.state_dir, copied (what the poller learnt is kept there) */
	struct agent_device_conf *devs; /* the devices that run */
	size_t ndevs;
	struct agent_device_conf *off; /* disabled: their profile is bad or missing (not strict) */
	size_t noff;
};

struct agent_config {
	enum log_level log_level;
	char profiles_dir[512];
	char state_dir[256]; /* learnt per-device state: <state_dir>/modbus/ */
	struct mb_profile_set profiles;
	char topic_prefix[128];
	enum agent_uplink_kind uplink;
	char jsonl_path[512];          /* "-" or empty: stdout */
	char jsonl_commands[512];      /* optional FIFO or file of command lines */
	struct uplink_mqtt_conf *mqtt; /* the "mqtt:" section, parsed by agent/uplink/mqtt_conf.c */
	struct store_conf *store; /* the top-level "uplink:" section, agent/uplink/store_conf.c */
	char cmd_topic[MB_TOPIC_MAX];
	char cmd_response_topic[MB_TOPIC_MAX];
	char stats_file[512];
	uint64_t stats_interval_ms;
	char metrics_listen[64];       /* agent.metrics.listen, "host:port"; empty: no /metrics */
	char dataplane_telemetry[256]; /* the dataplane's DPDK telemetry socket */
	struct agent_bus_conf *buses;
	size_t nbuses;
	char load_error
	    [4096];       /* the bad profiles' own errors (strict), reported before the config's */
	bool strict;      /* a bad or missing profile is an error, not a disabled device */
	size_t ndisabled; /* devices disabled, over all buses */
	bool profiles_unread; /* parsing: profiles_dir unusable, devices' profiles not looked up */
	char warnings[2048];  /* what loads but may not run as meant: "file:line:col: ..." lines */
};

/*
 * 0, or -EINVAL with "file:line:col: reason" in err. Strict (--strict, --check, and these two
 * plain calls): every profile file must load and every device's profile exist. Not strict (the
 * running agent): a device whose profile is bad or missing goes to its bus's off list with the
 * reason, the others run; the bad files are in cfg->profiles.bad. Config errors are errors in
 * both modes.
 */
int agent_config_load(const char *path, struct agent_config *cfg, char *err, size_t errlen);
int agent_config_parse_string(const char *name, const char *text, size_t len,
    struct agent_config *cfg, char *err, size_t errlen);
int agent_config_load_mode(
    const char *path, bool strict, struct agent_config *cfg, char *err, size_t errlen);
int agent_config_parse_string_mode(const char *name, const char *text, size_t len, bool strict,
    struct agent_config *cfg, char *err, size_t errlen);
void agent_config_free(struct agent_config *cfg);
/* Two buses that would poll the same way (their running devices and those devices' profiles
 * included; disabled devices aside): a reload keeps such a bus running. */
bool agent_bus_conf_same(const struct agent_bus_conf *a, const struct agent_bus_conf *b);
/* "a.b.c.d:port" or "[v6]:port" into a socket address: 0, or -EINVAL. */
struct sockaddr_storage;
int agent_listen_parse(const char *s, struct sockaddr_storage *ss);

#endif
