/* key.c: the pool key of a PostgreSQL target. The visible part (user, host, port,
 * database) makes metrics readable; everything else that decides which session a
 * connection has (password, options, application_name, sslmode, ...) goes into a
 * digest, so that two tenants never share connections while the password never appears
 * in a key. The digest is an HMAC keyed with a random per-pool secret: a plain hash of a
 * weak password printed in metrics could be reversed by brute force. */
#ifdef TIDEPOOL_HAVE_LIBPQ
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

#ifdef TIDEPOOL_HAVE_OPENSSL
#include <openssl/evp.h>
#include <openssl/hmac.h>
#endif

/* The options shown in clear in the key; every other one is digested. */
static bool is_visible(const char *kw)
{
    return strcmp(kw, "host") == 0 || strcmp(kw, "port") == 0 || strcmp(kw, "dbname") == 0 ||
           strcmp(kw, "user") == 0;
}

static const char *find(const tp_pg_target *t, const char *kw)
{
    for (size_t i = 0; t->keywords[i] != NULL; i++)
        if (strcmp(t->keywords[i], kw) == 0)
            return t->values[i];
    return NULL;
}

/* The digested material: "keyword=<len>:value;" per option, lengths included so that
 * no two option sets serialise alike. Returns a malloc'd buffer. */
static char *material(const tp_pg_target *t, size_t *len)
{
    size_t cap = 1;
    for (size_t i = 0; t->keywords[i] != NULL; i++)
        cap += strlen(t->keywords[i]) + strlen(t->values[i]) + 32;
    char *m = tp__malloc(cap);
    if (m == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; t->keywords[i] != NULL; i++) {
        if (is_visible(t->keywords[i]))
            continue;
        int w = snprintf(m + n, cap - n, "%s=%zu:%s;", t->keywords[i], strlen(t->values[i]),
                         t->values[i]);
        if (w > 0)
            n += (size_t)w;
    }
    m[n] = '\0';
    *len = n;
    return m;
}

tp_err tp__pg_key_build(const tp_pg_pool *pp, tp_pg_target *t, tp_errinfo *err)
{
    size_t mlen = 0;
    char *m = material(t, &mlen);
    if (m == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "pg key: out of memory");
    char digest[65] = "";
#ifdef TIDEPOOL_HAVE_OPENSSL
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha256(), pp->secret, (int)sizeof pp->secret, (const unsigned char *)m, mlen,
             md, &mdlen) == NULL) {
        explicit_bzero(m, mlen);
        tp__free(m);
        return tp_errinfo_set(err, TP_ESYS, 0, "pg key: HMAC-SHA-256 failed");
    }
    /* 128 bits are plenty to tell option sets apart and keep labels short. */
    for (unsigned i = 0; i < 16 && i < mdlen; i++)
        snprintf(digest + 2 * i, 3, "%02x", md[i]);
#else
    /* Without OpenSSL the registry (which compares the full option lists) numbers each
     * distinct option set; the number is unique within the pool, like the digest. */
    static _Atomic unsigned long seq;
    (void)pp;
    snprintf(digest, sizeof digest, "n%lu", (unsigned long)++seq);
#endif
    explicit_bzero(m, mlen);
    tp__free(m);

    const char *user = find(t, "user"), *host = find(t, "host"), *port = find(t, "port"),
               *db = find(t, "dbname");
    /* Missing values mean libpq's defaults (environment, unix socket): the same for the
     * whole process, so an empty field still names one destination. */
    user = user ? user : "";
    host = host ? host : "";
    port = port ? port : "";
    db = db ? db : "";
    int n = snprintf(NULL, 0, "pg://%s@%s:%s/%s#%s", user, host, port, db, digest);
    int d = snprintf(NULL, 0, "%s:%s/%s as %s", host[0] ? host : "(default)",
                     port[0] ? port : "(default)", db[0] ? db : "(default)",
                     user[0] ? user : "(default)");
    if (n < 0 || d < 0)
        return tp_errinfo_set(err, TP_EINVAL, 0, "pg key: cannot format");
    t->key = tp__malloc((size_t)n + 1);
    t->dest = tp__malloc((size_t)d + 1);
    if (t->key == NULL || t->dest == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "pg key: out of memory");
    snprintf(t->key, (size_t)n + 1, "pg://%s@%s:%s/%s#%s", user, host, port, db, digest);
    snprintf(t->dest, (size_t)d + 1, "%s:%s/%s as %s", host[0] ? host : "(default)",
             port[0] ? port : "(default)", db[0] ? db : "(default)",
             user[0] ? user : "(default)");
    t->keylen = (size_t)n;
    return TP_OK;
}
#else
/* Built without libpq: nothing here (see stubs.c). */
typedef int tp__pg_key_unused;
#endif
