/* tests/integration/testapp.c - the example app's services plus the test
 * service and the odd service (names hostile to code generators), served by
 * keel_main like any Keel program. */
#include <keel/keel.h>

#include "services.h"

extern const keel_service test_service;
extern const keel_service odd_service;

int main(int argc, char **argv)
{
    return keel_main(argc, argv, (const keel_service *const[]){
        &hello_service,
        &echo_service,
        &test_service,
        &odd_service,
        NULL
    });
}
