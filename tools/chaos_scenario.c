/* chaos_scenario.c: a scenario file of `tidepool chaos run` (JSON, read with jansson):
 * the server's URL and client, the load, the timeouts, the fault in force from the start
 * and the schedule, the bounds of the verdicts and the errors the faults explain. Every
 * duration is read by the proxy's own parser (tp_chaos_fault_set). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos_run.h"

#ifdef TIDEPOOL_HAVE_JANSSON
#include <jansson.h>

static bool dur_of(json_t *v, int64_t *out)
{
    char text[64];
    if (json_is_string(v))
        snprintf(text, sizeof text, "%s", json_string_value(v));
    else if (json_is_number(v))
        snprintf(text, sizeof text, "%.17g", json_number_value(v));
    else
        return false;
    tp_chaos_fault f;
    tp_chaos_fault_init(&f);
    if (tp_chaos_fault_set(&f, "latency", text, NULL) != TP_OK) /* the one duration parser */
        return false;
    *out = f.latency;
    return true;
}

static int bad_scenario(const char *path, const char *what)
{
    fprintf(stderr, "tidepool chaos run: %s: %s\n", path, what);
    return 2;
}

/* tp_err names to a bit set (by -code). */
static bool err_bit(const char *name, unsigned *set)
{
    for (int i = 1; i < CHAOS_NERR && i < 32; i++)
        if (strcmp(tp_err_name((tp_err)-i), name) == 0) {
            *set |= 1u << i;
            return true;
        }
    return false;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap * 2 + 8192;
            char *b = realloc(buf, cap);
            if (b == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* The schedule: restarts of the server are the run's to make, every other step goes
 * to the proxy's parser. */
static int split_schedule(const char *path, json_t *v, chaos_scenario *sc)
{
    if (!json_is_array(v))
        return bad_scenario(path, "schedule: an array of steps");
    json_t *proxy = json_array();
    if (proxy == NULL)
        return bad_scenario(path, "out of memory");
    int rc = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        json_t *r = json_object_get(e, "restart");
        if (r == NULL) {
            json_array_append(proxy, e);
            continue;
        }
        int64_t at;
        if (!json_is_true(r) || json_object_size(e) != 2 || !dur_of(json_object_get(e, "at"), &at))
            rc =
                bad_scenario(path, "schedule: a restart step is {\"at\": TIME, \"restart\": true}");
        else if (sc->nrestarts == CHAOS_MAX_RESTARTS)
            rc = bad_scenario(path, "schedule: at most 8 restarts");
        else
            sc->restart_at[sc->nrestarts++] = at;
        if (rc != 0)
            break;
    }
    tp_errinfo err;
    if (rc == 0 && json_array_size(proxy) > 0) {
        char *s = json_dumps(proxy, 0);
        if (s == NULL || tp_chaos_schedule_parse(s, &sc->steps, &sc->nsteps, &err) != TP_OK)
            rc = bad_scenario(path, s == NULL ? "schedule" : err.msg);
        free(s);
    }
    json_decref(proxy);
    return rc;
}

int chaos_scenario_load(const char *path, const char *url_override, const char *client_override,
                        chaos_scenario *sc)
{
    memset(sc, 0, sizeof *sc);
    tp_chaos_fault_init(&sc->fault);
    sc->concurrency = 4;
    sc->duration = 3 * TP_NSEC_PER_SEC;
    sc->header_timeout = TP_NSEC_PER_SEC;
    sc->request_timeout = 10 * TP_NSEC_PER_SEC;
    sc->max_per_key = 16;
    sc->recovery_within = TP_NSEC_PER_SEC;
    sc->max_opens_after_heal = -1;
    char *text = slurp(path);
    if (text == NULL)
        return bad_scenario(path, strerror(errno));
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    free(text);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return bad_scenario(path, root == NULL ? je.text : "not a JSON object");
    }
    int rc = 0;
    json_t *v;
    snprintf(sc->name, sizeof sc->name, "%s",
             json_is_string(v = json_object_get(root, "name")) ? json_string_value(v) : path);
    for (char *c = sc->name; *c != '\0'; c++) /* it is printed inside JSON strings */
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '\'';
    const char *url = url_override;
    if (url == NULL && json_is_string(v = json_object_get(root, "url")))
        url = json_string_value(v);
    if (url == NULL)
        rc = bad_scenario(path, "\"url\": the real server's URL is required");
    else if (strncmp(url, "http://", 7) == 0)
        sc->k = K_HTTP;
    else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        sc->k = K_PG;
    else if (strncmp(url, "redis://", 8) == 0)
        sc->k = K_REDIS;
    else
        rc = bad_scenario(path, "\"url\": http://, postgres:// or redis://");
    if (rc == 0)
        snprintf(sc->url, sizeof sc->url, "%s", url);
    const char *client = client_override;
    if (client == NULL && json_is_string(v = json_object_get(root, "client")))
        client = json_string_value(v);
    if (rc == 0 && client != NULL) {
        if (strcmp(client, "engine") == 0 && sc->k == K_HTTP)
            sc->k = K_ENGINE;
        else if (strcmp(client, "blocking") != 0 && strcmp(client, "engine") != 0)
            rc = bad_scenario(path, "\"client\": \"blocking\" or \"engine\"");
    }
    if (rc == 0 && (v = json_object_get(root, "method")) != NULL)
        sc->post_echo = json_is_string(v) && strcmp(json_string_value(v), "POST") == 0;
    if (rc == 0 && json_is_integer(v = json_object_get(root, "concurrency")))
        sc->concurrency = (int)json_integer_value(v);
    if (rc == 0 && (sc->concurrency < 1 || sc->concurrency > CHAOS_MAX_WORKERS))
        rc = bad_scenario(path, "concurrency: 1 to 256");
    struct {
        const char *key;
        int64_t *out;
    } durs[] = {{"duration", &sc->duration},
                {"response_header_timeout", &sc->header_timeout},
                {"request_timeout", &sc->request_timeout},
                {"recovery_within", &sc->recovery_within},
                {"connect_timeout", &sc->connect_timeout}};
    for (size_t i = 0; rc == 0 && i < sizeof durs / sizeof *durs; i++)
        if ((v = json_object_get(root, durs[i].key)) != NULL && !dur_of(v, durs[i].out))
            rc = bad_scenario(path, durs[i].key);
    if (rc == 0 && json_is_integer(v = json_object_get(root, "max_per_key")))
        sc->max_per_key = json_integer_value(v);
    if (rc == 0 && json_is_integer(v = json_object_get(root, "max_opens_after_heal")))
        sc->max_opens_after_heal = json_integer_value(v);
    if (rc == 0 && json_is_boolean(v = json_object_get(root, "expect_breaker")))
        sc->expect_breaker = json_is_true(v);
    tp_errinfo err;
    if (rc == 0 && (v = json_object_get(root, "fault")) != NULL) {
        char *f = json_dumps(v, 0);
        if (f == NULL || tp_chaos_fault_parse(f, &sc->fault, &err) != TP_OK)
            rc = bad_scenario(path, f == NULL ? "fault" : err.msg);
        free(f);
    }
    if (rc == 0 && (v = json_object_get(root, "schedule")) != NULL)
        rc = split_schedule(path, v, sc);
    const char *dflt[] = {"TP_ECONNRESET", "TP_ECONNREFUSED", "TP_EHDRTIMEDOUT", "TP_ETIMEDOUT",
                          "TP_EBREAKER",   "TP_EREQTIMEDOUT", "TP_ECONNTIMEDOUT"};
    if (rc == 0 && json_is_array(v = json_object_get(root, "allowed_errors"))) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) || !err_bit(json_string_value(e), &sc->allowed))
                rc = bad_scenario(path, "allowed_errors: tp_err names (TP_ECONNRESET...)");
        }
    } else {
        for (size_t i = 0; i < sizeof dflt / sizeof *dflt; i++)
            (void)err_bit(dflt[i], &sc->allowed);
    }
    json_decref(root);
    if (rc != 0) {
        tp_free(sc->steps); /* a schedule read before a later member failed */
        sc->steps = NULL;
        return rc;
    }
    if (sc->max_opens_after_heal < 0)
        sc->max_opens_after_heal = 2 * sc->concurrency;
    return 0;
}

#else /* !TIDEPOOL_HAVE_JANSSON */

int chaos_scenario_load(const char *path, const char *url_override, const char *client_override,
                        chaos_scenario *sc)
{
    (void)url_override, (void)client_override, (void)sc;
    fprintf(stderr, "tidepool chaos run: %s: built without jansson (scenarios are JSON)\n", path);
    return 2;
}

#endif
