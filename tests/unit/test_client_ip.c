/* tests/unit/test_client_ip.c - framework/lib/http/client_ip.c: with no
 * trusted proxy the peer is the client whatever X-Forwarded-For says; behind
 * trusted proxies the right-most untrusted entry is, through chains of
 * trusted hops, ignoring spoofed entries to its left and stopping at
 * malformed ones; IPv6 and IPv4-mapped addresses; CIDR edges (/0, /8, /25,
 * /32, /128); parse errors name the bad entry; the binary client keys that
 * conn_limit.c shares. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include <keel/keel.h>
#include "http/client_ip.h"
#include "tap.h"

/* A socket address for text (IPv4 or IPv6). */
static struct sockaddr_storage peer_of(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    else
        diag("bad test address %s", text);
    return ss;
}

/* The client keel__client_ip finds for peer (text) and xff. */
static const char *client(const keel_trusted_proxies *t, const char *peer, const char *xff)
{
    static char out[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss = peer_of(peer);
    memset(out, 'x', sizeof out);
    keel__client_ip(t, (const struct sockaddr *)&ss, xff, out, sizeof out);
    return out;
}

static keel_trusted_proxies *trust(const char *spec)
{
    keel_trusted_proxies *t = NULL;
    keel_error *err = keel__trusted_proxies_parse(spec, &t);
    if (err) {
        diag("keel__trusted_proxies_parse(%s): %s", spec, err->message);
        keel_error_free(err);
    }
    return t;
}

/* True when peer is treated as a trusted proxy by t (its XFF is believed). */
static bool trusts(const keel_trusted_proxies *t, const char *peer)
{
    return strcmp(client(t, peer, "203.0.113.77"), "203.0.113.77") == 0;
}

static void test_nothing_trusted(void)
{
    keel_trusted_proxies *none = NULL, *null_spec = NULL, *blank = NULL;
    keel_error *e1 = keel__trusted_proxies_parse("", &none);
    keel_error *e2 = keel__trusted_proxies_parse(NULL, &null_spec);
    keel_error *e3 = keel__trusted_proxies_parse(" \t ", &blank);
    ok(!e1 && !e2 && !e3 && none && null_spec && blank, "'', NULL and blanks parse (as none trusted)");
    is_str(client(none, "203.0.113.5", "1.2.3.4"), "203.0.113.5", "none trusted: X-Forwarded-For is ignored");
    is_str(client(null_spec, "127.0.0.1", "1.2.3.4"), "127.0.0.1", "even from loopback");
    is_str(client(blank, "::1", "1.2.3.4"), "::1", "or IPv6 loopback");
    is_str(client(NULL, "203.0.113.5", "1.2.3.4"), "203.0.113.5", "no list at all (NULL): the peer");
    keel__trusted_proxies_free(none);
    keel__trusted_proxies_free(null_spec);
    keel__trusted_proxies_free(blank);
    keel__trusted_proxies_free(NULL);
}

static void test_forwarded_for(void)
{
    keel_trusted_proxies *t = trust("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8");
    ok(t != NULL, "'127.0.0.1, 10.0.0.0/8, ::1, fd00::/8' parses");
    is_str(client(t, "198.51.100.7", "1.2.3.4"), "198.51.100.7", "an untrusted peer's X-Forwarded-For is ignored");
    is_str(client(t, "127.0.0.1", NULL), "127.0.0.1", "a trusted peer without X-Forwarded-For is the client");
    is_str(client(t, "127.0.0.1", ""), "127.0.0.1", "nor with an empty one");
    is_str(client(t, "127.0.0.1", "203.0.113.9"), "203.0.113.9", "a trusted peer: the entry it added");
    is_str(client(t, "127.0.0.1", " \t203.0.113.9  "), "203.0.113.9", "blanks around entries are ignored");
    is_str(client(t, "10.0.0.1", "203.0.113.9, 10.1.2.3,10.200.0.1"), "203.0.113.9",
           "a chain of trusted hops is walked to the first untrusted one");
    is_str(client(t, "127.0.0.1", "6.6.6.6, 7.7.7.7, 203.0.113.9, 10.0.0.2"), "203.0.113.9",
           "entries left of the first untrusted one (spoofable) are ignored");
    is_str(client(t, "127.0.0.1", "10.0.0.5, 10.0.0.6"), "10.0.0.5", "all entries trusted: the left-most");
    is_str(client(t, "127.0.0.1", "203.0.113.9,, 10.0.0.7 , "), "203.0.113.9", "empty list elements are skipped");
    is_str(client(t, "127.0.0.1", "203.0.113.9, garbage"), "127.0.0.1",
           "a malformed right-most entry: the peer is all we know");
    is_str(client(t, "127.0.0.1", "6.6.6.6, bogus, 10.0.0.3"), "10.0.0.3",
           "a malformed entry stops the walk at the trusted hop to its right");
    const char *malformed[] = {"1.2.3.4:80", "[2001:db8::1]", "1.2.3", "256.1.1.1", "2001:db8::1%eth0",
                               "unknown", "1.2.3.4 5.6.7.8", "10.0.0.0/8", "0x7f.0.0.1",
                               "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2551"};
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++)
        is_str(client(t, "10.9.9.9", malformed[i]), "10.9.9.9", "'%s' is malformed", malformed[i]);

    is_str(client(t, "::1", "2001:db8::1"), "2001:db8::1", "a trusted IPv6 peer");
    is_str(client(t, "fd12::1", "2001:DB8:0:0::1"), "2001:db8::1", "fd00::/8; IPv6 written canonically");
    is_str(client(t, "2001:db8::5", "203.0.113.9"), "2001:db8::5", "an untrusted IPv6 peer");
    is_str(client(t, "::ffff:127.0.0.1", "203.0.113.9"), "203.0.113.9", "a mapped peer counts as IPv4 (trusted)");
    is_str(client(t, "::ffff:198.51.100.7", "203.0.113.9"), "198.51.100.7", "and is written as IPv4");
    is_str(client(t, "127.0.0.1", "::ffff:203.0.113.9"), "203.0.113.9", "a mapped entry is written as IPv4");
    is_str(client(t, "127.0.0.1", "203.0.113.9, ::ffff:10.0.0.9"), "203.0.113.9",
           "a mapped entry in a trusted IPv4 block is a trusted hop");
    is_str(client(t, "127.0.0.1", "2001:db8::7, fd00::1"), "2001:db8::7", "IPv6 hops in a chain");

    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    char out[INET6_ADDRSTRLEN] = "x";
    keel__client_ip(t, (const struct sockaddr *)&un, "203.0.113.9", out, sizeof out);
    is_str(out, "", "a Unix-socket peer gives ''");
    strcpy(out, "x");
    keel__client_ip(t, NULL, NULL, out, sizeof out);
    is_str(out, "", "no peer gives ''");
    struct sockaddr_storage ss = peer_of("2001:db8:1:2:3:4:5:6");
    strcpy(out, "x");
    keel__client_ip(t, (const struct sockaddr *)&ss, NULL, out, 8);
    is_str(out, "", "an address that does not fit gives '' (not a truncation)");
    keel__trusted_proxies_free(t);
}

static void test_cidr_edges(void)
{
    keel_trusted_proxies *t = trust("0.0.0.0/0");
    ok(trusts(t, "198.51.100.7") && trusts(t, "255.255.255.255") && trusts(t, "::ffff:1.2.3.4"),
       "0.0.0.0/0 trusts every IPv4 peer");
    ok(!trusts(t, "2001:db8::1"), "but no IPv6 one");
    keel__trusted_proxies_free(t);

    t = trust("::/0");
    ok(trusts(t, "2001:db8::1") && trusts(t, "::"), "::/0 trusts every IPv6 peer");
    ok(!trusts(t, "127.0.0.1") && !trusts(t, "::ffff:127.0.0.1"), "but not IPv4 ones, mapped or not");
    keel__trusted_proxies_free(t);

    t = trust("192.0.2.1/32, 2001:db8::1/128");
    ok(trusts(t, "192.0.2.1") && !trusts(t, "192.0.2.0") && !trusts(t, "192.0.2.2"), "/32 is one address");
    ok(trusts(t, "2001:db8::1") && !trusts(t, "2001:db8::") && !trusts(t, "2001:db8::2"), "/128 is one address");
    keel__trusted_proxies_free(t);

    t = trust("10.0.0.0/8");
    ok(trusts(t, "10.0.0.0") && trusts(t, "10.255.255.255"), "10.0.0.0/8 holds 10.0.0.0 to 10.255.255.255");
    ok(!trusts(t, "9.255.255.255") && !trusts(t, "11.0.0.0"), "and not its neighbours");
    keel__trusted_proxies_free(t);

    t = trust("192.0.2.128/25");
    ok(trusts(t, "192.0.2.128") && trusts(t, "192.0.2.255") && !trusts(t, "192.0.2.127"),
       "/25: a prefix inside a byte");
    keel__trusted_proxies_free(t);

    t = trust("fd00::/8");
    ok(trusts(t, "fd00::") && trusts(t, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") && !trusts(t, "fc00::") &&
       !trusts(t, "fe00::"), "fd00::/8 holds fd00:: to fdff:...:ffff only");
    keel__trusted_proxies_free(t);

    t = trust("::ffff:10.0.0.0/104");
    ok(trusts(t, "10.1.2.3") && !trusts(t, "11.0.0.0") && !trusts(t, "2001:db8::1"),
       "::ffff:10.0.0.0/104 is 10.0.0.0/8 written as IPv6");
    keel__trusted_proxies_free(t);
}

/* True when parsing spec fails with invalid_argument naming want. */
static bool parse_fails(const char *spec, const char *want)
{
    keel_trusted_proxies *t = (keel_trusted_proxies *)&t; /* not NULL: parse must clear it */
    keel_error *err = keel__trusted_proxies_parse(spec, &t);
    bool good = err && err->code == KEEL_INVALID_ARGUMENT && t == NULL && tap_contains(err->message, want);
    diag("%s -> %s", spec, err ? err->message : "no error");
    keel_error_free(err);
    if (!err)
        keel__trusted_proxies_free(t);
    return good;
}

static void test_parse_errors(void)
{
    ok(parse_fails("127.0.0.1, bogus", "'bogus'"), "an entry that is no address is named");
    ok(parse_fails("10.0.0.0/33", "'10.0.0.0/33'"), "an IPv4 prefix past /32");
    ok(parse_fails("::/129", "'::/129'"), "an IPv6 prefix past /128");
    ok(parse_fails("10.0.0.1/8", "did you mean 10.0.0.0/8"), "bits past the prefix: the block meant is suggested");
    ok(parse_fails("fd00::1/8", "did you mean fd00::/8"), "in IPv6 too");
    ok(parse_fails("127.0.0.1,,::1", "entry 2"), "an empty entry is named by its place");
    ok(parse_fails("127.0.0.1,", "entry 2"), "a trailing comma is an empty entry");
    const char *bad[] = {"10.0.0.0/", "10.0.0.0/x", "/8", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/ 8",
                         "10.0.0.0/0008", "localhost", "1.2.3.4:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[64];
        snprintf(want, sizeof want, "'%s'", bad[i]);
        ok(parse_fails(bad[i], want), "'%s' is refused, by name", bad[i]);
    }
    char longer[200];
    memset(longer, 'z', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    ok(parse_fails(longer, "zzz...'"), "a very long bad entry is named, shortened");
}

static void test_keys(void)
{
    unsigned char a[16], b[16];
    struct sockaddr_storage v4 = peer_of("192.0.2.1");
    ok(keel__ip_from_sockaddr((const struct sockaddr *)&v4, a) && keel__ip_parse("::ffff:192.0.2.1", 16, b) &&
       memcmp(a, b, 16) == 0, "an IPv4 peer and its mapped form have the same 16 bytes");
    keel__ip_client_key(a, 64);
    ok(memcmp(a, b, 16) == 0, "an IPv4 client key is the whole address");
    ok(keel__ip_parse("2001:db8:1:2:3:4:5:6", 20, a) && keel__ip_parse("2001:db8:1:2:ffff::", 19, b) &&
       memcmp(a, b, 16) != 0, "two addresses of one /64 differ");
    unsigned char a2[16], b2[16];
    memcpy(a2, a, 16);
    memcpy(b2, b, 16);
    keel__ip_client_key(a, 0);
    keel__ip_client_key(b, 0);
    ok(memcmp(a, b, 16) == 0, "but have the same client key (the /64 by default)");
    keel__ip_client_key(a2, 128);
    keel__ip_client_key(b2, 128);
    ok(memcmp(a2, b2, 16) != 0, "keyed by /128 they stay apart");
    keel__ip_parse("2001:db8:1:2:3:4:5:6", 20, a2);
    keel__ip_parse("2001:db8:1:3:3:4:5:6", 20, b2);
    keel__ip_client_key(a2, 48);
    keel__ip_client_key(b2, 48);
    ok(memcmp(a2, b2, 16) == 0, "keyed by /48 two /64s of one /48 share a key");
    ok(!keel__ip_parse("1.2.3.4x", 8, a) && keel__ip_parse("1.2.3.4x", 7, a), "parse reads exactly len bytes");
}

int main(void)
{
    plan(73);
    test_nothing_trusted();
    test_forwarded_for();
    test_cidr_edges();
    test_parse_errors();
    test_keys();
    return tap_done();
}
