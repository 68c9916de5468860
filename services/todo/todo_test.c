/* services/todo/todo_test.c - the todo service's own tests, written with the
 * test library (keel/test.h) as a team writes theirs: every test starts the
 * services in this program on fresh copies of their databases, so each one
 * begins with an empty todo list whatever the one before it did.
 *     keel test build/services/todo/todo_test
 * Prints TAP, and the time each test took to get its databases. */
#include <keel/test.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services.h"
#include "tap.h"

static const keel_service *const services[] = {&todo_service, &stats_service, &auth_service, NULL};

static double setup_ms[8];
static int tests;

/* Starts a test, or bails out: nothing else can be checked without it. */
static keel_test *start(void)
{
    keel_test *t;
    keel_error *err = keel_test_start(services, &t);
    if (err) {
        printf("Bail out! %s\n", err->message);
        keel_error_free(err);
        exit(1);
    }
    setup_ms[tests++ % 8] = keel_test_setup_ms(t);
    return t;
}

static keel_client_answer call(keel_test *t, const char *method, const char *path, const char *json)
{
    keel_client_answer a;
    keel_error *err = keel_test_request(t, method, path, json, &a);
    if (err) {
        printf("Bail out! %s %s: %s\n", method, path, err->message);
        keel_error_free(err);
        exit(1);
    }
    return a;
}

static void creates_and_lists(void)
{
    keel_test *t = start();
    keel_client_answer a = call(t, "GET", "/todo", NULL);
    is_str(a.body, "{\"items\":[]}", "a fresh database: the list is empty");
    a = call(t, "POST", "/todo", "{\"title\":\"write tests\"}");
    is_int((int)a.status, 200, "POST /todo creates an item");
    like(a.body, "\"id\":1", "the first item of a fresh database is number 1");
    call(t, "POST", "/todo", "{\"title\":\"run them\"}");
    a = call(t, "GET", "/todo", NULL);
    like(a.body, "\"title\":\"write tests\"", "the list holds the first");
    like(a.body, "\"title\":\"run them\"", "and the second");
    a = call(t, "GET", "/stats/todo", NULL);
    is_str(a.body, "{\"total\":2,\"done\":0}", "stats reads the same database");
    keel_test_stop(t);
}

static void starts_empty_again(void)
{
    keel_test *t = start();
    keel_client_answer a = call(t, "GET", "/todo", NULL);
    is_str(a.body, "{\"items\":[]}", "the next test starts with an empty list again");
    a = call(t, "POST", "/todo", "{\"title\":\"again\"}");
    like(a.body, "\"id\":1", "and its first item is number 1 again");
    keel_test_stop(t);
}

static void errors(void)
{
    keel_test *t = start();
    keel_client_answer a = call(t, "GET", "/todo/41", NULL);
    is_int((int)a.status, 404, "an item that does not exist is 404");
    like(a.body, "\"code\":\"not_found\"", "in Encore's error shape");
    a = call(t, "POST", "/todo", "{\"title\":42}");
    is_int((int)a.status, 400, "a title that is not a string is 400");
    a = call(t, "DELETE", "/todo", NULL);
    is_int((int)a.status, 401, "clearing the list needs the admin token");
    a = call(t, "PUT", "/todo/1/done", NULL);
    is_int((int)a.status, 404, "marking an item that does not exist is 404");
    keel_test_stop(t);
}

int main(void)
{
    creates_and_lists();
    starts_empty_again();
    errors();
    for (int i = 0; i < 2; i++)
        starts_empty_again();
    /* A figure for the record, not a timed check: a busy machine is slower. */
    double worst = 0, sum = 0;
    bool all = true;
    for (int i = 0; i < tests && i < 8; i++) {
        sum += setup_ms[i];
        worst = setup_ms[i] > worst ? setup_ms[i] : worst;
        all &= setup_ms[i] > 0;
    }
    ok(all, "every test made fresh copies of its databases");
    diag("fresh databases per test: todo, webhooks and accounts copied together from their templates in %.1f ms "
         "on average (%.1f ms at most) over %d tests", sum / tests, worst, tests);
    return tap_done();
}
