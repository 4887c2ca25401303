/* cli.h: the subcommands of the tidepool CLI (one file each) and shared helpers. */
#ifndef TP_TOOLS_CLI_H
#define TP_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

int cmd_bench(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_chaos(int argc, char **argv);
int cmd_fleet(int argc, char **argv); /* `tidepool fleet status` (cmd_fleet.c) */
int cmd_chaos_run(int argc, char **argv); /* `tidepool chaos run` (cmd_chaos_run.c) */

/* parse_duration_s: "5", "5s", "250ms", "2m" -> seconds; false if malformed. */
bool parse_duration_s(const char *s, double *out);
/* parse_count: a non-negative integer, with an optional k/m suffix; false if malformed. */
bool parse_count(const char *s, int64_t *out);
/* raise_nofile: raises the soft RLIMIT_NOFILE to the hard limit (Go does the same at
 * start) so that high concurrency does not run out of descriptors; returns the limit. */
long raise_nofile(void);

#endif
