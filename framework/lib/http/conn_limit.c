/* conn_limit.c - open connections per client, across every I/O thread.
 *
 * One client must not hold every connection slot (by trickling a header byte
 * every 29 s, say).  Each loop's daemon asks here before accepting (the
 * accept policy) and reports connections that start and close; the counts
 * are shared by all loops, so the limit is per client, not per thread.  A
 * client is an IPv4 address, or an IPv6 /64 (one subscriber's prefix: an
 * attacker with IPv6 has a whole /64 to pick addresses from).
 *
 * Near the process's cap (three quarters of its slots taken), connections
 * are shared fairly: a client that already holds its share (the slots over
 * the clients present plus one newcomer) gets no more, so a handful of
 * addresses cannot take every slot even under their own limit.
 *
 * The check and the count are separate steps (libmicrohttpd asks before it
 * has a connection to count), so accepts racing on several threads can let a
 * client go over by at most one connection per I/O thread. */
#include "http/conn_limit.h"
#include "http/client_ip.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct client {
    struct client *next;   /* bucket chain, or free list */
    unsigned char key[16];
    unsigned count;
    size_t held;           /* bytes its answers hold (keel__conn_limit_hold) */
} client;

struct keel_conn_limit {
    pthread_mutex_t mu;
    unsigned per_client;
    unsigned capacity;     /* the process's slots */
    unsigned total;        /* connections counted */
    unsigned clients;      /* distinct clients among them */
    client **buckets;
    size_t nbuckets;       /* a power of two */
    client *nodes;         /* capacity: one per possible connection */
    client *free_list;
};

/* The client key of addr (an IPv4 address, or an IPv6 /64); false for an
 * address family that is not counted (a Unix socket). */
static bool client_key(const struct sockaddr *addr, unsigned char key[16])
{
    if (!keel__ip_from_sockaddr(addr, key))
        return false;
    keel__ip_client_key(key, 64);
    return true;
}

static size_t bucket_of(const keel_conn_limit *l, const unsigned char key[16])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29)) & (l->nbuckets - 1);
}

static client *find(const keel_conn_limit *l, const unsigned char key[16], client ***link)
{
    client **p = &l->buckets[bucket_of(l, key)];
    for (; *p; p = &(*p)->next)
        if (memcmp((*p)->key, key, 16) == 0)
            break;
    if (link)
        *link = p;
    return *p;
}

keel_error *keel__conn_limit_new(unsigned per_client, unsigned capacity, keel_conn_limit **out)
{
    *out = NULL;
    keel_conn_limit *l = calloc(1, sizeof *l);
    size_t nb = 64;
    while (nb < (size_t)capacity * 2)
        nb *= 2;
    if (l) {
        l->buckets = calloc(nb, sizeof *l->buckets);
        l->nodes = calloc(capacity ? capacity : 1, sizeof *l->nodes);
    }
    if (!l || !l->buckets || !l->nodes) {
        keel__conn_limit_free(l);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    pthread_mutex_init(&l->mu, NULL);
    l->per_client = per_client;
    l->capacity = capacity;
    l->nbuckets = nb;
    for (unsigned i = 0; i < capacity; i++) {
        l->nodes[i].next = l->free_list;
        l->free_list = &l->nodes[i];
    }
    *out = l;
    return NULL;
}

void keel__conn_limit_free(keel_conn_limit *l)
{
    if (!l)
        return;
    if (l->buckets)
        pthread_mutex_destroy(&l->mu);
    free(l->buckets);
    free(l->nodes);
    free(l);
}

bool keel__conn_limit_allows(keel_conn_limit *l, const struct sockaddr *addr)
{
    unsigned char key[16];
    if (!l || !client_key(addr, key))
        return true;
    pthread_mutex_lock(&l->mu);
    const client *c = find(l, key, NULL);
    bool allowed = !c || c->count < l->per_client;
    if (allowed && c && (uint64_t)l->total * 4 >= (uint64_t)l->capacity * 3)
        allowed = c->count < l->capacity / (l->clients + 1); /* near the cap: a fair share */
    pthread_mutex_unlock(&l->mu);
    return allowed;
}

bool keel__conn_limit_enter(keel_conn_limit *l, const struct sockaddr *addr)
{
    unsigned char key[16];
    if (!l || !client_key(addr, key))
        return false;
    pthread_mutex_lock(&l->mu);
    client **link;
    client *c = find(l, key, &link);
    if (!c && l->free_list) {
        c = l->free_list;
        l->free_list = c->next;
        memcpy(c->key, key, 16);
        c->count = 0;
        c->held = 0;
        c->next = NULL;
        *link = c;
        l->clients++;
    }
    if (c) {
        c->count++;
        l->total++;
    }
    pthread_mutex_unlock(&l->mu);
    return c != NULL;
}

void keel__conn_limit_leave(keel_conn_limit *l, const struct sockaddr *addr)
{
    unsigned char key[16];
    if (!l || !client_key(addr, key))
        return;
    pthread_mutex_lock(&l->mu);
    client **link;
    client *c = find(l, key, &link);
    if (c)
        l->total--;
    if (c && --c->count == 0) {
        *link = c->next;
        c->next = l->free_list;
        l->free_list = c;
        l->clients--;
    }
    pthread_mutex_unlock(&l->mu);
}

bool keel__conn_limit_hold(keel_conn_limit *l, const struct sockaddr *addr, size_t bytes, size_t max)
{
    unsigned char key[16];
    if (!l || !client_key(addr, key))
        return true;
    pthread_mutex_lock(&l->mu);
    client *c = find(l, key, NULL);
    bool fits = !c || (bytes <= max && c->held <= max - bytes);
    if (c && fits)
        c->held += bytes;
    pthread_mutex_unlock(&l->mu);
    return fits;
}

void keel__conn_limit_unhold(keel_conn_limit *l, const struct sockaddr *addr, size_t bytes)
{
    unsigned char key[16];
    if (!l || !client_key(addr, key))
        return;
    pthread_mutex_lock(&l->mu);
    client *c = find(l, key, NULL);
    if (c)
        c->held = c->held > bytes ? c->held - bytes : 0;
    pthread_mutex_unlock(&l->mu);
}
