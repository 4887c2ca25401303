/* tests/support/chaos_cli.h: running `tidepool chaos run` from a test: the CLI named by
 * $TIDEPOOL_CLI (set by tests/CMakeLists.txt for the tests that use it) on every
 * scenario of a directory of the source tree, against a URL. */
#ifndef TP_TEST_CHAOS_CLI_H
#define TP_TEST_CHAOS_CLI_H

#include <stddef.h>

/* chaos_cli_path: $TIDEPOOL_CLI when it names an executable, else NULL. */
const char *chaos_cli_path(void);

/* The options of a run beside the scenario: NULL leaves each out. */
typedef struct chaos_cli_opts {
    const char *url;        /* --url */
    const char *client;     /* --client blocking|engine */
    const char *server_log; /* --server-log */
    const char *restart_cmd; /* --restart-cmd */
} chaos_cli_opts;

/* chaos_cli_run: `CLI chaos run scenario [options] --json`: its exit status (128: killed),
 * its output in out (NUL-terminated, truncated to cap). */
int chaos_cli_run(const char *cli, const char *scenario, const chaos_cli_opts *o, char *out,
                  size_t cap);

/* chaos_cli_run_dir: every *.json of TIDEPOOL_SOURCE_DIR/subdir with options o, each
 * printed; returns how many ran, *failed how many did not exit 0 with every verdict
 * passing. */
int chaos_cli_run_dir(const char *cli, const char *subdir, const chaos_cli_opts *o,
                      int *failed);

#endif
