/* health.c: connection health from the kernel's view of the TCP connection. A pooled
 * connection can be sick while every check the protocol offers says it is fine: the
 * peer stopped reading (bytes stay unacknowledged), the path drops packets
 * (retransmissions grow), or it was routed badly (an RTT far above the key's other
 * connections). For connectors that expose the socket (connector fd()), we read TCP_INFO
 * of idle connections at maintenance and of every 32nd release, score it against the
 * key's baseline, and close the sick ones with reason unhealthy.
 *
 * No system call runs under the pool lock: maintenance claims the idle connections it
 * samples (IDLE -> RESERVED, as for closing), samples them unlocked, then closes the
 * sick ones and gives the others back. */
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "pool_internal.h"

#define TP__HEALTH_EVERY 32        /* releases between samples of one connection */
#define TP__HEALTH_MAX_PER_PASS 64 /* idle connections sampled per key and pass */
#define TP__HEALTH_RETRANS 3           /* new retransmissions that make a connection sick */
#define TP__HEALTH_RTT_FACTOR 4        /* RTT this many times the key's baseline ... */
#define TP__HEALTH_RTT_EXCESS_US 10000 /* ... and this much above it is sick */

typedef struct sample {
    bool ok;
    uint32_t rtt_us, retrans, unacked;
    int outq; /* bytes not yet acknowledged by the peer (SIOCOUTQ) */
} sample;

static sample take(tp_pool *p, tp_conn *c)
{
    sample s = {0};
    int fd = p->o.connector.fd(p->o.connector.ctx, c->user);
    if (fd < 0)
        return s;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return s;
    int outq = 0;
    if (ioctl(fd, SIOCOUTQ, &outq) != 0)
        outq = 0;
    s.ok = true;
    s.rtt_us = ti.tcpi_rtt;
    s.retrans = ti.tcpi_total_retrans;
    s.unacked = ti.tcpi_unacked;
    s.outq = outq;
    return s;
}

/* Scores a sample against the key's baseline (and updates both). idle: the connection
 * has been idle long enough that anything unacknowledged is a symptom. */
static bool sick(tp__key *k, tp_conn *c, const sample *s, bool idle)
{
    if (!s->ok)
        return false;
    bool bad = idle && (s->outq > 0 || s->unacked > 0);
    if (s->retrans >= c->last_retrans + TP__HEALTH_RETRANS && c->last_retrans != 0)
        bad = true;
    c->last_retrans = s->retrans > 0 ? s->retrans : 1; /* 0 means "no sample yet" */
    /* The baseline is the smallest RTT seen, drifting up by 1/64 per sample so that a
     * path that got slower everywhere becomes the new normal. */
    int64_t base = atomic_load(&k->rtt_base_us);
    if (s->rtt_us > 0) {
        int64_t nb = base == 0 || s->rtt_us < base ? s->rtt_us : base + (s->rtt_us - base) / 64;
        atomic_store(&k->rtt_base_us, nb);
        if (base > 0 && s->rtt_us > TP__HEALTH_RTT_FACTOR * base &&
            s->rtt_us > base + TP__HEALTH_RTT_EXCESS_US)
            bad = true;
    }
    return bad;
}

bool tp__health_on_release(tp_pool *p, tp_conn *c)
{
    if (!p->o.retire_unhealthy || p->o.connector.fd == NULL ||
        TP__LOAD(c->uses) % TP__HEALTH_EVERY != 0)
        return false;
    sample s = take(p, c);
    /* Just used: the last bytes may be in flight, so only retransmissions and RTT count. */
    return sick(c->key, c, &s, false);
}

void tp__health_pass_locked(tp_pool *p, tp__key *k, int64_t now, tp__after *a)
{
    TP__ASSERT_LOCKED(&p->mu);
    if (!p->o.retire_unhealthy || p->o.connector.fd == NULL)
        return;
    tp_conn *claimed[TP__HEALTH_MAX_PER_PASS];
    int n = 0;
    for (tp__list *it = k->idle.next; it != &k->idle && n < TP__HEALTH_MAX_PER_PASS;
         it = it->next) {
        tp_conn *c = TP__CONTAINER_OF(it, tp_conn, idle_link);
        if (now - TP__LOAD(c->idle_since) >= TP__HEALTH_MIN_IDLE &&
            tp__idle_claim_locked(p, c, TP__CS_RESERVED))
            claimed[n++] = c;
    }
    if (n == 0)
        return;
    /* Claimed connections keep their key alive: the pass holds a pin meanwhile. */
    k->pins++;
    tp__mutex_unlock(&p->mu);
    bool bad[TP__HEALTH_MAX_PER_PASS];
    for (int i = 0; i < n; i++) {
        sample s = take(p, claimed[i]);
        bad[i] = sick(k, claimed[i], &s, true);
    }
    tp__mutex_lock(&p->mu);
    k->pins--;
    for (int i = 0; i < n; i++) {
        tp_conn *c = claimed[i];
        if (bad[i] || atomic_load(&p->closed)) {
            tp__conn_close_locked(p, c, bad[i] ? TP_CLOSE_UNHEALTHY : TP_CLOSE_POOL_CLOSED, a);
        } else {
            uint64_t w = atomic_load(&c->word);
            atomic_store(&c->word, TP__CS_MAKE(TP__CS_GEN(w), TP__CS_LINKED, TP__CS_IDLE));
        }
    }
}
