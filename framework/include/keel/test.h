/* keel/test.h - testing a team's own services against a real database,
 * fast: the test library (libkeel-test, pkg-config keel-test).
 *
 * Test programs run under `keel test`, which keeps a test cluster apart
 * from keel run's (fsync off) with every managed database migrated once as
 * a template.  keel_test_start gives each test a fresh copy of each
 * database (CREATE DATABASE ... TEMPLATE: no migrations to run again) and
 * starts the app inside the test program on a free port of 127.0.0.1;
 * keel_test_stop stops it and drops the copies.  One test at a time in a
 * program; test programs may run side by side (their copies have their own
 * names).
 *
 *     static void creates_an_item(void)
 *     {
 *         keel_test *t;
 *         keel_error *err = keel_test_start(services, &t);   // services as in main.c
 *         keel_client_answer a;
 *         err = keel_test_request(t, "POST", "/todo", "{\"title\":\"x\"}", &a);
 *         // a.status == 200, a.body is the JSON answer
 *         keel_test_stop(t);
 *     }
 *
 * Typed calls go through a generated C client (keel gen client --lang c)
 * with keel_test_client(t). */
#ifndef KEEL_TEST_H
#define KEEL_TEST_H

#include "app.h"
#include "client.h"
#include "error.h"
#include "service.h"

#pragma GCC visibility push(default)

typedef struct keel_test keel_test;

/* Makes a fresh copy of every database of the test cluster (the app's
 * managed databases) and starts the app made of services (NULL-terminated)
 * on a free port.  failed_precondition when the program does not run under
 * `keel test` (KEEL_TEST_INFRA_CONFIG is not set).  Sets KEEL_INFRA_CONFIG
 * for the app.  The caller owns *out (keel_test_stop). */
keel_error *keel_test_start(const keel_service *const *services, keel_test **out);

/* Stops the app, drops the copies and frees t; NULL is allowed. */
void keel_test_stop(keel_test *t);

/* "http://127.0.0.1:PORT", where the app listens. */
const char *keel_test_url(const keel_test *t);

/* A client of the app (keel/client.h), for generated clients' calls.
 * Owned by t. */
keel_client *keel_test_client(keel_test *t);

/* Sends method path with json as the body (NULL: none) and gives back the
 * answer, whatever its status; its body lives until keel_test_stop.  Only
 * a transport failure is an error. */
keel_error *keel_test_request(keel_test *t, const char *method, const char *path, const char *json,
                              keel_client_answer *out);

/* The name of the copy of logical database name in this test, or NULL. */
const char *keel_test_database(const keel_test *t, const char *name);

/* How long making the copies took, in milliseconds (all databases). */
double keel_test_setup_ms(const keel_test *t);

#pragma GCC visibility pop

#endif
