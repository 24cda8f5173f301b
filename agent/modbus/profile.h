/*
 * profile.h: device profiles (register maps) for the Modbus poller. A profile is one YAML file in
 * the agent's profiles directory; it lists points (what to read, how to decode it, where and how
 * to publish it). Loaded and validated whole at start; every rejection names file:line.
 * Neighbours: decode.h turns a point's registers into a value, planner.h groups points into reads.
 */
#ifndef EDGEGW_MB_PROFILE_H
#define EDGEGW_MB_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MB_NAME_MAX     48
#define MB_UNIT_MAX     16
#define MB_TOPIC_MAX    192
#define MB_STR_REGS_MAX 32 /* a string point spans at most 32 registers (64 characters) */

/* Modbus data tables: the read function follows from the table. */
enum mb_func {
	MB_FN_COIL = 0,
	MB_FN_DISCRETE,
	MB_FN_HOLDING,
	MB_FN_INPUT,
	MB_FN_COUNT
};

enum mb_type {
	MB_T_BOOL = 0,
	MB_T_U16,
	MB_T_I16,
	MB_T_U32,
	MB_T_I32,
	MB_T_U64,
	MB_T_I64,
	MB_T_F32,
	MB_T_F64,
	MB_T_STRING,
	MB_T_BIT,
	MB_T_COUNT
};

struct mb_point {
	char name[MB_NAME_MAX];
	enum mb_func func;
	enum mb_type type;
	uint16_t address;
	uint16_t count; /* registers (or bits, for coils and discrete inputs) it spans */
	uint8_t bit;    /* MB_T_BIT: bit 0 (LSB) .. 15 of the register */
	bool byte_swap; /* byte_order: little (BA within each register) */
	bool word_swap; /* word_order: little (low word first) */
	bool writable;
	bool
	    write_multiple; /* FC15/FC16 even for one coil/register (profile write_single: multiple) */
	bool mask_write; /* bit points: FC22 mask write (bit_write: mask), else read-modify-write */
	bool has_min, has_max; /* engineering-unit limits for writes */
	double min, max;
	double scale, offset;  /* engineering = raw * scale + offset */
	double deadband;       /* engineering units; 0: any change is reported */
	uint64_t heartbeat_ms; /* report at least this often; 0: only on change */
	uint64_t interval_ms; /* poll rate of its own (interval:, or its group:); 0: the device's */
	uint8_t qos;
	char unit[MB_UNIT_MAX];
	char
	    topic[MB_TOPIC_MAX]; /* template: {prefix} {bus} {device} {point} {unit_id} {profile} */
	unsigned line;           /* line in the profile file, for messages */
};

/* Addresses a device does not serve (it answers reads over them with exception 2): declared
 * in the profile (holes:) or learnt from the device. A read never spans one. */
struct mb_hole {
	enum mb_func func;
	uint16_t start, count;
};

struct mb_profile {
	char name[MB_NAME_MAX];
	char path[256];
	uint16_t max_read_regs; /* per request; devices that reject long reads set less than 125 */
	uint16_t max_read_bits; /* per request; at most 2000 */
	int32_t max_gap; /* registers/bits read through at most; -1: as the cost model says */
	struct mb_point *points;
	size_t npoints;
	struct mb_hole *holes; /* declared: holes: [{function, address, count}] */
	size_t nholes;
};

/* How a profile writes addresses (profile key addressing:). */
enum mb_addressing {
	MB_ADDR_ZERO = 0, /* protocol addresses, 0..65535 (the default) */
	MB_ADDR_ONE,      /* 1-based, as many manuals number registers */
	MB_ADDR_MODICON   /* 40001-style references; the leading digit names the table */
};
extern const char *const mb_addressing_names[]; /* "zero", "one", "modicon" */

extern const char *const mb_func_names[]; /* "coil", "discrete", "holding", "input" */
extern const char *const mb_type_names[];

/* Names of points, devices, buses, profiles: letters, digits and _ . : - (they end up in
 * topics and JSON unescaped). */
bool mb_name_valid(const char *s);

/* The number of registers a type spans (strings: their length; bits: 1). */
uint16_t mb_type_regs(enum mb_type t);
bool mb_func_is_bits(enum mb_func f);

/*
 * Parse a profile from text (name is the file name for messages). On failure returns -EINVAL
 * with "file:line:col: reason" in err. Defaults at profile level: byte_order, word_order, qos,
 * deadband, heartbeat, topic.
 */
int mb_profile_parse(const char *name, const char *text, size_t len, struct mb_profile *out,
    char *err, size_t errlen);
int mb_profile_load(const char *path, struct mb_profile *out, char *err, size_t errlen);
void mb_profile_free(struct mb_profile *p);

/* A profile file that did not load: the devices naming it are disabled (agent_config.h). */
struct mb_profile_bad {
	char name[MB_NAME_MAX]; /* its name: key if the YAML reads that far, else the file's name */
	char path[256];
	char error[1024]; /* "file:line:col: reason", one line per error */
};

/* A set of profiles loaded from a directory (every *.yaml / *.yml file), and the files that
 * did not load (a name used twice makes the second file bad). */
struct mb_profile_set {
	struct mb_profile *v;
	size_t n;
	struct mb_profile_bad *bad;
	size_t nbad;
};
/* Every file, good ones into v and bad ones into bad: fails only when the directory cannot be
 * read (or memory runs out), with the reason in err. */
int mb_profile_dir_load_all(const char *dir, struct mb_profile_set *set, char *err, size_t errlen);
/* All or nothing: -EINVAL with every bad file's errors in err when one does not load. */
int mb_profile_dir_load(const char *dir, struct mb_profile_set *set, char *err, size_t errlen);
/* Every bad file's errors, one per line, into buf; returns how many files are bad. */
int mb_profile_set_errors(const struct mb_profile_set *set, char *buf, size_t len);
const struct mb_profile *mb_profile_find(const struct mb_profile_set *set, const char *name);
/* The same register map, read and published the same way (its file and lines aside). */
bool mb_profile_same(const struct mb_profile *a, const struct mb_profile *b);
const struct mb_profile_bad *
mb_profile_find_bad(const struct mb_profile_set *set, const char *name);
const struct mb_point *mb_profile_point(const struct mb_profile *p, const char *name, size_t *idx);
void mb_profile_set_free(struct mb_profile_set *set);

#endif
