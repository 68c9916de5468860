/* tests/integration/test_replica.c - read replicas (sql/replica.c and the
 * _ro reads of sqldb.c) against a real streaming replica of the local
 * cluster, made with pg_basebackup -R: reads reach the replica
 * (pg_is_in_recovery()), row streams too, reads inside a transaction and
 * writes stay on the primary, the lag and the replica's state are on
 * /__keel/metrics, a stopped replica sends reads to the primary without
 * one failed request, and a replica that answers again gets them back. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static ht_server srv;

static long long json_int(const char *body, const char *key)
{
    json_t *j = json_loads(body ? body : "", 0, NULL);
    long long v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

/* GET path: the status, and "value" of the answer in *value. */
static long get_value(const char *path, long long *value)
{
    ht_response r = ht_request(&srv, "GET", path, NULL, 0, NULL);
    long st = r.status;
    *value = json_int(r.body, "value");
    ht_free(&r);
    return st;
}

/* The metrics page, malloc'd. */
static char *metrics(void)
{
    ht_response r = ht_request(&srv, "GET", "/__keel/metrics", NULL, 0, NULL);
    char *text = strdup(r.body ? r.body : "");
    ht_free(&r);
    return text;
}

/* Waits until the metrics page holds line (up to limit_s). */
static bool metrics_show(const char *line, double limit_s)
{
    for (int i = 0; i < (int)(limit_s * 10); i++) {
        char *m = metrics();
        bool found = strstr(m, line) != NULL;
        free(m);
        if (found)
            return true;
        usleep(100000);
    }
    return false;
}

int main(void)
{
    const char *srcdir = getenv("KEEL_SRCDIR"), *app = getenv("KEEL_DBTESTAPP");
    if (!srcdir || !app) {
        printf("Bail out! KEEL_SRCDIR and KEEL_DBTESTAPP must be set (run through make check)\n");
        return 1;
    }
    bool vg = ht_valgrind();
    char root[256], migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", srcdir);
    ht_make_app_root(root, sizeof root, migrations);
    ht_server provision;
    if (!ht_start_keel_run(&provision, root, NULL)) {
        printf("Bail out! keel run did not provision the databases\n");
        return 1;
    }
    is_int(ht_stop(&provision), 0, "keel run provisioned the local cluster and the databases");

    char replica[256];
    unsigned rport = 0;
    bool made = ht_replica_make(root, replica, sizeof replica, &rport);
    if (!ok(made, "pg_basebackup -R made a streaming replica of the cluster, started on port %u", rport)) {
        ht_remove_app_root(root);
        return tap_done();
    }

    /* The local infra config, with the replica listed for todo. */
    char src[400], dst[400];
    snprintf(src, sizeof src, "%s/.keel/infra.local.json", root);
    snprintf(dst, sizeof dst, "%s/.keel/infra.replica.json", root);
    json_t *infra = json_load_file(src, 0, NULL);
    json_t *server = json_array_get(json_object_get(infra, "sql_servers"), 0);
    json_t *todo = json_object_get(json_object_get(server, "databases"), "todo");
    json_object_set_new(todo, "replicas", json_pack("[{s:s, s:i}]", "host", "127.0.0.1", "port", (int)rport));
    bool written = todo && json_dump_file(infra, dst, JSON_INDENT(2)) == 0 && chmod(dst, 0600) == 0;
    json_decref(infra);
    ok(written, "an infra config that lists it as a replica of todo");

    char env_root[300], env_infra[450];
    snprintf(env_root, sizeof env_root, "KEEL_APP_ROOT=%s", root);
    snprintf(env_infra, sizeof env_infra, "KEEL_INFRA_CONFIG=%s", dst);
    const char *env[] = {env_root, env_infra, "KEEL_REPLICA_CHECK_MS=200", "KEEL_IO_THREADS=1", NULL};
    if (!ht_start(&srv, app, env)) {
        printf("Bail out! the app did not start with the replica\n");
        return 1;
    }
    char up[300];
    snprintf(up, sizeof up, "keel_db_replica_up{database=\"todo\",replica=\"127.0.0.1:%u\"} 1", rport);
    ok(metrics_show(up, vg ? 30 : 5), "the metrics say the replica is up (%s)", up);

    long long v;
    int on_replica = 0, ok_reads = 0;
    for (int i = 0; i < 20; i++) {
        ok_reads += get_value("/dbtest/ro/1", &v) == 200;
        on_replica += v == 1;
    }
    ok(ok_reads == 20 && on_replica == 20, "keel_db_query_row_ro reads reach the replica: pg_is_in_recovery() "
       "on %d of 20", on_replica);
    is_int(get_value("/dbtest/ro-stream/50", &v), 200, "keel_db_query_ro streams rows");
    is_int((int)v, 50, "all 50 from the replica");
    is_int(get_value("/dbtest/ro-tx/1", &v), 200, "a read inside a transaction");
    is_int((int)v, 0, "goes to the primary");
    const char *item = "{\"title\":\"written on the primary\"}";
    ht_response r = ht_request(&srv, "POST", "/todo", item, strlen(item), NULL);
    is_int(r.status, 200, "a write goes to the primary (the replica would refuse it)");
    ht_free(&r);
    bool seen = false;
    for (int i = 0; i < 50 && !seen; i++) {
        r = ht_request(&srv, "GET", "/todo", NULL, 0, NULL);
        seen = r.body && strstr(r.body, "written on the primary");
        ht_free(&r);
        if (!seen)
            usleep(100000);
    }
    ok(seen, "and is read back");

    char *m = metrics();
    char lag[300];
    snprintf(lag, sizeof lag, "keel_db_replica_lag_seconds{database=\"todo\",replica=\"127.0.0.1:%u\"} ", rport);
    const char *at = strstr(m, lag);
    double lag_s = at ? strtod(at + strlen(lag), NULL) : -1;
    ok(at && lag_s >= 0 && lag_s < 60, "the replication lag is on the metrics page (%.3f s)", lag_s);
    snprintf(lag, sizeof lag,
             "keel_db_replica_statements_total{database=\"todo\",replica=\"127.0.0.1:%u\",outcome=\"ok\"} ", rport);
    at = strstr(m, lag);
    ok(at && strtoll(at + strlen(lag), NULL, 10) >= 21, "with the statements the replica ran");
    free(m);

    /* The replica stops: reads go to the primary, none fails. */
    ok(ht_replica_ctl(replica, rport, false), "the replica is stopped");
    int failed = 0, on_primary = 0;
    for (int i = 0; i < 40; i++) {
        long st = get_value(i % 4 == 3 ? "/dbtest/ro-stream/5" : "/dbtest/ro/1", &v);
        failed += st != 200;
        on_primary += st == 200 && v == 0;
    }
    is_int(failed, 0, "not one read failed after the replica stopped");
    is_int(on_primary, 40, "they were answered by the primary");
    snprintf(up, sizeof up, "keel_db_replica_up{database=\"todo\",replica=\"127.0.0.1:%u\"} 0", rport);
    ok(metrics_show(up, 5), "the metrics say the replica is down");

    ok(ht_replica_ctl(replica, rport, true), "the replica is started again");
    snprintf(up, sizeof up, "keel_db_replica_up{database=\"todo\",replica=\"127.0.0.1:%u\"} 1", rport);
    ok(metrics_show(up, vg ? 30 : 10), "the checker finds it answering");
    on_replica = 0;
    for (int i = 0; i < 10; i++)
        on_replica += get_value("/dbtest/ro/1", &v) == 200 && v == 1;
    ok(on_replica == 10, "reads reach it again (%d of 10)", on_replica);

    is_int(ht_stop(&srv), 0, "the app stops cleanly%s", vg ? " with no valgrind errors or leaks" : "");
    ht_replica_remove(replica);
    ht_remove_app_root(root);
    return tap_done();
}
