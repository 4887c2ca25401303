/* tests/support/metrics_util.h: helpers for the metrics tests: a minimal HTTP/1.1 client
 * on a raw loopback socket, finding programs on PATH, running a program with a file as
 * its stdin and capturing its output, free loopback ports, temporary directories
 * (created and removed recursively), and a reader of the Prometheus text format that
 * looks samples up by their exact series text; and whether the exporter was built.
 *
 * No cmocka assertions here: every function reports failure by its return value, so
 * any thread may call it. */
#ifndef TP_TEST_METRICS_UTIL_H
#define TP_TEST_METRICS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mu_http: sends `METHOD PATH HTTP/1.1` (Host, Connection: close, and body if not NULL)
 * to 127.0.0.1:port and reads the reply to EOF (at most ~4 MiB, timeout_ms in all).
 * Returns the status code, or -1; *head and *body (malloc'd, NUL-terminated, may be
 * NULL) receive the header block and the body. */
int mu_http(int port, const char *method, const char *path, const char *body, int timeout_ms,
            char **head, char **resp_body);

/* mu_header: the value of header name (case-insensitive) in a header block, copied into
 * out (cap bytes); false if absent. */
bool mu_header(const char *head, const char *name, char *out, size_t cap);

/* mu_which: whether prog is an executable in a PATH directory; its path goes to out. */
bool mu_which(const char *prog, char *out, size_t cap);

/* mu_run_stdin: runs argv (argv[0] a path) with stdin from in_path, stdout and stderr
 * into one malloc'd string *output. Returns the exit status (128+signal if killed), -1 if
 * it could not run. */
int mu_run_stdin(char *const argv[], const char *in_path, char **output);

/* mu_free_port: a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0,
 * then closed), or -1. */
int mu_free_port(void);

/* mu_tmpdir: creates a fresh directory under $TMPDIR or /tmp into out (cap bytes).
 * mu_rmtree: removes a directory tree. Both return 0 on success. */
int mu_tmpdir(char *out, size_t cap);
int mu_rmtree(const char *dir);

/* mu_write_file: writes n bytes to path (created or truncated). mu_read_file: a file's
 * content (malloc'd, NUL-terminated) or NULL. */
int mu_write_file(const char *path, const char *data, size_t n);
char *mu_read_file(const char *path);

/* mu_prom_value: the value of the sample whose series text (name and labels exactly as
 * written, e.g. `tidepool_opens_total{pool="a",key="b"}`) is series; false if no line
 * has it. *out gets the value parsed as a double ("+Inf" included). */
bool mu_prom_value(const char *text, const char *series, double *out);

/* mu_count: occurrences of needle in hay. */
size_t mu_count(const char *hay, const char *needle);

/* mu_have_exporter: whether this build has the metrics exporter (libmicrohttpd); if
 * not, prints why, and the test should exit 77 (skipped). */
bool mu_have_exporter(void);

#endif
