/* tests/support/diag_loopback.h: loopback fixtures for the doctor's tests
 * (tests/test_diag*.c): listeners on 127.0.0.1 or ::1 whose port no socket points at
 * yet, blocking connects, and report look-ups by destination. Main thread only: the
 * functions use cmocka assertions. */
#ifndef TP_TEST_DIAG_LOOPBACK_H
#define TP_TEST_DIAG_LOOPBACK_H

#include <stdint.h>

#include <tidepool/diag.h>

/* A listener on family's loopback address (backlog 1024) with a kernel-chosen port that
 * no socket of the host points at yet; *ep receives its address. -1 if the family has
 * no loopback here (IPv6 disabled); asserts for IPv4. An earlier listener may have had
 * the same port number and left TIME_WAIT entries towards it for 60 s: counts and
 * arrival numbers are only exact towards a fresh destination. */
int dl_listen(int family, tp_diag_endpoint *ep);

/* A blocking connection to ep; the client fd, or -1. */
int dl_connect(const tp_diag_endpoint *ep);

/* tp_diag_collect() with the given source and pid (0: all) and prev; asserts TP_OK. */
tp_diag_report *dl_collect(tp_diag_source src, int pid, const tp_diag_report *prev);

/* Sockets in state towards ep (0 if ep is not a destination of r). */
uint32_t dl_state_count(const tp_diag_report *r, const tp_diag_endpoint *ep, int state);

/* The finding of kind about ep, or NULL. */
const tp_diag_finding *dl_find_finding(const tp_diag_report *r, const char *kind,
                                       const tp_diag_endpoint *ep);

#endif
