/* services/services.h - the example application's services, for main.c and
 * the tests. */
#ifndef KEEL_EXAMPLE_SERVICES_H
#define KEEL_EXAMPLE_SERVICES_H

#include <keel/keel.h>

extern const keel_service hello_service;
extern const keel_service echo_service;
extern const keel_service todo_service;
extern const keel_service stats_service;
extern const keel_service external_service;

extern const keel_service webhooks_service;
extern const keel_service auth_service;

#endif
