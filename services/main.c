/* services/main.c - the example application: every service it serves is
 * listed here, nothing is registered behind main's back. */
#include <keel/keel.h>

#include "services.h"
#include "legacy/mount.h"

int main(int argc, char **argv)
{
    return keel_main(argc, argv, (const keel_service *const[]){
        &hello_service,
        &legacy_service,
        &todo_service,
        &stats_service,
        &external_service,
        &webhooks_service,
        &auth_service,
        NULL
    });
}
