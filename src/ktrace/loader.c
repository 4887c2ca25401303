/* loader.c: the eBPF program's life in user space, with libbpf: open the skeleton that
 * bpftool generated from bpf/tcp_events.bpf.c at build time, size the ring buffer, load
 * (libbpf relocates the program's field offsets against the running kernel's BTF) and
 * attach by name (tp_btf: BPF_RAW_TRACEPOINT_OPEN, no tracefs, no kprobes), then read the
 * ring buffer. Also the kernel's names of the reset reasons, straight from its BTF, so
 * that a kernel which adds reasons is reported with its own names. Built only with the
 * eBPF part (TIDEPOOL_HAVE_BPF); loader_none.c stands in otherwise. */
#if TIDEPOOL_HAVE_BPF

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "tcp_events.skel.h"
#include "ktrace_internal.h"

struct tp__ktrace_bpf {
    struct tp_tcp_events *skel;
    struct ring_buffer *rb;
    tp_ktrace *t;
    tp_err cb_rc; /* the first error an event callback met */
};

#define BTF_VMLINUX "/sys/kernel/btf/vmlinux"
#define REASON_PREFIX "SK_RST_REASON_"

/* The capability bits of /proc/self/status CapEff that loading needs. */
#define CAP_SYS_ADMIN_BIT 21
#define CAP_PERFMON_BIT 38
#define CAP_BPF_BIT 39

static bool has_capabilities(void)
{
    if (geteuid() == 0)
        return true;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return false;
    char line[256];
    unsigned long long eff = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    bool sys_admin = eff >> CAP_SYS_ADMIN_BIT & 1;
    bool bpf_perfmon = (eff >> CAP_BPF_BIT & 1) && (eff >> CAP_PERFMON_BIT & 1);
    return sys_admin || bpf_perfmon;
}

tp_err tp__ktrace_bpf_probe(tp_errinfo *err)
{
    if (access(BTF_VMLINUX, R_OK) != 0)
        return tp_errinfo_set(err, TP_ESYS, ENOENT,
                              "the kernel has no BTF (%s): the trace needs a kernel built "
                              "with CONFIG_DEBUG_INFO_BTF",
                              BTF_VMLINUX);
    if (!has_capabilities())
        return tp_errinfo_set(err, TP_ESYS, EPERM,
                              "loading eBPF needs root or CAP_BPF with CAP_PERFMON; run as "
                              "root (sudo tidepool doctor --trace ...)");
    return TP_OK;
}

/* libbpf's messages while loading: kept (the last warning says why a load failed)
 * rather than printed, since the library must not write to stderr. */
static __thread char g_last_msg[512];

static int keep_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    /* The verifier's log comes line by line; the summary line is the useful one. */
    if (n > 0 && strncmp(line, "libbpf: ", 8) == 0)
        snprintf(g_last_msg, sizeof g_last_msg, "%s", line + 8);
    return 0;
}

static tp_err read_reasons(tp_ktrace *t)
{
    struct btf *btf = btf__load_vmlinux_btf();
    if (btf == NULL)
        return TP_OK; /* names unknown: reported by number */
    tp_err rc = TP_OK;
    int id = btf__find_by_name_kind(btf, "sk_rst_reason", BTF_KIND_ENUM);
    if (id > 0) {
        const struct btf_type *ty = btf__type_by_id(btf, (unsigned)id);
        const struct btf_enum *en = btf_enum(ty);
        unsigned n = btf_vlen(ty);
        size_t max = 0;
        for (unsigned i = 0; i < n; i++)
            if (en[i].val >= 0 && (size_t)en[i].val + 1 > max && en[i].val < 4096)
                max = (size_t)en[i].val + 1;
        t->reasons = tp__calloc(max ? max : 1, sizeof *t->reasons);
        if (t->reasons == NULL) {
            rc = TP_ENOMEM;
        } else {
            t->nreasons = max;
            for (unsigned i = 0; i < n && rc == TP_OK; i++) {
                const char *name = btf__name_by_offset(btf, en[i].name_off);
                if (name == NULL || en[i].val < 0 || (size_t)en[i].val >= max)
                    continue;
                if (strncmp(name, REASON_PREFIX, strlen(REASON_PREFIX)) == 0)
                    name += strlen(REASON_PREFIX);
                size_t len = strlen(name);
                char *copy = tp__malloc(len + 1);
                if (copy == NULL) {
                    rc = TP_ENOMEM;
                    break;
                }
                memcpy(copy, name, len + 1);
                t->reasons[en[i].val] = copy;
            }
        }
    }
    btf__free(btf);
    return rc;
}

static int on_event(void *ctx, void *data, size_t size)
{
    tp__ktrace_bpf *b = ctx;
    if (size < sizeof(struct tp_ktrace_event))
        return 0; /* not ours: a program of another layout */
    struct tp_ktrace_event e;
    memcpy(&e, data, sizeof e);
    tp_err rc = tp__ktrace_event(b->t, &e);
    if (rc != TP_OK && b->cb_rc == TP_OK)
        b->cb_rc = rc;
    return 0;
}

tp_err tp__ktrace_bpf_open(tp_ktrace *t, size_t ring_bytes, tp_errinfo *err)
{
    tp__ktrace_bpf *b = tp__calloc(1, sizeof *b);
    if (b == NULL)
        return tp_errinfo_set(err, TP_ENOMEM, 0, "out of memory");
    b->t = t;
    g_last_msg[0] = '\0';
    libbpf_print_fn_t old = libbpf_set_print(keep_print);
    tp_err rc = TP_OK;
    const char *step = "open";
    int e = 0;
    b->skel = tp_tcp_events__open();
    if (b->skel == NULL) {
        e = errno;
    } else {
        step = "size the ring buffer of";
        e = -bpf_map__set_max_entries(b->skel->maps.events, (unsigned)ring_bytes);
        if (e == 0) {
            step = "load";
            e = -tp_tcp_events__load(b->skel);
        }
        if (e == 0) {
            step = "attach";
            e = -tp_tcp_events__attach(b->skel);
        }
    }
    libbpf_set_print(old);
    if (e != 0) {
        rc = tp_errinfo_set(err, TP_ESYS, e, "could not %s the eBPF program: %s%s%s", step,
                            strerror(e), g_last_msg[0] ? ": " : "", g_last_msg);
        goto fail;
    }
    b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.events), on_event, b, NULL);
    if (b->rb == NULL) {
        e = errno;
        rc = tp_errinfo_set(err, TP_ESYS, e, "could not map the trace's ring buffer: %s",
                            strerror(e));
        goto fail;
    }
    t->sum.hz = b->skel->kconfig != NULL ? b->skel->kconfig->CONFIG_HZ : 0;
    if ((rc = read_reasons(t)) != TP_OK) {
        tp_errinfo_set(err, rc, 0, "out of memory");
        goto fail;
    }
    t->bpf = b;
    return TP_OK;
fail:
    ring_buffer__free(b->rb);
    tp_tcp_events__destroy(b->skel);
    tp__free(b);
    return rc;
}

tp_err tp__ktrace_bpf_poll(tp_ktrace *t, int timeout_ms, tp_errinfo *err)
{
    tp__ktrace_bpf *b = t->bpf;
    if (b == NULL)
        return TP_OK;
    b->cb_rc = TP_OK;
    /* The program wakes us only when the ring fills (commit() in tcp_events.bpf.c): the
     * wait is mostly the full timeout, then whatever arrived is read. */
    int n = ring_buffer__poll(b->rb, timeout_ms);
    if (n >= 0)
        n = ring_buffer__consume(b->rb);
    if (n < 0 && n != -EINTR)
        return tp_errinfo_set(err, TP_ESYS, -n, "reading the trace's ring buffer: %s",
                              strerror(-n));
    if (b->cb_rc != TP_OK)
        return tp_errinfo_set(err, b->cb_rc, 0, "out of memory while counting events");
    return TP_OK;
}

void tp__ktrace_bpf_counters(tp_ktrace *t, tp_ktrace_summary *sum)
{
    sum->events = sum->lost = sum->missed = 0;
    if (t->bpf == NULL)
        return;
    int fd = bpf_map__fd(t->bpf->skel->maps.counters);
    uint32_t k = TP_KTCNT_EVENTS;
    uint64_t v = 0;
    if (bpf_map_lookup_elem(fd, &k, &v) == 0)
        sum->events = v;
    k = TP_KTCNT_LOST;
    v = 0;
    if (bpf_map_lookup_elem(fd, &k, &v) == 0)
        sum->lost = v;
    /* A program the kernel did not run because it was already running on that CPU (a
     * softirq's segment interrupting it in a process's close()) lost its event too; the
     * kernel counts those per program. */
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, t->bpf->skel->obj)
    {
        struct bpf_prog_info info;
        uint32_t len = sizeof info;
        memset(&info, 0, sizeof info);
        if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
            sum->missed += info.recursion_misses;
    }
}

void tp__ktrace_bpf_close(tp_ktrace *t)
{
    tp__ktrace_bpf *b = t->bpf;
    if (b == NULL)
        return;
    ring_buffer__free(b->rb);
    tp_tcp_events__destroy(b->skel);
    tp__free(b);
    t->bpf = NULL;
}

#endif
