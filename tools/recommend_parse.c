/* recommend_parse.c: see recommend_parse.h. The exposition parser reads only what
 * recommend needs: sample lines (name, optional {labels}, value); comments, help and type
 * lines are skipped, and timestamps after the value ignored. */
#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "recommend_parse.h"

bool rp_loopback_url(const char *url)
{
    static const char scheme[] = "http://";
    if (strncasecmp(url, scheme, sizeof scheme - 1) != 0)
        return false;
    const char *host = url + sizeof scheme - 1;
    size_t n = strcspn(host, "/?#");
    if (memchr(host, '@', n) != NULL) /* user info: refused rather than parsed */
        return false;
    char buf[64];
    size_t hl;
    const char *rest;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', n);
        if (close == NULL)
            return false;
        hl = (size_t)(close - host - 1);
        host++;
        rest = close + 1;
    } else {
        hl = strcspn(host, ":/?#");
        rest = host + hl;
    }
    if (hl == 0 || hl >= sizeof buf)
        return false;
    memcpy(buf, host, hl);
    buf[hl] = '\0';
    if (*rest == ':') { /* a port: digits only, 1..65535 */
        char *end;
        long port = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || port < 1 || port > 65535 || (*end && !strchr("/?#", *end)))
            return false;
    } else if (*rest && !strchr("/?#", *rest)) {
        return false;
    }
    if (strcasecmp(buf, "localhost") == 0)
        return true;
    unsigned char a[16];
    if (inet_pton(AF_INET, buf, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, buf, a) == 1) {
        static const unsigned char one[16] = {[15] = 1};
        return memcmp(a, one, 16) == 0;
    }
    return false;
}

/* has_pair: does the label set [lb, le) (between the braces) hold pair, a whole
 * key="value" that starts the set or follows a comma? */
static bool has_pair(const char *lb, const char *le, const char *pair)
{
    size_t n = strlen(pair);
    for (const char *p = lb; p + n <= le; p++) {
        if ((p == lb || p[-1] == ',') && memcmp(p, pair, n) == 0 && (p + n == le || p[n] == ','))
            return true;
    }
    return false;
}

/* labels_end: the closing brace of a label set starting after '{', stepping over quoted
 * values (which may hold braces and escaped quotes); NULL if the line ends first. */
static const char *labels_end(const char *p)
{
    bool quoted = false;
    for (; *p && *p != '\n'; p++) {
        if (quoted && *p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == '}')
            return p;
    }
    return NULL;
}

bool rp_prom_sum(const char *text, const char *name, const char *want, const char *const *skip,
                 double *sum, int *nseries)
{
    size_t nl = strlen(name);
    int found = 0, nonzero = 0;
    *sum = 0;
    const char *next;
    for (const char *line = text; line != NULL && *line; line = next) {
        const char *eol = strchr(line, '\n');
        next = eol != NULL ? eol + 1 : NULL;
        while (*line == ' ' || *line == '\t')
            line++;
        if (strncmp(line, name, nl) != 0 ||
            (line[nl] != '{' && line[nl] != ' ' && line[nl] != '\t'))
            continue;
        const char *p = line + nl, *lb = p, *le = p;
        if (*p == '{') {
            lb = p + 1;
            le = labels_end(lb);
            if (le == NULL)
                continue;
            p = le + 1;
        }
        if (want != NULL && !has_pair(lb, le, want))
            continue;
        bool skipped = false;
        for (size_t i = 0; skip != NULL && skip[i] != NULL && !skipped; i++)
            skipped = has_pair(lb, le, skip[i]);
        if (skipped)
            continue;
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v))
            continue;
        *sum += v;
        found++;
        nonzero += v != 0;
    }
    if (nseries != NULL)
        *nseries = nonzero;
    return found > 0;
}

bool rp_keepalive_timeout(const char *value, double *out_s)
{
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, "timeout", 7) == 0) {
            const char *q = p + 7;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                char *end;
                double v = strtod(q + 1, &end);
                if (end != q + 1 && isfinite(v) && v > 0) {
                    *out_s = v;
                    return true;
                }
                return false;
            }
        }
        p += strcspn(p, ",");
    }
    return false;
}

bool rp_port_range(const char *s, int64_t *lo, int64_t *hi)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || (*end != '-' && *end != ' ' && *end != '\t'))
        return false;
    const char *t = end + 1;
    while (*t == ' ' || *t == '\t')
        t++;
    long b = strtol(t, &end, 10);
    if (end == t)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0' || a < 1 || b > 65535 || a > b)
        return false;
    *lo = a;
    *hi = b;
    return true;
}

bool rp_label_pair(const char *arg, char *out, size_t cap)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || strchr(eq + 1, '"') != NULL)
        return false;
    int n = snprintf(out, cap, "%.*s=\"%s\"", (int)(eq - arg), arg, eq + 1);
    return n > 0 && (size_t)n < cap;
}
