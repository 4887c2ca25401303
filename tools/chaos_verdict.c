/* chaos_verdict.c: the verdict lines of `tidepool chaos run` (text as they come, or
 * members of the run's JSON line), and what a server's request log says it received. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_run.h"

void chaos_verdict(chaos_verdicts *v, const char *name, bool pass, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    v->all = v->all && pass;
    if (!v->json)
        printf("%s  %-26s %s\n", pass ? "PASS" : "FAIL", name, detail);
    else if (v->len < sizeof v->buf)
        v->len += (size_t)snprintf(v->buf + v->len, sizeof v->buf - v->len,
                                   "%s{\"name\": \"%s\", \"pass\": %s, \"detail\": \"%s\"}",
                                   v->n > 0 ? ", " : "", name, pass ? "true" : "false", detail);
    v->n++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool chaos_server_log(const char *log, const char *prefix, uint64_t *seen, uint64_t *twice)
{
    *seen = *twice = 0;
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return false;
    char needle[64];
    snprintf(needle, sizeof needle, "id=%s-", prefix);
    size_t n = 0, cap = 0;
    char **ids = NULL, line[1024];
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = strstr(line, needle);
        if (p == NULL)
            continue;
        p += 3;
        p[strcspn(p, "&\r\n ")] = '\0';
        if (n == cap) {
            cap = cap * 2 + 1024;
            char **bigger = realloc(ids, cap * sizeof *ids);
            if (bigger == NULL)
                break;
            ids = bigger;
        }
        if ((ids[n] = strdup(p)) != NULL)
            n++;
    }
    fclose(f);
    qsort(ids, n, sizeof *ids, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(ids[i], ids[i - 1]) == 0)
            (*twice)++;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    *seen = n;
    return true;
}
