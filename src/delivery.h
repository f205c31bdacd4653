/* delivery.h: one reload in flight for one rule: its targets pinned by pidfd, each signaled
 * once it is old enough and has a handler, then verified alive; or its URL requested, retried
 * with backoff; and, with verify:, the proof polled for. It owns the pidfds and the requests;
 * moving a rule's state across a rule-file reload is moving the pointer. */
#ifndef SIGRELOAD_DELIVERY_H
#define SIGRELOAD_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "fetch.h"
#include "metrics.h"
#include "rules.h"

typedef struct Delivery Delivery;

/* How a rule tells its targets, copied when the delivery starts: a rule-file reload that changes
 * the rule does not change a delivery already under way. */
typedef struct DeliverySpec {
	const char *rule; /* copied */
	int signal;
	uint64_t handler_wait_ms, verify_after_ms, start_grace_ms;
	bool dry_run;
	/* Borrowed from the rule (delivery_rebind when it is reloaded unchanged). http: the
	 * request to make instead of signals; verify: the proof to wait for, or NULL. */
	const HttpAction *http;
	const Verify *verify;
	Fetcher *fetcher;
} DeliverySpec;

typedef struct DeliveryOutcome {
	size_t signaled, failed;
	const char *reason; /* of the first failure (a metrics reason name), or NULL */
	long status; /* an http delivery's last answer (0: none) */
} DeliveryOutcome;

/* A delivery of digest to no target yet; burst_start is the first event of the burst it answers
 * (0 at start-up), for the log's since_event_ms. Signals are counted in m. */
int delivery_new(const DeliverySpec *spec, const unsigned char digest[DIGEST_LEN],
		 uint64_t burst_start, Metrics *m, Delivery **out);
void delivery_free(Delivery *d);

/* Pins one target (found by a scan, or pinned since the last one). A target that is gone
 * already, or added before, is left out; one that cannot be pinned is a failure, logged: never a
 * target dropped in silence. */
void delivery_add(Delivery *d, pid_t pid, unsigned long long starttime);

/* No target will be added any more: until then, the delivery cannot be over. */
void delivery_seal(Delivery *d);

/* Does what is due by now: waits out start_grace and handler_wait, signals, verifies. Returns
 * true once the delivery is over (sealed, and every target done with), with its outcome in
 * *out. Called after adding targets, then whenever delivery_due comes. */
bool delivery_run(Delivery *d, uint64_t now, DeliveryOutcome *out);

/* When delivery_run has something to do next (CLOCK_MONOTONIC ns); 0 when it is over (or
 * before its first run). */
uint64_t delivery_due(const Delivery *d);

const unsigned char *delivery_digest(const Delivery *d);
/* The first event of the burst it answers (0 at start-up). */
uint64_t delivery_burst_start(const Delivery *d);

/* Whether some target was signaled already, or the request answered (its digest then
 * reached somebody). */
bool delivery_sent(const Delivery *d);

/* Whether it is an HTTP request still under way, which a newer version waits for rather than
 * supersedes (one request per rule at a time). */
bool delivery_requesting(const Delivery *d);

/* The rule was reloaded with the same action: its structs are the new rule's from now on. */
void delivery_rebind(Delivery *d, const Rule *r);

/* A newer version of the files supersedes this one: targets not signaled yet are dropped
 * (logged), those signaled are verified now. The delivery is then over; its outcome is in
 * *out. */
void delivery_supersede(Delivery *d, DeliveryOutcome *out);

#endif
