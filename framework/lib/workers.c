/* workers.c - the pool of threads that run handlers which may block.
 *
 * libmicrohttpd's I/O threads only read and write: a request for a blocking
 * endpoint is suspended there, queued here, dispatched by a worker, and its
 * connection resumed so that an I/O thread sends the response.  A slow handler
 * therefore never delays the other connections of its I/O thread. */
#include "core.h"
#include "loop.h"

#include <stdlib.h>

struct keel_workers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    keel_req *head;
    keel_req *tail;
    bool stopping;
    unsigned count;
    pthread_t threads[];
};

/* Takes the next job, waiting for one; NULL once stopping and drained. */
static keel_req *next_job(keel_workers *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->head && !w->stopping)
        pthread_cond_wait(&w->wake, &w->lock);
    keel_req *req = w->head;
    if (req) {
        w->head = req->next_job;
        if (!w->head)
            w->tail = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    return req;
}

static void *worker_main(void *arg)
{
    keel_workers *w = arg;
    keel_req *req;
    while ((req = next_job(w)) != NULL) {
        keel__dispatch(req);
        req->state = REQ_READY;
        /* After the resume the I/O thread owns req again.  A daemon without
         * a thread of its own is not woken by libmicrohttpd: its loop is. */
        keel_loop *loop = req->loop;
        MHD_resume_connection(req->conn);
        keel__loop_wake(loop);
    }
    return NULL;
}

keel_error *keel__workers_start(unsigned count, keel_workers **out)
{
    if (count == 0)
        count = 1;
    keel_workers *w = calloc(1, sizeof *w + count * sizeof(pthread_t));
    if (!w)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    for (unsigned i = 0; i < count; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            w->count = i;
            keel__workers_stop(w);
            return keel_error_new(KEEL_INTERNAL, "cannot start worker threads");
        }
        w->count = i + 1;
    }
    *out = w;
    return NULL;
}

void keel__workers_submit(keel_workers *w, keel_req *req)
{
    req->next_job = NULL;
    req->state = REQ_QUEUED;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next_job = req;
    else
        w->head = req;
    w->tail = req;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void keel__workers_stop(keel_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->count; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
