/* client_ip.h - private: who the client is, behind trusted reverse proxies
 * (X-Forwarded-For), and the binary form of addresses that the per-client
 * limits key on (see client_ip.c). */
#ifndef KEEL_CLIENT_IP_H
#define KEEL_CLIENT_IP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "keel/error.h"

typedef struct keel_trusted_proxies keel_trusted_proxies;

/* Parses a comma-separated list of addresses and CIDR blocks ("127.0.0.1,
 * 10.0.0.0/8, ::1, fd00::/8"); blanks around entries are ignored.  "" or
 * NULL: none trusted.  An IPv4 entry matches IPv4 peers (and IPv4-mapped
 * IPv6 ones); an IPv6 entry matches IPv6 addresses only, so "::/0" does not
 * trust every IPv4 client.  A block with bits set past its prefix
 * (10.0.0.1/8) is refused as a likely typo.  On success the caller owns *out
 * (never NULL; keel__trusted_proxies_free); on error *out is NULL and the
 * invalid_argument error names the bad entry. */
keel_error *keel__trusted_proxies_parse(const char *spec, keel_trusted_proxies **out);
void keel__trusted_proxies_free(keel_trusted_proxies *t);

/* The client's address as text in out (INET6_ADDRSTRLEN at least): the peer
 * itself, unless the peer is a trusted proxy: then X-Forwarded-For (xff, may
 * be NULL; several headers are joined with ',' by the caller) is read from
 * the right, skipping trusted hops, and the first untrusted address is the
 * client.  A malformed entry stops the walk: the last trusted hop (the one
 * to its right, or the peer) is the client.  When every entry is trusted, the
 * left-most is.  Empty list elements are skipped.  IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) count as IPv4 and are written as a.b.c.d; IPv6
 * in its canonical form.  t may be NULL (none trusted).  A peer that is NULL
 * or not IPv4/IPv6 gives "". */
void keel__client_ip(const keel_trusted_proxies *t, const struct sockaddr *peer, const char *xff,
                     char *out, size_t len);

/* The 16 bytes of an IP address, IPv4 as ::ffff:a.b.c.d so both forms
 * agree.  False (ip zeroed) for other families (a Unix socket) or NULL. */
bool keel__ip_from_sockaddr(const struct sockaddr *addr, unsigned char ip[16]);

/* Parses an address as text (len bytes, no blanks, no prefix) into ip, in
 * the same form.  False when text is not an IPv4 or IPv6 address. */
bool keel__ip_parse(const char *text, size_t len, unsigned char ip[16]);

/* Turns ip into its client key in place: an IPv4 address is itself, an IPv6
 * address becomes its first v6_prefix bits (0: 64, one subscriber's prefix:
 * a client with IPv6 has a whole /64 to pick addresses from). */
void keel__ip_client_key(unsigned char ip[16], unsigned v6_prefix);

#endif
