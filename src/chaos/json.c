/* json.c: faults and schedules from JSON (jansson): each member goes through
 * tp_chaos_fault_set, so the JSON forms accept exactly what the command line does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"

#ifdef TIDEPOOL_HAVE_JANSSON
#include <jansson.h>

/* A member's value as the text tp_chaos_fault_set reads (numbers in full precision). */
static bool value_text(json_t *v, char *buf, size_t cap)
{
    if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_true(v))
        snprintf(buf, cap, "true");
    else if (json_is_false(v))
        snprintf(buf, cap, "false");
    else if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.17g", json_real_value(v));
    else
        return false;
    return true;
}

static tp_err duration_member(json_t *v, const char *name, int64_t *out, tp_errinfo *err)
{
    char text[128];
    if (!value_text(v, text, sizeof text) || !tp__chaos_parse_duration(text, out))
        return tp_errinfo_set(err, TP_EINVAL, 0, "%s: not a duration", name);
    return TP_OK;
}

/* Fills f from obj's members; `skip` names members the caller reads itself; *named
 * (if not NULL) says whether any member was a fault field. */
static tp_err fault_from(json_t *obj, tp_chaos_fault *f, const char *const *skip, bool *named,
                         tp_errinfo *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool skipped = false;
        for (const char *const *s = skip; s != NULL && *s != NULL; s++)
            skipped = skipped || strcmp(*s, key) == 0;
        if (skipped)
            continue;
        char text[256];
        if (!value_text(v, text, sizeof text))
            return tp_errinfo_set(err, TP_EINVAL, 0, "%s: not a string, number or boolean",
                                  key);
        tp_err rc = tp_chaos_fault_set(f, key, text, err);
        if (rc != TP_OK)
            return rc;
        if (named != NULL)
            *named = true;
    }
    return TP_OK;
}

static json_t *load(const char *json, tp_errinfo *err)
{
    if (json == NULL) {
        tp_errinfo_set(err, TP_EINVAL, 0, "json: NULL");
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        tp_errinfo_set(err, TP_EINVAL, 0, "JSON, line %d column %d: %s", je.line, je.column,
                       je.text);
    return root;
}

tp_err tp_chaos_fault_parse(const char *json, tp_chaos_fault *f, tp_errinfo *err)
{
    if (f == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "fault: NULL");
    json_t *root = load(json, err);
    if (root == NULL)
        return TP_EINVAL;
    tp_chaos_fault g;
    tp_chaos_fault_init(&g);
    tp_err rc = json_is_object(root) ? fault_from(root, &g, NULL, NULL, err)
                                     : tp_errinfo_set(err, TP_EINVAL, 0, "a fault is an object");
    json_decref(root);
    if (rc == TP_OK)
        *f = g;
    return rc;
}

static tp_err step_from(json_t *obj, size_t i, tp_chaos_step *s, tp_errinfo *err)
{
    memset(s, 0, sizeof *s);
    tp_chaos_fault_init(&s->fault);
    s->duration = -1;
    if (!json_is_object(obj))
        return tp_errinfo_set(err, TP_EINVAL, 0, "step %zu: not an object", i);
    json_t *at = json_object_get(obj, "at");
    if (at == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "step %zu: \"at\" is required", i);
    tp_err rc = duration_member(at, "at", &s->at, err);
    json_t *dur = json_object_get(obj, "for");
    if (rc == TP_OK && dur != NULL)
        rc = duration_member(dur, "for", &s->duration, err);
    json_t *down = json_object_get(obj, "down");
    if (rc == TP_OK && down != NULL) {
        if (dur != NULL)
            rc = tp_errinfo_set(err, TP_EINVAL, 0, "\"down\" is its own duration: no \"for\"");
        else
            rc = duration_member(down, "down", &s->duration, err);
        s->down = true;
    }
    json_t *reset = json_object_get(obj, "reset_all");
    if (rc == TP_OK && reset != NULL) {
        if (!json_is_boolean(reset))
            rc = tp_errinfo_set(err, TP_EINVAL, 0, "reset_all: not a boolean");
        s->reset_all = json_is_true(reset);
    }
    static const char *const own[] = {"at", "for", "down", "reset_all", NULL};
    if (rc == TP_OK)
        rc = fault_from(obj, &s->fault, own, &s->set_fault, err);
    if (rc != TP_OK) {
        /* name the step in the message */
        char msg[TP_ERRMSG_SIZE];
        snprintf(msg, sizeof msg, "%s", err != NULL ? err->msg : "");
        tp_errinfo_set(err, rc, 0, "step %zu: %s", i, msg);
    }
    return rc;
}

tp_err tp_chaos_schedule_parse(const char *json, tp_chaos_step **steps, size_t *n,
                               tp_errinfo *err)
{
    if (steps == NULL || n == NULL)
        return tp_errinfo_set(err, TP_EINVAL, 0, "steps and n: NULL");
    *steps = NULL;
    *n = 0;
    json_t *root = load(json, err);
    if (root == NULL)
        return TP_EINVAL;
    if (!json_is_array(root)) {
        json_decref(root);
        return tp_errinfo_set(err, TP_EINVAL, 0, "a schedule is an array of steps");
    }
    size_t count = json_array_size(root);
    tp_chaos_step *s = tp__calloc(count > 0 ? count : 1, sizeof *s);
    if (s == NULL) {
        json_decref(root);
        return tp_errinfo_set(err, TP_ENOMEM, 0, "allocating %zu steps", count);
    }
    tp_err rc = TP_OK;
    for (size_t i = 0; i < count && rc == TP_OK; i++)
        rc = step_from(json_array_get(root, i), i, &s[i], err);
    json_decref(root);
    if (rc != TP_OK) {
        tp__free(s);
        return rc;
    }
    *steps = s;
    *n = count;
    return TP_OK;
}

#else /* !TIDEPOOL_HAVE_JANSSON */

tp_err tp_chaos_fault_parse(const char *json, tp_chaos_fault *f, tp_errinfo *err)
{
    (void)json;
    (void)f;
    return tp_errinfo_set(err, TP_ESTATE, 0, "built without jansson");
}

tp_err tp_chaos_schedule_parse(const char *json, tp_chaos_step **steps, size_t *n,
                               tp_errinfo *err)
{
    (void)json;
    if (steps != NULL)
        *steps = NULL;
    if (n != NULL)
        *n = 0;
    return tp_errinfo_set(err, TP_ESTATE, 0, "built without jansson");
}

#endif
