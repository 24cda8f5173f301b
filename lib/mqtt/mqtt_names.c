/*
 * mqtt_names.c: names for logs and the tables behind them: packet types, codec errors (with the
 * 5.0 reason code each one calls for) and reason codes (with the packets that may carry each).
 */
#include "mqtt_internal.h"

#define R_CONNACK    MQTT_TBIT(MQTT_CONNACK)
#define R_PUBACK     MQTT_TBIT(MQTT_PUBACK)
#define R_PUBREC     MQTT_TBIT(MQTT_PUBREC)
#define R_PUBREL     MQTT_TBIT(MQTT_PUBREL)
#define R_PUBCOMP    MQTT_TBIT(MQTT_PUBCOMP)
#define R_SUBACK     MQTT_TBIT(MQTT_SUBACK)
#define R_UNSUBACK   MQTT_TBIT(MQTT_UNSUBACK)
#define R_DISCONNECT MQTT_TBIT(MQTT_DISCONNECT)
#define R_AUTH       MQTT_TBIT(MQTT_AUTH)

struct reason_info {
	uint8_t code;
	const char *name;
	uint32_t packets;
};

static const struct reason_info reason_tab[] = {
#define MQTT_RC(nm, val, text, mask) { (val), (text), (mask) },
#include "mqtt_reason.def"
#undef MQTT_RC
};

static const struct {
	const char *text;
	uint8_t reason;
} err_tab[MQTT_E_COUNT] = {
	[MQTT_E_OK] = { "ok", 0 },
#define MQTT_ERR(nm, rc, text) [MQTT_E_##nm] = { (text), (rc) },
#include "mqtt_error.def"
#undef MQTT_ERR
};

static const char *const type_names[16] = {
	"RESERVED",
	"CONNECT",
	"CONNACK",
	"PUBLISH",
	"PUBACK",
	"PUBREC",
	"PUBREL",
	"PUBCOMP",
	"SUBSCRIBE",
	"SUBACK",
	"UNSUBSCRIBE",
	"UNSUBACK",
	"PINGREQ",
	"PINGRESP",
	"DISCONNECT",
	"AUTH",
};

const char *
mqtt_type_name(enum mqtt_type type)
{
	return (unsigned)type < 16 ? type_names[type] : "INVALID";
}

const char *
mqtt_err_str(int err)
{
	if (err < 0)
		err = -err;
	return err < MQTT_E_COUNT ? err_tab[err].text : "unknown codec error";
}

uint8_t
mqtt_err_reason(int err)
{
	if (err < 0)
		err = -err;
	return err > 0 && err < MQTT_E_COUNT ? err_tab[err].reason : MQTT_RC_UNSPECIFIED_ERROR;
}

/* 3.1.1 CONNACK return codes: 1 unacceptable protocol version, 2 identifier rejected. */
int
mqtt_err_connack_v311(int err)
{
	if (err < 0)
		err = -err;
	if (err == MQTT_E_PROTOCOL_LEVEL)
		return 1;
	if (err == MQTT_E_CLIENT_ID_EMPTY)
		return 2;
	return -1;
}

const char *
mqtt_reason_name(uint8_t code, enum mqtt_type type)
{
	const char *any = NULL;

	for (size_t i = 0; i < sizeof(reason_tab) / sizeof(reason_tab[0]); i++) {
		if (reason_tab[i].code != code)
			continue;
		if (type == 0 || (reason_tab[i].packets & MQTT_TBIT(type)))
			return reason_tab[i].name;
		if (any == NULL)
			any = reason_tab[i].name;
	}
	return any ? any : "Unknown reason code";
}

static bool
reason_valid_v311(enum mqtt_type type, uint8_t code)
{
	if (type == MQTT_CONNACK)
		return code <= 5;
	if (type == MQTT_SUBACK)
		return code <= 2 || code == 0x80;
	return code == 0;
}

bool
mqtt_reason_valid(uint8_t version, enum mqtt_type type, uint8_t code)
{
	if (version != MQTT_V5)
		return reason_valid_v311(type, code);
	for (size_t i = 0; i < sizeof(reason_tab) / sizeof(reason_tab[0]); i++)
		if (reason_tab[i].code == code && (reason_tab[i].packets & MQTT_TBIT(type)))
			return true;
	return false;
}
