/* test_net_tls.c (label: concurrency): TLS streams of src/net/ against an in-process
 * OpenSSL server thread on 127.0.0.1: verification by name and by IP, the failures that
 * must be TP_ECERT (wrong name, untrusted CA), insecure mode, session resumption per key
 * (TLS 1.2 and 1.3, where the ticket arrives after the handshake), the handshake
 * deadline, the idle check around TLS 1.3 tickets and a close_notify, ends of stream,
 * large writes, and no SIGPIPE.
 *
 * Certificates are made at start-up with the openssl command in a temporary directory:
 * a CA, a server certificate it signs for DNS:localhost and IP:127.0.0.1, and a second,
 * untrusted CA. Without the openssl command (or a build without OpenSSL) the TLS cases
 * are skipped with a message. The server thread never calls cmocka assertions. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/net.h"
#include "support/test_util.h"

#ifdef TIDEPOOL_HAVE_OPENSSL
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static char dir[64];    /* the temporary certificate directory, "" if none */
static bool have_certs; /* false: the openssl command is missing, TLS cases skip */

static void path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* ---- certificates ------------------------------------------------------------------- */

static const char *const files[] = {"ca.cnf",     "server.ext", "ca.key",
                                    "ca.pem",     "server.key", "server.csr",
                                    "server.pem", "other.key",  "other.pem"};

static bool write_file(const char *name, const char *text)
{
    char p[128];
    path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    if (f == NULL)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static int make_certs(void **state)
{
    (void)state;
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        print_message("the openssl command is missing: TLS tests are skipped\n");
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/tp-net-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    if (!write_file("ca.cnf", "[req]\ndistinguished_name = dn\n[dn]\n[v3_ca]\n"
                              "basicConstraints = critical,CA:TRUE\n"
                              "keyUsage = critical,keyCertSign,cRLSign\n"
                              "subjectKeyIdentifier = hash\n") ||
        !write_file("server.ext", "basicConstraints = CA:FALSE\n"
                                  "keyUsage = critical,digitalSignature\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = DNS:localhost,IP:127.0.0.1\n"))
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -config ca.cnf "
             "-extensions v3_ca -subj '/CN=tidepool test CA' && "
             "openssl req -new $K -keyout server.key -out server.csr -config ca.cnf "
             "-subj '/CN=localhost' && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 "
             "-extfile server.ext -out server.pem && "
             "openssl req -x509 $K -keyout other.key -out other.pem -days 2 -config ca.cnf "
             "-extensions v3_ca -subj '/CN=tidepool untrusted CA'",
             dir);
    char full[2200];
    snprintf(full, sizeof full, "( %s ) >'%s/openssl.log' 2>&1", cmd, dir);
    if (system(full) != 0) {
        print_error("making test certificates failed, see %s/openssl.log\n", dir);
        return -1;
    }
    have_certs = true;
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    if (dir[0] == '\0')
        return 0;
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path(p, sizeof p, files[i]);
        unlink(p);
    }
    path(p, sizeof p, "openssl.log");
    unlink(p);
    rmdir(dir);
    return 0;
}

#define NEED_CERTS()                                                                               \
    do {                                                                                           \
        if (!have_certs) {                                                                         \
            print_message("no openssl command: skipped\n");                                        \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- the server thread -------------------------------------------------------------- */

typedef enum srv_mode {
    SRV_ECHO,         /* echo until the client closes */
    SRV_SINK,         /* count bytes until the client closes */
    SRV_CLOSE_NOTIFY, /* when go is set: send close_notify, keep TCP open until the client closes */
    SRV_DROP,         /* when go is set: close TCP without close_notify */
} srv_mode;

typedef struct tls_server {
    SSL_CTX *ctx;
    int lfd;
    uint16_t port;
    srv_mode mode;
    pthread_t th;
    atomic_bool stop, go;
    atomic_int handshakes, failures, reused;
    atomic_size_t bytes;
} tls_server;

typedef struct server_counts {
    int handshakes, reused;
} server_counts;

/* Waits (bounded by stop) until go is set. */
static bool wait_go(tls_server *v)
{
    while (!atomic_load(&v->go))
        if (atomic_load(&v->stop))
            return false;
        else
            tu_sleep_ms(2);
    return true;
}

static void serve_one(tls_server *v, SSL *ssl, int fd)
{
    char buf[16384];
    int n;
    switch (v->mode) {
    case SRV_ECHO:
        while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
            if (SSL_write(ssl, buf, n) != n)
                break;
        break;
    case SRV_SINK:
        while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
            atomic_fetch_add(&v->bytes, (size_t)n);
        break;
    case SRV_CLOSE_NOTIFY:
        if (wait_go(v)) {
            SSL_shutdown(ssl);
            while (recv(fd, buf, sizeof buf, 0) > 0) {
            }
        }
        break;
    case SRV_DROP:
        wait_go(v);
        SSL_set_quiet_shutdown(ssl, 1);
        break;
    }
}

static void *server_thread(void *arg)
{
    tls_server *v = arg;
    /* OpenSSL's socket BIO writes with write(): a client that closed early (before the
     * server's session tickets went out) must not kill the test with SIGPIPE. Blocked
     * here, it stays pending on this thread only; the client side is what is tested. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    while (!atomic_load(&v->stop)) {
        struct pollfd p = {.fd = v->lfd, .events = POLLIN};
        if (poll(&p, 1, 20) != 1)
            continue;
        int fd = accept(v->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        SSL *ssl = SSL_new(v->ctx);
        if (ssl != NULL && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1) {
            atomic_fetch_add(&v->handshakes, 1);
            if (SSL_session_reused(ssl))
                atomic_fetch_add(&v->reused, 1);
            serve_one(v, ssl, fd);
        } else {
            atomic_fetch_add(&v->failures, 1);
        }
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

static int listen_v4(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts a server; max_version 0 for OpenSSL's highest. On the heap, so that after a
 * failed assertion (which leaves the test without stopping it) the thread never runs on
 * a dead stack frame. */
static tls_server *server_start(srv_mode mode, int max_version)
{
    tls_server *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->mode = mode;
    v->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(v->ctx);
    char p[128];
    path(p, sizeof p, "server.pem");
    assert_int_equal(SSL_CTX_use_certificate_chain_file(v->ctx, p), 1);
    path(p, sizeof p, "server.key");
    assert_int_equal(SSL_CTX_use_PrivateKey_file(v->ctx, p, SSL_FILETYPE_PEM), 1);
    if (max_version != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(v->ctx, max_version), 1);
    v->lfd = listen_v4(&v->port);
    tu_thread_start(&v->th, server_thread, v);
    return v;
}

/* Stops the server and returns how many handshakes it completed; frees it. */
static server_counts server_stop(tls_server *v)
{
    atomic_store(&v->stop, true);
    tu_thread_join(v->th);
    close(v->lfd);
    SSL_CTX_free(v->ctx);
    server_counts c = {atomic_load(&v->handshakes), atomic_load(&v->reused)};
    free(v);
    return c;
}

/* ---- client helpers ------------------------------------------------------------------- */

static tp__tls_ctx *client_ctx(const char *ca, bool insecure)
{
    char p[128];
    tp__tls_options o = {.ca_file = NULL, .ca_dir = NULL, .insecure_skip_verify = insecure};
    if (ca != NULL) {
        path(p, sizeof p, ca);
        o.ca_file = p;
    }
    tp__tls_ctx *t = NULL;
    tp_errinfo ei;
    tp_err rc = tp__tls_ctx_create(&o, &t, &ei);
    if (rc != TP_OK)
        print_error("tls ctx: %s\n", ei.msg);
    assert_int_equal(rc, TP_OK);
    return t;
}

/* Connects to 127.0.0.1:port and runs the handshake for host; closes s on failure. */
static tp_err tls_connect(uint16_t port, tp__tls_ctx *t, const char *host, const char *key,
                          tp__stream *s, int64_t timeout_ms, tp_errinfo *ei)
{
    int64_t deadline = tp_deadline_after(MS(timeout_ms));
    int fd;
    tp__stream_init(s, -1);
    tp_err rc = tp__tcp_connect("127.0.0.1", port, deadline, &fd, NULL, NULL, ei);
    if (rc != TP_OK)
        return rc;
    tp__stream_init(s, fd);
    rc = tp__tls_start(s, t, host, key, ei);
    if (rc == TP_OK)
        rc = tp__tls_handshake(s, deadline, ei);
    if (rc != TP_OK)
        tp__stream_close(s);
    return rc;
}

static void connect_ok(uint16_t port, tp__tls_ctx *t, const char *host, const char *key,
                       tp__stream *s)
{
    tp_errinfo ei;
    tp_err rc = tls_connect(port, t, host, key, s, 5000, &ei);
    if (rc != TP_OK)
        print_error("TLS connect %s: %s\n", host != NULL ? host : "(none)", ei.msg);
    assert_int_equal(rc, TP_OK);
}

/* Writes msg and reads it back from the echo server. */
static void echo(tp__stream *s, const char *msg)
{
    size_t len = strlen(msg), n, got, have = 0;
    char buf[64];
    tp_errinfo ei;
    int64_t deadline = tp_deadline_after(MS(5000));
    assert_int_equal(tp__stream_write_all(s, msg, len, &n, deadline, &ei), TP_OK);
    assert_int_equal(n, len);
    while (have < len) {
        assert_int_equal(tp__stream_read(s, buf + have, sizeof buf - have, &got, deadline, &ei),
                         TP_OK);
        assert_true(got > 0);
        have += got;
    }
    assert_memory_equal(buf, msg, len);
}

static void expect_cert_error(uint16_t port, tp__tls_ctx *t, const char *host, const char *text)
{
    tp__stream s;
    tp_errinfo ei;
    assert_int_equal(tls_connect(port, t, host, NULL, &s, 5000, &ei), TP_ECERT);
    print_message("%s\n", ei.msg);
    assert_int_equal(ei.code, TP_ECERT);
    assert_int_equal(s.fd, -1);
    assert_null(s.ssl);
    if (strstr(ei.msg, text) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", ei.msg, text);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_tls_verify(void **state)
{
    NEED_CERTS();
    tls_server *v = server_start(SRV_ECHO, 0);
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    tp__stream s;
    connect_ok(v->port, t, "localhost", NULL, &s);
    assert_false(s.resumed);
    echo(&s, "by name");
    tp__stream_close(&s);
    connect_ok(v->port, t, "127.0.0.1", NULL, &s); /* the IP SAN */
    echo(&s, "by address");
    tp__stream_close(&s);
    assert_int_equal(tp__tls_ctx_resumed(t), 0);
    tp__tls_ctx_destroy(t);
    assert_int_equal(server_stop(v).handshakes, 2);
}

static void test_tls_verify_failures(void **state)
{
    NEED_CERTS();
    tls_server *v = server_start(SRV_ECHO, 0);
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    expect_cert_error(v->port, t, "wrong.example", "hostname mismatch");
    tp__stream s;
    tp_errinfo ei;
    assert_int_equal(tls_connect(v->port, t, "wrong.example", NULL, &s, 5000, &ei), TP_ECERT);
    assert_int_equal(ei.backend_code, X509_V_ERR_HOSTNAME_MISMATCH);
    assert_non_null(strstr(ei.msg, "wrong.example"));
    expect_cert_error(v->port, t, "127.0.0.2", "IP address mismatch");
    tp__tls_ctx_destroy(t);
    /* A CA that did not sign the server's certificate, and the system's CAs. */
    t = client_ctx("other.pem", false);
    expect_cert_error(v->port, t, "localhost", "certificate verification failed");
    tp__tls_ctx_destroy(t);
    t = client_ctx(NULL, false);
    expect_cert_error(v->port, t, "localhost", "certificate verification failed");
    tp__tls_ctx_destroy(t);
    assert_int_equal(server_stop(v).handshakes, 0);
}

static void test_tls_insecure(void **state)
{
    NEED_CERTS();
    tls_server *v = server_start(SRV_ECHO, 0);
    tp__tls_ctx *t = client_ctx("other.pem", true);
    tp__stream s;
    connect_ok(v->port, t, "wrong.example", NULL, &s);
    echo(&s, "insecure");
    tp__stream_close(&s);
    connect_ok(v->port, t, NULL, NULL, &s);
    echo(&s, "no name");
    tp__stream_close(&s);
    tp__tls_ctx_destroy(t);
    server_stop(v);
}

static void check_resumption(int version, bool idle_check_reads_ticket)
{
    tls_server *v = server_start(SRV_ECHO, version);
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    tp__stream s;
    connect_ok(v->port, t, "localhost", "https://localhost", &s);
    assert_int_equal(SSL_version(s.ssl), version);
    assert_false(s.resumed);
    if (idle_check_reads_ticket) {
        /* TLS 1.3 tickets follow the handshake: an idle check must not take them for
         * data, and stores them. */
        tu_sleep_ms(100);
        assert_true(tp__stream_idle_ok(&s));
        assert_true(tp__stream_idle_ok(&s));
    } else {
        echo(&s, "first");
    }
    tp__stream_close(&s);
    connect_ok(v->port, t, "localhost", "https://localhost", &s);
    assert_true(s.resumed);
    echo(&s, "resumed");
    tp__stream_close_reset(&s); /* an RST close keeps the session resumable */
    connect_ok(v->port, t, "localhost", "https://localhost", &s);
    assert_true(s.resumed);
    echo(&s, "again");
    tp__stream_close(&s);
    assert_int_equal(tp__tls_ctx_resumed(t), 2);
    /* Another key never gets this key's session. */
    connect_ok(v->port, t, "localhost", "https://other", &s);
    assert_false(s.resumed);
    tp__stream_close(&s);
    tp__tls_ctx_destroy(t);
    assert_int_equal(server_stop(v).reused, 2);
}

static void test_tls_resume_12(void **state)
{
    NEED_CERTS();
    check_resumption(TLS1_2_VERSION, false);
}

static void test_tls_resume_13(void **state)
{
    NEED_CERTS();
    check_resumption(TLS1_3_VERSION, false);
    check_resumption(TLS1_3_VERSION, true);
}

/* A TCP peer of ours (blocking) and our stream to it, for servers that misbehave. */
static void raw_pair(tp__stream *s, int *peer)
{
    uint16_t port = 0;
    int lfd = listen_v4(&port);
    int fd;
    tp_errinfo ei;
    assert_int_equal(
        tp__tcp_connect("127.0.0.1", port, tp_deadline_after(MS(2000)), &fd, NULL, NULL, &ei),
        TP_OK);
    *peer = accept(lfd, NULL, NULL);
    assert_true(*peer >= 0);
    close(lfd);
    tp__stream_init(s, fd);
}

static void test_tls_peer_not_tls(void **state)
{
    NEED_CERTS();
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    /* https:// to a plain HTTP port: an HTTP answer is no TLS record. */
    tp__stream s;
    int peer;
    raw_pair(&s, &peer);
    const char *resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(send(peer, resp, strlen(resp), 0), (ssize_t)strlen(resp));
    tp_errinfo ei;
    assert_int_equal(tp__tls_start(&s, t, "localhost", "k", &ei), TP_OK);
    assert_int_equal(tp__tls_handshake(&s, tp_deadline_after(MS(2000)), &ei), TP_ETLS);
    print_message("%s\n", ei.msg);
    assert_non_null(strstr(ei.msg, "TLS handshake with localhost: "));
    tp__stream_close(&s);
    close(peer);
    /* A peer that closes before answering the ClientHello. */
    raw_pair(&s, &peer);
    close(peer);
    assert_int_equal(tp__tls_start(&s, t, "localhost", NULL, &ei), TP_OK);
    assert_int_equal(tp__tls_handshake(&s, tp_deadline_after(MS(2000)), &ei), TP_ECONNRESET);
    print_message("%s\n", ei.msg);
    tp__stream_close(&s);
    tp__tls_ctx_destroy(t);
}

static void test_tls_handshake_timeout(void **state)
{
    NEED_CERTS();
    uint16_t port = 0;
    int lfd = listen_v4(&port); /* completes TCP handshakes, never speaks TLS */
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    tp__stream s;
    tp_errinfo ei;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tls_connect(port, t, "localhost", NULL, &s, 300, &ei), TP_ETIMEDOUT);
    double ms = tu_ms_since(t0);
    print_message("%s (%.1f ms)\n", ei.msg, ms);
    assert_non_null(strstr(ei.msg, "TLS handshake"));
    if (ms < 299.0 || ms > 800.0)
        fail_msg("handshake timed out after %.1f ms, expected ~300", ms);
    tp__tls_ctx_destroy(t);
    close(lfd);
}

static void test_tls_close_notify(void **state)
{
    NEED_CERTS();
    tls_server *v = server_start(SRV_CLOSE_NOTIFY, 0);
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    tp__stream s;
    connect_ok(v->port, t, "localhost", "k", &s);
    tu_sleep_ms(50); /* let the TLS 1.3 tickets arrive: they do not make it stale */
    assert_true(tp__stream_idle_ok(&s));
    atomic_store(&v->go, true);
    bool dead;
    TU_WAIT_UNTIL(dead, !tp__stream_idle_ok(&s), 2000);
    assert_true(dead);
    char buf[8];
    size_t got = 99;
    tp_errinfo ei;
    assert_int_equal(tp__stream_read(&s, buf, sizeof buf, &got, tp_deadline_after(MS(2000)), &ei),
                     TP_OK);
    assert_int_equal(got, 0);
    tp__stream_close(&s);
    tp__tls_ctx_destroy(t);
    server_stop(v);
}

static void test_tls_unclean_eof_and_sigpipe(void **state)
{
    NEED_CERTS();
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL; /* a SIGPIPE would kill the test: it must not happen */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, &old);
    tls_server *v = server_start(SRV_DROP, 0);
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    tp__stream s;
    connect_ok(v->port, t, "localhost", NULL, &s);
    atomic_store(&v->go, true);
    char buf[8];
    size_t got = 99, n;
    tp_errinfo ei;
    assert_int_equal(tp__stream_read(&s, buf, sizeof buf, &got, tp_deadline_after(MS(2000)), &ei),
                     TP_OK);
    assert_int_equal(got, 0); /* EOF without close_notify */
    tp_err rc = TP_OK;
    for (int i = 0; i < 200 && rc == TP_OK; i++) {
        rc = tp__stream_write_all(&s, "ping", 4, &n, tp_deadline_after(MS(2000)), &ei);
        if (rc == TP_OK)
            tu_sleep_ms(5);
    }
    assert_int_equal(rc, TP_ECONNRESET);
    tp__stream_close(&s);
    tp__tls_ctx_destroy(t);
    server_stop(v);
    sigaction(SIGPIPE, &old, NULL);
}

static void test_tls_large_write_and_timeout(void **state)
{
    NEED_CERTS();
    tls_server *v = server_start(SRV_SINK, 0);
    tp__tls_ctx *t = client_ctx("ca.pem", false);
    tp__stream s;
    connect_ok(v->port, t, "localhost", NULL, &s);
    size_t len = 4u << 20, n;
    char *data = calloc(1, len);
    assert_non_null(data);
    tp_errinfo ei;
    assert_int_equal(tp__stream_write_all(&s, data, len, &n, tp_deadline_after(MS(20000)), &ei),
                     TP_OK);
    assert_int_equal(n, len);
    bool all;
    TU_WAIT_UNTIL(all, atomic_load(&v->bytes) == len, 5000);
    assert_true(all);
    /* Nothing comes back from a sink: the read deadline fires. */
    size_t got;
    int64_t t0 = tu_now_ns();
    assert_int_equal(tp__stream_read(&s, data, 16, &got, tp_deadline_after(MS(150)), &ei),
                     TP_ETIMEDOUT);
    assert_true(tu_ms_since(t0) >= 149.0);
    tp__stream_close(&s);
    free(data);
    tp__tls_ctx_destroy(t);
    server_stop(v);
}

static void test_tls_bad_arguments(void **state)
{
    NEED_CERTS();
    tp__tls_options o = {.ca_file = "/nonexistent/ca.pem"};
    tp__tls_ctx *t = (tp__tls_ctx *)&o;
    tp_errinfo ei;
    assert_int_equal(tp__tls_ctx_create(&o, &t, &ei), TP_ETLS);
    assert_null(t);
    assert_non_null(strstr(ei.msg, "/nonexistent/ca.pem"));
    tp__tls_ctx_destroy(NULL);
    t = client_ctx("ca.pem", false);
    tp__stream s;
    tp__stream_init(&s, -1);
    assert_int_equal(tp__tls_start(&s, t, "localhost", NULL, &ei), TP_EINVAL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    tp__stream_init(&s, fd);
    assert_int_equal(tp__tls_start(&s, t, NULL, NULL, &ei), TP_EINVAL); /* verify needs a name */
    tp__stream_close(&s);
    tp__tls_ctx_destroy(t);
}

#else /* built without OpenSSL: the stubs fail cleanly */

static void test_tls_without_openssl(void **state)
{
    tp__tls_ctx *t = NULL;
    tp_errinfo ei;
    assert_int_equal(tp__tls_ctx_create(NULL, &t, &ei), TP_ETLS);
    assert_null(t);
    assert_non_null(strstr(ei.msg, "built without OpenSSL"));
    tp__stream s;
    tp__stream_init(&s, -1);
    assert_int_equal(tp__tls_start(&s, NULL, "localhost", NULL, &ei), TP_ETLS);
}

#endif

int main(void)
{
    tu_watchdog(180);
#ifdef TIDEPOOL_HAVE_OPENSSL
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_verify),
        cmocka_unit_test(test_tls_verify_failures),
        cmocka_unit_test(test_tls_insecure),
        cmocka_unit_test(test_tls_resume_12),
        cmocka_unit_test(test_tls_resume_13),
        cmocka_unit_test(test_tls_peer_not_tls),
        cmocka_unit_test(test_tls_handshake_timeout),
        cmocka_unit_test(test_tls_close_notify),
        cmocka_unit_test(test_tls_unclean_eof_and_sigpipe),
        cmocka_unit_test(test_tls_large_write_and_timeout),
        cmocka_unit_test(test_tls_bad_arguments),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_without_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
