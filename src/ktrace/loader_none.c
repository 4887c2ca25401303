/* loader_none.c: the trace's loader in a build without the eBPF part (libbpf, bpftool
 * or clang were not found): every entry says so, and doctor falls back to sock_diag. */
#if !TIDEPOOL_HAVE_BPF

#include "ktrace_internal.h"

tp_err tp__ktrace_bpf_probe(tp_errinfo *err)
{
    return tp_errinfo_set(err, TP_ESTATE, 0,
                          "built without eBPF (install libbpf-dev, bpftool and clang, "
                          "then rebuild)");
}

tp_err tp__ktrace_bpf_open(tp_ktrace *t, size_t ring_bytes, tp_errinfo *err)
{
    (void)t;
    (void)ring_bytes;
    return tp__ktrace_bpf_probe(err);
}

tp_err tp__ktrace_bpf_poll(tp_ktrace *t, int timeout_ms, tp_errinfo *err)
{
    (void)t;
    (void)timeout_ms;
    (void)err;
    return TP_OK;
}

void tp__ktrace_bpf_counters(tp_ktrace *t, tp_ktrace_summary *sum)
{
    (void)t;
    sum->events = sum->lost = sum->missed = 0;
}

void tp__ktrace_bpf_close(tp_ktrace *t)
{
    t->bpf = NULL;
}

#endif
