/* services/legacy - a pre-existing backend written directly against
 * libmicrohttpd, before Keel: a hand-written router over /api/, an in-memory
 * item store, JSON and form uploads, a streamed file upload, a redirect, a
 * session cookie and its own HTML 404 page.
 *
 * It runs stand-alone (standalone.c, its own daemon) or mounted unchanged in a
 * Keel app (mount.c, KEEL_MOUNT_MHD).  Only the public libmicrohttpd API is
 * used; nothing here knows about Keel. */
#ifndef LEGACY_H
#define LEGACY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <microhttpd.h>

typedef struct legacy_item {
    int64_t id;
    char *name;   /* malloc'd, valid UTF-8 without control characters */
    int64_t qty;
} legacy_item;

/* The store: passed to legacy_handler as its cls. */
typedef struct legacy_state {
    pthread_mutex_t lock;
    legacy_item *items;
    size_t count, cap;
    int64_t next_id;
    unsigned long next_session;
    int seeded;   /* item 1 ("anvil") is added on first use */
} legacy_state;

/* For a static store: static legacy_state s = LEGACY_STATE_INITIALIZER; */
#define LEGACY_STATE_INITIALIZER { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 1, 1, 0 }

legacy_state *legacy_state_new(void);
/* Frees the items of a store (static or not) and, when heap is set, the store. */
void legacy_state_clear(legacy_state *st);
void legacy_state_free(legacy_state *st);

/* The libmicrohttpd access handler and its MHD_OPTION_NOTIFY_COMPLETED
 * callback (which frees the per-request state). */
enum MHD_Result legacy_handler(void *cls, struct MHD_Connection *connection, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls);
void legacy_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                      enum MHD_RequestTerminationCode toe);

/* Per-request states currently allocated (0 when every request finished and
 * the completed callback ran), and requests that ended other than normally. */
long legacy_live_requests(void);
long legacy_aborted_requests(void);

/* Parses a decimal item id ("1".."9223372036854775807"); 0 when invalid. */
int64_t legacy_parse_id(const char *s);

/* Copies item id into *out (out->name malloc'd: free it).  Returns 0 when the
 * item does not exist. */
int legacy_item_get(legacy_state *st, int64_t id, legacy_item *out);

/* The item's JSON exactly as GET /api/items/<id> sends it (malloc'd). */
char *legacy_item_json(const legacy_item *it);

#endif
