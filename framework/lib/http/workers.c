/* workers.c - the pool of threads that run jobs which may block: the
 * handlers of KEEL_BLOCKING endpoints.  A job's run function does the work
 * and then gives the connection back to its I/O thread, so a slow job never
 * delays the other connections of that thread. */
#include "core.h"

#include <stdlib.h>

struct keel_workers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    keel_job *head;
    keel_job *tail;
    bool stopping;
    unsigned count;
    pthread_t threads[];
};

/* Takes the next job, waiting for one; NULL once stopping and drained. */
static keel_job *next_job(keel_workers *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->head && !w->stopping)
        pthread_cond_wait(&w->wake, &w->lock);
    keel_job *job = w->head;
    if (job) {
        w->head = job->next;
        if (!w->head)
            w->tail = NULL;
    }
    pthread_mutex_unlock(&w->lock);
    return job;
}

static void *worker_main(void *arg)
{
    keel_workers *w = arg;
    keel_job *job;
    while ((job = next_job(w)) != NULL)
        job->run(job); /* after this the job belongs to its I/O thread again */
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

void keel__workers_submit(keel_workers *w, keel_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
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
