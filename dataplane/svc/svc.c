/* svc.c: the table of the dataplane's services (svc.h). */
#include <stddef.h>

#include "svc.h"

const struct dp_service *const dp_services[] = {
	&dp_service_echo,
	&dp_service_discard,
	&dp_service_mqtt,
	NULL,
};
