/* client_ip.c - who the client is: the peer's address, or, when the peer is
 * a trusted reverse proxy, the address its X-Forwarded-For chain vouches for.
 *
 * Owns the trusted-proxy list (parsed once from configuration, read-only
 * after), the X-Forwarded-For walk, and the binary form of IP addresses that
 * per-client limits key on (16 bytes, IPv4 as ::ffff:a.b.c.d; an IPv6 client
 * is its /64), shared with conn_limit.c.
 *
 * Only hops we trust can add entries we believe: X-Forwarded-For is read
 * from the right (each proxy appends the address it saw), and the walk stops
 * at the first address that is not a trusted proxy: everything to its left
 * was written by the client and may be forged. */
#include "http/client_ip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A trusted address or block, over the 16-byte form: an IPv4 entry has
 * prefix 96 + its own prefix and matches only IPv4 (mapped) addresses. */
typedef struct trusted_block {
    unsigned char net[16];
    unsigned prefix; /* 0..128, in bits of the 16-byte form */
    bool v4;
} trusted_block;

struct keel_trusted_proxies {
    size_t n;
    trusted_block blocks[]; /* n of them */
};

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* True when ip (16-byte form) is an IPv4 address. */
static bool is_v4(const unsigned char ip[16])
{
    return memcmp(ip, v4mapped_prefix, 12) == 0;
}

bool keel__ip_from_sockaddr(const struct sockaddr *addr, unsigned char ip[16])
{
    memset(ip, 0, 16);
    if (!addr)
        return false;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        memcpy(ip, v4mapped_prefix, 12);
        memcpy(ip + 12, &in->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        memcpy(ip, in6->sin6_addr.s6_addr, 16);
        return true;
    }
    return false;
}

bool keel__ip_parse(const char *text, size_t len, unsigned char ip[16])
{
    char buf[INET6_ADDRSTRLEN];
    memset(ip, 0, 16);
    if (!text || len == 0 || len >= sizeof buf || memchr(text, '\0', len))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (memchr(buf, ':', len))
        return inet_pton(AF_INET6, buf, ip) == 1;
    memcpy(ip, v4mapped_prefix, 12);
    if (inet_pton(AF_INET, buf, ip + 12) == 1)
        return true;
    memset(ip, 0, 16);
    return false;
}

/* ip with every bit past prefix cleared, into out. */
static void mask_to(const unsigned char ip[16], unsigned prefix, unsigned char out[16]);

void keel__ip_client_key(unsigned char ip[16], unsigned v6_prefix)
{
    if (is_v4(ip))
        return;
    unsigned char masked[16];
    mask_to(ip, v6_prefix ? (v6_prefix > 128 ? 128 : v6_prefix) : 64, masked);
    memcpy(ip, masked, 16);
}

/* True when the first prefix bits of a and b agree. */
static bool same_prefix(const unsigned char a[16], const unsigned char b[16], unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return ((a[whole] ^ b[whole]) & mask) == 0;
}

static void mask_to(const unsigned char ip[16], unsigned prefix, unsigned char out[16])
{
    memset(out, 0, 16);
    memcpy(out, ip, prefix / 8);
    if (prefix % 8)
        out[prefix / 8] = (unsigned char)(ip[prefix / 8] & (0xff << (8 - prefix % 8)));
}

static bool trusted(const keel_trusted_proxies *t, const unsigned char ip[16])
{
    if (!t)
        return false;
    bool v4 = is_v4(ip);
    for (size_t i = 0; i < t->n; i++)
        if (t->blocks[i].v4 == v4 && same_prefix(t->blocks[i].net, ip, t->blocks[i].prefix))
            return true;
    return false;
}

/* ip (16-byte form) as text into out: a.b.c.d for IPv4, else canonical
 * IPv6; "" when it does not fit. */
static void ip_text(const unsigned char ip[16], char *out, size_t len)
{
    const char *done = is_v4(ip) ? inet_ntop(AF_INET, ip + 12, out, (socklen_t)len)
                                 : inet_ntop(AF_INET6, ip, out, (socklen_t)len);
    if (!done)
        out[0] = '\0';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* An error naming the entry (at most 64 bytes of it shown). */
static keel_error *bad_entry(const char *entry, size_t len, const char *why)
{
    int shown = len > 64 ? 64 : (int)len;
    return keel_error_new(KEEL_INVALID_ARGUMENT, "trusted proxies: '%.*s%s' %s", shown, entry,
                          len > 64 ? "..." : "", why);
}

/* Parses one entry (trimmed, len > 0) into b; NULL or an error naming it. */
static keel_error *parse_entry(const char *entry, size_t len, trusted_block *b)
{
    const char *slash = memchr(entry, '/', len);
    size_t alen = slash ? (size_t)(slash - entry) : len;
    if (!keel__ip_parse(entry, alen, b->net))
        return bad_entry(entry, len, "is not an IP address or CIDR block");
    b->v4 = is_v4(b->net) && memchr(entry, ':', alen) == NULL;
    unsigned max = b->v4 ? 32 : 128;
    unsigned prefix = max;
    if (slash) {
        const char *d = slash + 1, *end = entry + len;
        if (d == end || end - d > 3)
            return bad_entry(entry, len, "has no valid prefix length after '/'");
        prefix = 0;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return bad_entry(entry, len, "has no valid prefix length after '/'");
            prefix = prefix * 10 + (unsigned)(*d - '0');
        }
        if (prefix > max)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "trusted proxies: '%.*s' has a prefix longer than /%u",
                                  (int)len, entry, max);
    }
    if (b->v4)
        prefix += 96;
    else if (is_v4(b->net) && prefix >= 96)
        b->v4 = true; /* ::ffff:10.0.0.0/104: an IPv4 block written as IPv6 */
    b->prefix = prefix;
    unsigned char masked[16];
    mask_to(b->net, prefix, masked);
    if (memcmp(masked, b->net, 16) != 0) {
        char net[INET6_ADDRSTRLEN];
        ip_text(masked, net, sizeof net);
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "trusted proxies: '%.*s' has bits set past its prefix (did you mean %s/%u?)",
                              (int)len, entry, net, b->v4 ? prefix - 96 : prefix);
    }
    return NULL;
}

keel_error *keel__trusted_proxies_parse(const char *spec, keel_trusted_proxies **out)
{
    *out = NULL;
    size_t n = 0;
    if (spec)
        for (const char *p = spec; *p; p++)
            n += *p == ',';
    n += 1; /* entries, at most */
    keel_trusted_proxies *t = malloc(sizeof *t + n * sizeof t->blocks[0]);
    if (!t)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    t->n = 0;
    const char *p = spec ? spec : "";
    bool only_blanks = true;
    for (const char *q = p; *q; q++)
        only_blanks = only_blanks && is_blank(*q);
    while (!only_blanks) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (b == e) {
            size_t nth = t->n + 1;
            keel__trusted_proxies_free(t);
            return keel_error_new(KEEL_INVALID_ARGUMENT, "trusted proxies: entry %zu of '%s' is empty", nth, spec);
        }
        keel_error *err = parse_entry(b, (size_t)(e - b), &t->blocks[t->n]);
        if (err) {
            keel__trusted_proxies_free(t);
            return err;
        }
        t->n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = t;
    return NULL;
}

void keel__trusted_proxies_free(keel_trusted_proxies *t)
{
    free(t);
}

void keel__client_ip(const keel_trusted_proxies *t, const struct sockaddr *peer, const char *xff,
                     char *out, size_t len)
{
    if (!out || len == 0)
        return;
    out[0] = '\0';
    unsigned char client[16];
    if (!keel__ip_from_sockaddr(peer, client))
        return;
    if (trusted(t, client) && xff) {
        /* client: the last trusted hop so far; walk leftwards from the end */
        const char *end = xff + strlen(xff);
        while (end > xff) {
            const char *start = end;
            while (start > xff && start[-1] != ',')
                start--;
            const char *b = start, *e = end;
            end = start > xff ? start - 1 : xff; /* the next element ends at the comma */
            while (b < e && is_blank(*b))
                b++;
            while (e > b && is_blank(e[-1]))
                e--;
            if (b == e)
                continue; /* an empty list element */
            unsigned char hop[16];
            if (!keel__ip_parse(b, (size_t)(e - b), hop))
                break; /* malformed: the last trusted hop is all we know */
            memcpy(client, hop, 16);
            if (!trusted(t, hop))
                break;
        }
    }
    ip_text(client, out, len);
}
