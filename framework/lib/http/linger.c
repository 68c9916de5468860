/* linger.c - lingering close: an answer sent before its request body was read.
 *
 * When the server answers early (413 for a declared 5 GiB body, 404 for a
 * POST to nowhere) and closes, the unread body still arriving makes the
 * kernel reset the connection, and a reset can destroy the answer in the
 * client's receive buffer before the client reads it: the client sees
 * "connection reset" instead of the 413.  So the socket is kept for a short
 * while after libmicrohttpd is done with it: its sending side is shut (the
 * client reads the answer and then end-of-file) and whatever still arrives is
 * read and dropped, until the client closes, LINGER_MS pass or LINGER_MAX
 * bytes were dropped.  The socket is a dup of libmicrohttpd's, so its close
 * of its own descriptor leaves the connection open for us. */
#include "http/loop.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINGER_MS 2000
#define LINGER_MAX (16u * 1024 * 1024)
#define LINGER_SOCKETS 256 /* per loop; beyond, the oldest is closed, so a
                              client that keeps them busy cannot take the
                              gentle close away from everyone else */

typedef struct lingering {
    keel_watch watch;
    keel_timer timer;
    keel_loop *loop;
    struct lingering *prev, *next;
    int fd;
    size_t dropped;
} lingering;

struct keel_lingers {
    lingering *head, *tail; /* newest first */
    unsigned count;
};

static void linger_end(lingering *l)
{
    struct keel_lingers *all = *keel__loop_lingers(l->loop);
    keel__loop_timer_cancel(l->loop, &l->timer);
    keel__loop_unwatch(l->loop, l->fd);
    close(l->fd);
    if (l->prev)
        l->prev->next = l->next;
    else
        all->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        all->tail = l->prev;
    all->count--;
    free(l);
}

static void on_readable(keel_watch *w, uint32_t events)
{
    (void)events;
    lingering *l = (lingering *)w;
    char scratch[16384];
    for (;;) {
        ssize_t n = recv(l->fd, scratch, sizeof scratch, 0);
        if (n > 0) {
            l->dropped += (size_t)n;
            if (l->dropped > LINGER_MAX)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* more later */
        break;      /* end of file or an error: the client is gone */
    }
    linger_end(l);
}

static void on_timeout(keel_timer *t)
{
    linger_end((lingering *)((char *)t - offsetof(lingering, timer)));
}

void keel__linger(keel_loop *loop, int fd)
{
    struct keel_lingers **slot = keel__loop_lingers(loop);
    if (!*slot)
        *slot = calloc(1, sizeof **slot);
    if (*slot && (*slot)->count >= LINGER_SOCKETS)
        linger_end((*slot)->tail);
    lingering *l = *slot ? calloc(1, sizeof *l) : NULL;
    shutdown(fd, SHUT_WR); /* the answer is out: the client reads it, then end-of-file */
    if (!l) {
        close(fd);
        return;
    }
    l->watch.fn = on_readable;
    l->timer.fn = on_timeout;
    l->loop = loop;
    l->fd = fd;
    keel_error *err = keel__loop_watch(loop, fd, EPOLLIN | EPOLLRDHUP, &l->watch);
    if (err) {
        keel_error_free(err);
        close(fd);
        free(l);
        return;
    }
    l->next = (*slot)->head;
    if (l->next)
        l->next->prev = l;
    else
        (*slot)->tail = l;
    (*slot)->head = l;
    (*slot)->count++;
    keel__loop_timer_arm(loop, &l->timer, LINGER_MS);
}

void keel__lingers_free(struct keel_lingers *all)
{
    if (!all)
        return;
    for (lingering *l = all->head; l;) {
        lingering *next = l->next;
        close(l->fd);
        free(l);
        l = next;
    }
    free(all);
}
