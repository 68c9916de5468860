/* keel/keel.h - the umbrella header: include this in services. */
#ifndef KEEL_KEEL_H
#define KEEL_KEEL_H

#include "error.h"
#include "arena.h"
#include "log.h"
#include "schema.h"
#include "router.h"
#include "http.h"
#include "service.h"
#include "sqldb.h"
#include "migrate.h"
#include "app.h"
#include "secrets.h"
#include "lazy.h"
#include "extdb.h"
#include "webhook.h"
#include "middleware.h"

#define KEEL_VERSION "0.1.0"

#endif
