/* dashboard.h - private: the local development dashboard (observe/
 * dashboard.c), a second HTTP server on loopback that serves one page and
 * the JSON it reads.  Not installed. */
#ifndef KEEL_OBSERVE_DASHBOARD_H
#define KEEL_OBSERVE_DASHBOARD_H

#include <stdbool.h>
#include "keel/error.h"

typedef struct keel_app keel_app;
typedef struct keel_dashboard keel_dashboard;

/* True when KEEL_DASHBOARD_PORT asks for the dashboard (keel run sets it;
 * production apps leave it unset). */
bool keel__dashboard_wanted(void);

/* Starts it on 127.0.0.1:$KEEL_DASHBOARD_PORT (0: any free port) once the
 * app listens, and logs its address.  A port in use is a warning, not a
 * failure: the app serves without its dashboard. */
void keel__dashboard_start(keel_app *app);
void keel__dashboard_stop(keel_app *app);

/* The page, embedded at build time from dashboard.html (dashboard_html.c). */
extern const unsigned char keel__dashboard_html[];
extern const unsigned long keel__dashboard_html_len;

#endif
