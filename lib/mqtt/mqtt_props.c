/*
 * mqtt_props.c: MQTT 5.0 properties, table-driven from mqtt_props.def: which packets allow each
 * one, its type, its range and whether it may repeat. Decoding validates a whole property block
 * and fills struct mqtt_props; encoding checks the same rules before writing.
 */
#include <string.h>

#include "mqtt_internal.h"
#include "mqtt_topic.h"

#define P_WILL        MQTT_WILL_BIT
#define P_CONNECT     MQTT_TBIT(MQTT_CONNECT)
#define P_CONNACK     MQTT_TBIT(MQTT_CONNACK)
#define P_PUBLISH     MQTT_TBIT(MQTT_PUBLISH)
#define P_PUBACK      MQTT_TBIT(MQTT_PUBACK)
#define P_PUBREC      MQTT_TBIT(MQTT_PUBREC)
#define P_PUBREL      MQTT_TBIT(MQTT_PUBREL)
#define P_PUBCOMP     MQTT_TBIT(MQTT_PUBCOMP)
#define P_SUBSCRIBE   MQTT_TBIT(MQTT_SUBSCRIBE)
#define P_SUBACK      MQTT_TBIT(MQTT_SUBACK)
#define P_UNSUBSCRIBE MQTT_TBIT(MQTT_UNSUBSCRIBE)
#define P_UNSUBACK    MQTT_TBIT(MQTT_UNSUBACK)
#define P_DISCONNECT  MQTT_TBIT(MQTT_DISCONNECT)
#define P_AUTH        MQTT_TBIT(MQTT_AUTH)
#define P_ALL         0xFFFFu

struct prop_info {
	const char *name; /* NULL: no such property */
	enum mqtt_prop_type type;
	uint32_t min, max;
	uint32_t allow, repeat;
};

static const struct prop_info prop_tab[MQTT_PROP_ID_LIMIT] = {
#define MQTT_PROP(nm, id, ty, mn, mx, al, rp) \
	[id] = { #nm, MQTT_PT_##ty, (uint32_t)(mn), (uint32_t)(mx), (al), (rp) },
#include "mqtt_props.def"
#undef MQTT_PROP
};

const char *
mqtt_prop_name(uint8_t id)
{
	if (id >= MQTT_PROP_ID_LIMIT || prop_tab[id].name == NULL)
		return "UNKNOWN";
	return prop_tab[id].name;
}

void
mqtt_props_set_u32(struct mqtt_props *p, enum mqtt_prop_id id, uint32_t val)
{
	p->present |= 1ull << id;
	p->v[id].u = val;
}

void
mqtt_props_set_str(struct mqtt_props *p, enum mqtt_prop_id id, struct mqtt_str val)
{
	p->present |= 1ull << id;
	p->v[id].s = val;
}

bool
mqtt_props_empty(const struct mqtt_props *p)
{
	uint64_t arrays =
	    1ull << MQTT_PROP_USER_PROPERTY | 1ull << MQTT_PROP_SUBSCRIPTION_IDENTIFIER;

	return (p->present & ~arrays) == 0 && p->n_user == 0 && p->n_sub_ids == 0;
}

/* Range and cross-field value rules shared by decode and encode. */
static int
prop_value_ok(uint8_t id, uint32_t v)
{
	if (id == MQTT_PROP_TOPIC_ALIAS && v == 0)
		return -MQTT_E_TOPIC_ALIAS_ZERO;
	if (v < prop_tab[id].min || v > prop_tab[id].max)
		return -MQTT_E_PROP_VALUE;
	return 0;
}

static int
prop_str_ok(uint8_t id, struct mqtt_str s)
{
	if (id == MQTT_PROP_RESPONSE_TOPIC)
		return mqtt_topic_name_valid(s.s, s.len) == 0 ? 0 : -MQTT_E_PROP_VALUE;
	if (prop_tab[id].type == MQTT_PT_STR)
		return mqtt_utf8_check((const uint8_t *)s.s, s.len);
	return 0;
}

/* One property's value into p (scalars) or counted (arrays); pass 2 fills the arrays. */
static int
prop_read_value(struct mqtt_cur *c, uint8_t id, struct mqtt_props *p, struct mqtt_user_prop *up,
    uint32_t *sub_id)
{
	uint8_t b;
	uint16_t h;
	int rc;

	switch (prop_tab[id].type) {
	case MQTT_PT_BYTE:
		rc = mqtt_cur_u8(c, &b);
		p->v[id].u = b;
		break;
	case MQTT_PT_U16:
		rc = mqtt_cur_u16(c, &h);
		p->v[id].u = h;
		break;
	case MQTT_PT_U32:
		rc = mqtt_cur_u32(c, &p->v[id].u);
		break;
	case MQTT_PT_VBI:
		rc = mqtt_cur_vbi(c, sub_id);
		p->v[id].u = *sub_id;
		break;
	case MQTT_PT_STR:
	case MQTT_PT_BIN:
		rc = mqtt_cur_bin(c, &p->v[id].s);
		return rc != 0 ? rc : prop_str_ok(id, p->v[id].s);
	case MQTT_PT_PAIR:
		if ((rc = mqtt_cur_str(c, &up->key)) != 0)
			return rc;
		return mqtt_cur_str(c, &up->val);
	default:
		return -MQTT_E_PROP_UNKNOWN;
	}
	return rc != 0 ? rc : prop_value_ok(id, p->v[id].u);
}

/*
 * Walk a property block. The first pass (fill false) validates and counts; the second stores
 * user properties and subscription identifiers into the arrays it was given.
 */
static int
props_walk(const uint8_t *blk, uint32_t len, uint32_t where, struct mqtt_props *p, bool fill,
    struct mqtt_user_prop *users, uint32_t *subs, struct mqtt_scratch *sc)
{
	struct mqtt_iov one = { blk, len };
	struct mqtt_cur c;
	uint16_t nu = 0, ns = 0;
	int rc;

	mqtt_cur_init(&c, &one, 1, sc);
	c.left = len;
	while (c.left > 0) {
		struct mqtt_user_prop up;
		uint32_t id, sub = 0;

		if ((rc = mqtt_cur_vbi(&c, &id)) != 0)
			return rc == -MQTT_E_TRUNCATED ? -MQTT_E_PROP_LENGTH : rc;
		if (id >= MQTT_PROP_ID_LIMIT || prop_tab[id].name == NULL)
			return -MQTT_E_PROP_UNKNOWN;
		if (!(prop_tab[id].allow & where))
			return -MQTT_E_PROP_NOT_ALLOWED;
		if (mqtt_props_has(p, id) && !(prop_tab[id].repeat & where) && !fill)
			return -MQTT_E_PROP_DUPLICATE;
		if ((rc = prop_read_value(&c, (uint8_t)id, p, &up, &sub)) != 0)
			return rc == -MQTT_E_TRUNCATED ? -MQTT_E_PROP_LENGTH : rc;
		p->present |= 1ull << id;
		if (fill && id == MQTT_PROP_USER_PROPERTY)
			users[nu] = up;
		if (fill && id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER)
			subs[ns] = sub;
		nu += id == MQTT_PROP_USER_PROPERTY;
		ns += id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER;
	}
	p->n_user = nu;
	p->n_sub_ids = ns;
	return 0;
}

int
mqtt_props_decode(struct mqtt_cur *c, uint32_t where, struct mqtt_props *p)
{
	struct mqtt_user_prop *users = NULL;
	uint32_t *subs = NULL;
	const uint8_t *blk;
	uint32_t len;
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = mqtt_cur_vbi(c, &len)) != 0)
		return rc == -MQTT_E_TRUNCATED ? -MQTT_E_PROP_LENGTH : rc;
	if (len > c->left)
		return -MQTT_E_PROP_LENGTH;
	if ((rc = mqtt_cur_bytes(c, len, &blk)) != 0)
		return rc;
	if ((rc = props_walk(blk, len, where, p, false, NULL, NULL, c->sc)) != 0)
		return rc;
	if (mqtt_props_has(p, MQTT_PROP_AUTHENTICATION_DATA) &&
	    !mqtt_props_has(p, MQTT_PROP_AUTHENTICATION_METHOD))
		return -MQTT_E_AUTH_DATA_NO_METHOD;
	if (p->n_user == 0 && p->n_sub_ids == 0)
		return 0;
	users = p->n_user ? mqtt_scratch_alloc(c->sc, p->n_user * sizeof(*users)) : NULL;
	subs = p->n_sub_ids ? mqtt_scratch_alloc(c->sc, p->n_sub_ids * sizeof(*subs)) : NULL;
	if ((p->n_user && users == NULL) || (p->n_sub_ids && subs == NULL))
		return -MQTT_E_SCRATCH_FULL;
	/* Second pass only collects the arrays; scalars are rewritten with the same values. */
	if ((rc = props_walk(blk, len, where, p, true, users, subs, c->sc)) != 0)
		return rc;
	p->user = users;
	p->sub_ids = subs;
	return 0;
}

int
mqtt_props_check(const struct mqtt_props *p, uint32_t where)
{
	uint64_t arrays =
	    1ull << MQTT_PROP_USER_PROPERTY | 1ull << MQTT_PROP_SUBSCRIPTION_IDENTIFIER;
	int rc;

	/* Only the properties present: the usual packet has none or two. */
	for (uint64_t bits = p->present & ~arrays & ((1ull << MQTT_PROP_ID_LIMIT) - 1); bits;
	     bits &= bits - 1) {
		uint8_t id = (uint8_t)__builtin_ctzll(bits);

		if (prop_tab[id].name == NULL)
			return -MQTT_E_PROP_UNKNOWN;
		if (!(prop_tab[id].allow & where))
			return -MQTT_E_PROP_NOT_ALLOWED;
		if (prop_tab[id].type == MQTT_PT_STR || prop_tab[id].type == MQTT_PT_BIN)
			rc = prop_str_ok(id, p->v[id].s);
		else
			rc = prop_value_ok(id, p->v[id].u);
		if (rc != 0)
			return rc;
	}
	if (p->present >> MQTT_PROP_ID_LIMIT)
		return -MQTT_E_PROP_UNKNOWN;
	for (uint16_t i = 0; i < p->n_user; i++) {
		if ((rc = mqtt_utf8_check((const uint8_t *)p->user[i].key.s, p->user[i].key.len)) ||
		    (rc = mqtt_utf8_check((const uint8_t *)p->user[i].val.s, p->user[i].val.len)))
			return rc;
	}
	if (p->n_sub_ids > 0 && !(prop_tab[MQTT_PROP_SUBSCRIPTION_IDENTIFIER].allow & where))
		return -MQTT_E_PROP_NOT_ALLOWED;
	if (p->n_sub_ids > 1 && !(prop_tab[MQTT_PROP_SUBSCRIPTION_IDENTIFIER].repeat & where))
		return -MQTT_E_PROP_DUPLICATE;
	for (uint16_t i = 0; i < p->n_sub_ids; i++)
		if ((rc = prop_value_ok(MQTT_PROP_SUBSCRIPTION_IDENTIFIER, p->sub_ids[i])) != 0)
			return rc;
	if (mqtt_props_has(p, MQTT_PROP_AUTHENTICATION_DATA) &&
	    !mqtt_props_has(p, MQTT_PROP_AUTHENTICATION_METHOD))
		return -MQTT_E_AUTH_DATA_NO_METHOD;
	return 0;
}

static void
prop_write_one(struct mqtt_wr *w, uint8_t id, const struct mqtt_props *p)
{
	mqtt_wr_u8(w, id);
	switch (prop_tab[id].type) {
	case MQTT_PT_BYTE:
		mqtt_wr_u8(w, (uint8_t)p->v[id].u);
		break;
	case MQTT_PT_U16:
		mqtt_wr_u16(w, (uint16_t)p->v[id].u);
		break;
	case MQTT_PT_U32:
		mqtt_wr_u32(w, p->v[id].u);
		break;
	case MQTT_PT_VBI:
		mqtt_wr_vbi(w, p->v[id].u);
		break;
	default:
		mqtt_wr_str(w, p->v[id].s);
		break;
	}
}

/* Writes the properties (not the block length) in id order, then the arrays. */
void
mqtt_props_write(struct mqtt_wr *w, const struct mqtt_props *p)
{
	uint64_t arrays =
	    1ull << MQTT_PROP_USER_PROPERTY | 1ull << MQTT_PROP_SUBSCRIPTION_IDENTIFIER;

	for (uint64_t bits = p->present & ~arrays & ((1ull << MQTT_PROP_ID_LIMIT) - 1); bits;
	     bits &= bits - 1)
		prop_write_one(w, (uint8_t)__builtin_ctzll(bits), p);
	for (uint16_t i = 0; i < p->n_sub_ids; i++) {
		mqtt_wr_u8(w, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
		mqtt_wr_vbi(w, p->sub_ids[i]);
	}
	for (uint16_t i = 0; i < p->n_user; i++) {
		mqtt_wr_u8(w, MQTT_PROP_USER_PROPERTY);
		mqtt_wr_str(w, p->user[i].key);
		mqtt_wr_str(w, p->user[i].val);
	}
}

size_t
mqtt_props_size(const struct mqtt_props *p)
{
	struct mqtt_wr w = { NULL, 0, 0 };

	mqtt_props_write(&w, p);
	return w.pos;
}
