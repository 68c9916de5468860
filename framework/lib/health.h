/* health.h - private: the framework's health pages (health.c), served
 * under /__keel/ through the table in observe/metrics.c.  Not installed. */
#ifndef KEEL_HEALTH_H
#define KEEL_HEALTH_H

#include "keel/http.h"

/* GET /__keel/healthz: 200 {"status":"ok"} while the process serves. */
keel_error *keel__healthz_page(keel_req *req, keel_resp *resp);

/* GET /__keel/readyz: 200 {"status":"ready","databases":{..},"secrets":"ok"}
 * while the instance should take traffic, else 503 with the reason. */
keel_error *keel__readyz_page(keel_req *req, keel_resp *resp);

#endif
