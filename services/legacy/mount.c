/* services/legacy/mount.c - the legacy backend inside Keel (the forklift).
 *
 * The whole legacy router is mounted unchanged under /api/ *path (written
 * without the space); GET /api/items/:id has been broken out into a typed
 * Keel endpoint, which takes precedence over the catch-all (param beats
 * wildcard) and reads the same store.  It answers exactly what the legacy
 * handler answered for an existing item, and Keel's not_found for a missing
 * one.  Every other method on /api/items/... still reaches the legacy code. */
#include <keel/keel.h>

#include <stdlib.h>
#include <string.h>

#include "legacy/legacy.h"
#include "legacy/mount.h"

/* The one store, shared by the mounted handler and the typed endpoint. */
static legacy_state legacy_store = LEGACY_STATE_INITIALIZER;

typedef struct { const char *id; } legacy_item_ref;
typedef struct { int64_t id; const char *name; int64_t qty; } legacy_item_out;

static const keel_field legacy_item_ref_fields[] = {
    KEEL_STRING(legacy_item_ref, id, KEEL_IN_PATH),
    KEEL_END
};
static const keel_field legacy_item_out_fields[] = {
    KEEL_INT64(legacy_item_out, id),
    KEEL_STRING(legacy_item_out, name),
    KEEL_INT64(legacy_item_out, qty),
    KEEL_END
};

/* GET /api/items/:id, broken out of the legacy router. */
static keel_error *get_item(keel_req *req, const legacy_item_ref *in, legacy_item_out *out)
{
    int64_t id = legacy_parse_id(in->id);
    legacy_item it;
    if (!id || !legacy_item_get(&legacy_store, id, &it))
        return keel_error_new(KEEL_NOT_FOUND, "item %s not found", in->id);
    out->id = it.id;
    out->qty = it.qty;
    out->name = keel_arena_strndup(keel_req_arena(req), it.name, strlen(it.name));
    free(it.name);
    return out->name ? NULL : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

const keel_service legacy_service = {
    .name = "legacy",
    .endpoints = (const keel_endpoint[]){
        KEEL_MOUNT_MHD("*", "/api/*path", legacy_handler, &legacy_store, legacy_completed, NULL),
        KEEL_TYPED("GET", "/api/items/:id", get_item, legacy_item_ref, legacy_item_out),
        KEEL_ENDPOINT_END
    },
};
