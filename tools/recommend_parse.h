/* recommend_parse.h: the text parsing behind `tidepool recommend`, apart from its I/O so
 * that tests can feed it strings: Prometheus exposition sums, loopback URL checks, the
 * Keep-Alive header and the ephemeral port range. All functions are pure and
 * thread-safe. */
#ifndef TP_TOOLS_RECOMMEND_PARSE_H
#define TP_TOOLS_RECOMMEND_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* rp_loopback_url: true when url is http://HOST[:PORT][/PATH] with HOST a loopback
 * address (127.0.0.0/8, [::1]) or "localhost", and no user info. Anything else (other
 * hosts, https, malformed) is false: recommend only talks to this machine. */
bool rp_loopback_url(const char *url);

/* rp_prom_sum: the sum of every sample of the metric called exactly name (not a prefix:
 * "x_total" never matches "x_total_created") in a Prometheus text exposition. With
 * want (a label pair in the form key="value") only samples carrying it count; samples
 * carrying any pair of skip (a NULL-terminated list, or NULL) are left out. *nseries
 * (optional) is the number of non-zero samples summed (series that saw traffic). Returns
 * false when no sample matched. Non-finite values are skipped. */
bool rp_prom_sum(const char *text, const char *name, const char *want, const char *const *skip,
                 double *sum, int *nseries);

/* rp_keepalive_timeout: the timeout=N parameter of a Keep-Alive header value (e.g.
 * "timeout=5, max=1000"), in seconds; false when absent or not a positive number. */
bool rp_keepalive_timeout(const char *value, double *out_s);

/* rp_port_range: "LO-HI" (the --port-range form) or "LO HI" (the form of
 * /proc/sys/net/ipv4/ip_local_port_range, tab separated) with 1 <= LO <= HI <= 65535. */
bool rp_port_range(const char *s, int64_t *lo, int64_t *hi);

/* rp_label_pair: turns NAME=VALUE (the --label form) into NAME="VALUE" in out (cap
 * bytes); false when malformed or too long. */
bool rp_label_pair(const char *arg, char *out, size_t cap);

#endif
