/* tests/support/slow_dns.h: a tiny DNS server on a loopback UDP port, and a private
 * /etc/resolv.conf that points the process's resolver at it, for tests of how name
 * lookups behave when the resolver is slow, says no, or is asked again.
 *
 * The server answers every A query for a name ending in ".test" with 127.0.0.1, after
 * the delay its name asks for ("slow.test": slow_ms; any other name at once), AAAA
 * queries with no address (NOERROR, no answer), and "nx.test" (any type) with NXDOMAIN.
 * It counts the A and NXDOMAIN queries it received per name it knows.
 *
 * The resolver reads /etc/resolv.conf, so the test swaps that file in a mount namespace
 * of its own: slow_dns_enter_namespace() re-executes the test under `unshare -m`
 * (unshare(2) of the mount namespace needs a single-threaded caller, which a
 * sanitizer's runtime may not leave us) and bind-mounts a file naming the server over
 * /etc/resolv.conf. The host's file is never touched. Needs root. */
#ifndef TP_TEST_SLOW_DNS_H
#define TP_TEST_SLOW_DNS_H

#include <stdbool.h>

#define SLOW_DNS_ADDR "127.0.0.153" /* where the server listens, on port 53 */

/* slow_dns_enter_namespace: from main() with its argv, before any thread: re-executes
 * the program in a private mount namespace (returns only there) and swaps
 * /etc/resolv.conf. Returns 0 when the resolver now asks SLOW_DNS_ADDR, or 77 (with the
 * reason on stderr) when this machine cannot (not root, no unshare, no resolv.conf):
 * the caller exits with it, a skip. */
int slow_dns_enter_namespace(char **argv);

/* slow_dns_start: listens on SLOW_DNS_ADDR:53 and answers on a thread of its own until
 * slow_dns_stop(). false (reason on stderr) when the port cannot be bound. */
bool slow_dns_start(int slow_ms);
void slow_dns_stop(void);

/* The A queries answered for name ("slow.test", "fast.test", "nx.test"...) so far. */
int slow_dns_queries(const char *name);

#endif
