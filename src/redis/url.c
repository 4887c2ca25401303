/* url.c: redis:// URLs into targets, and the target's pool key.
 *
 * The key names host, port, db and user, plus a SHA-256 digest of the password taken
 * with a random per-process salt: two targets with different passwords never share
 * connections, yet the key can be shown anywhere (metrics labels, traces, logs) without
 * giving away the password or an unsalted hash one could look up in a table. */
#ifdef TIDEPOOL_HAVE_HIREDIS

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TIDEPOOL_HAVE_OPENSSL
#include <openssl/evp.h>
#include <openssl/rand.h>
#endif

#include "redis_internal.h"

#ifdef TIDEPOOL_HAVE_OPENSSL
static unsigned char salt[16];
static pthread_once_t salt_once = PTHREAD_ONCE_INIT;

static void salt_init(void)
{
    /* If the random source fails the salt stays zero: the digest is still a digest,
     * merely unsalted. */
    if (RAND_bytes(salt, (int)sizeof salt) != 1)
        memset(salt, 0, sizeof salt);
}

static tp_err digest_hex(const char *pw, char out[65], tp_errinfo *err)
{
    pthread_once(&salt_once, salt_init);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m != NULL && EVP_DigestInit_ex(m, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(m, salt, sizeof salt) == 1 &&
             EVP_DigestUpdate(m, pw, strlen(pw)) == 1 && EVP_DigestFinal_ex(m, md, &mdlen) == 1;
    EVP_MD_CTX_free(m);
    if (!ok || mdlen != 32)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "computing the credentials digest failed");
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return TP_OK;
}
#else
static tp_err digest_hex(const char *pw, char out[65], tp_errinfo *err)
{
    (void)pw, (void)out;
    return tp_errinfo_set(err, TP_ESTATE, 0,
                          "built without OpenSSL: a Redis password needs its digest");
}
#endif

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL). False if malformed, too
 * long, or decoding to a NUL byte. */
static bool pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return false;
            int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
            if (a < 0 || b < 0 || (a == 0 && b == 0))
                return false;
            ch = (char)(a * 16 + b);
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return true;
}

static tp_err parse_authority(tp_redis_target *t, const char *a, size_t n, tp_errinfo *err)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (a[i] == '@')
            at = a + i; /* the last '@': a password may contain one, unescaped */
    if (at != NULL) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        size_t ulen = colon != NULL ? (size_t)(colon - a) : (size_t)(at - a);
        if (!pct_decode(a, ulen, t->user, sizeof t->user))
            return tp_errinfo_set(err, TP_EINVAL, 0, "url: malformed or too long user name");
        if (colon != NULL) {
            if (!pct_decode(colon + 1, (size_t)(at - colon - 1), t->password,
                            sizeof t->password))
                return tp_errinfo_set(err, TP_EINVAL, 0, "url: malformed or too long password");
            t->has_password = t->password[0] != '\0';
        }
        n -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    const char *aend = a + n, *portp = NULL, *hostp = a;
    size_t hlen;
    if (n > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        if (rb == NULL)
            return tp_errinfo_set(err, TP_EINVAL, 0, "url: unterminated [IPv6] host");
        if (rb + 1 < aend && rb[1] != ':')
            return tp_errinfo_set(err, TP_EINVAL, 0, "url: junk after the [IPv6] host");
        portp = rb + 1 < aend ? rb + 2 : NULL;
        hostp = a + 1;
        hlen = (size_t)(rb - hostp);
    } else {
        const char *colon = memchr(a, ':', n);
        portp = colon != NULL ? colon + 1 : NULL;
        hlen = colon != NULL ? (size_t)(colon - a) : n;
    }
    n = hlen;
    a = hostp;
    const char *hend = aend;
    if (n == 0 || n >= sizeof t->host)
        return tp_errinfo_set(err, TP_EINVAL, 0, "url: missing or too long host");
    memcpy(t->host, a, n);
    t->host[n] = '\0';
    t->port = 6379;
    if (portp != NULL) {
        char *end = NULL;
        unsigned long p = strtoul(portp, &end, 10);
        if (end == portp || end != hend || p == 0 || p > 65535)
            return tp_errinfo_set(err, TP_EINVAL, 0, "url: bad port");
        t->port = (uint16_t)p;
    }
    return TP_OK;
}

static tp_err build_key(tp_redis_target *t, tp_errinfo *err)
{
    char dig[65] = "";
    if (t->has_password) {
        tp_err rc = digest_hex(t->password, dig, err);
        if (rc != TP_OK)
            return rc;
    }
    bool v6 = strchr(t->host, ':') != NULL;
    int n = snprintf(t->key, sizeof t->key, "redis://%s%s%s%s%s:%u/%ld%s%s", t->user,
                     t->user[0] != '\0' ? "@" : "", v6 ? "[" : "", t->host, v6 ? "]" : "",
                     (unsigned)t->port, t->db, t->has_password ? " cred=" : "", dig);
    if (n < 0 || (size_t)n >= sizeof t->key)
        return tp_errinfo_set(err, TP_EINVAL, 0, "url: too long");
    t->keylen = (size_t)n;
    return TP_OK;
}

tp_err tp__redis_target_parse(const char *url, tp_redis_target **out, tp_errinfo *err)
{
    *out = NULL;
    if (url == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "url: missing");
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "url: must start with redis:// (rediss:// "
                                                 "and unix sockets are not supported)");
    const char *a = url + sizeof scheme - 1;
    size_t alen = strcspn(a, "/?#");
    tp_redis_target *t = tp__calloc(1, sizeof *t);
    if (t == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating a Redis target");
    tp_err rc = parse_authority(t, a, alen, err);
    const char *rest = a + alen;
    if (rc == TP_OK && *rest == '/' && rest[1] != '\0') {
        char *end = NULL;
        long db = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || *end != '\0' || db < 0 || db > 1000000)
            rc = tp_errinfo_set(err, TP_EINVAL, 0, "url: the database must be a number");
        else
            t->db = db;
    } else if (rc == TP_OK && *rest != '\0' && strcmp(rest, "/") != 0) {
        rc = tp_errinfo_set(err, TP_EINVAL, 0, "url: query strings and fragments are not "
                                               "supported");
    }
    if (rc == TP_OK)
        rc = build_key(t, err);
    if (rc != TP_OK) {
        tp__redis_target_free(t);
        return rc;
    }
    *out = t;
    return TP_OK;
}

void tp__redis_target_free(tp_redis_target *t)
{
    if (t == NULL)
        return;
    /* volatile stores: the compiler may not drop the wipe of memory about to be freed. */
    volatile char *p = t->password;
    for (size_t i = 0; i < sizeof t->password; i++)
        p[i] = 0;
    tp__free(t);
}

#else
/* Without hiredis there is nothing to parse: stub.c answers every call. */
typedef int tp__redis_url_unused;
#endif
