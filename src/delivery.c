/* delivery.c: one reload in flight: the first verify read, then the action (pin, wait out
 * start_grace and handler_wait, signal; or request, retry), then verify_after and the polls. */
#include "delivery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "cleanup.h"
#include "log.h"
#include "notify.h"
#include "proc.h"
#include "signame.h"
#include "timer.h"
#include "verify.h"

/* How often a target without a handler is looked at again, within handler_wait. */
#define HANDLER_RETRY_NS (100 * NSEC_PER_MSEC)
/* Backoff between the attempts of a request: from 1 s, doubling, at most 30 s. */
#define BACKOFF_FIRST_NS (1000 * NSEC_PER_MSEC)
#define BACKOFF_MAX_NS	 (30000 * NSEC_PER_MSEC)
/* A request's answer comes by its timeout; its callback this much later at worst. */
#define REQUEST_MARGIN_NS (1000 * NSEC_PER_MSEC)
/* What is kept of an action's answer: its first bytes, for nothing but the log. */
#define ACTION_MAX_BODY 256

typedef enum { R_WAITING, R_SENT, R_DONE } RecipientState;

typedef struct Recipient {
	Pinned p;
	RecipientState state;
	uint64_t next_at; /* R_WAITING: when to look at it again */
	uint64_t grace_until; /* not signaled before: it started too recently */
	uint64_t give_up_at; /* handler_wait is over */
} Recipient;

struct Delivery {
	char *rule;
	int signal;
	uint64_t handler_wait_ns, verify_after_ns, start_grace_ns;
	bool dry_run;
	Metrics *metrics;
	unsigned char digest[DIGEST_LEN];
	uint64_t burst_start;
	Recipient *v;
	size_t n, cap;
	uint64_t verify_at; /* 0 until every target is signaled or failed */
	uint64_t due; /* what delivery_run last left to do, 0 when over */
	size_t signaled, failed;
	const char *reason;
	bool sealed, waiting_logged, grace_logged;
	/* an http delivery: the request, its attempts, and how it ended */
	const HttpAction *http;
	Fetcher *fetcher;
	Fetch *fetch; /* the attempt in flight, or NULL */
	unsigned attempts;
	uint64_t http_wake; /* when delivery_run has something to do for the request */
	int http_done; /* 0 under way, 1 answered as expected, -1 failed for good */
	long status;
	/* verify: */
	Verification *verify;
	bool polling;
};

DEFINE_CLEANUP_FUNC(Delivery, delivery_free)

int delivery_new(const DeliverySpec *spec, const unsigned char digest[DIGEST_LEN],
		 uint64_t burst_start, Metrics *m, Delivery **out)
{
	_cleanup_(delivery_freep) Delivery *d = calloc(1, sizeof(*d));

	if (!d || !(d->rule = strdup(spec->rule)))
		return -ENOMEM;
	d->signal = spec->signal;
	d->handler_wait_ns = spec->handler_wait_ms * NSEC_PER_MSEC;
	d->verify_after_ns = spec->verify_after_ms * NSEC_PER_MSEC;
	d->start_grace_ns = spec->start_grace_ms * NSEC_PER_MSEC;
	d->dry_run = spec->dry_run;
	d->metrics = m;
	d->burst_start = burst_start;
	d->http = spec->http;
	d->fetcher = spec->fetcher;
	memcpy(d->digest, digest, DIGEST_LEN);
	/* the first read of the proof, now, before anything is told */
	if (spec->verify && !spec->dry_run &&
	    verification_new(spec->verify, spec->fetcher, &d->verify) < 0)
		return -ENOMEM;
	*out = TAKE_PTR(d);
	return 0;
}

void delivery_free(Delivery *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		notify_unpin(&d->v[i].p);
	if (d->fetch)
		fetch_cancel(d->fetch);
	verification_free(d->verify);
	free(d->v);
	free(d->rule);
	free(d);
}

void delivery_rebind(Delivery *d, const Rule *r)
{
	d->http = r->http;
	if (d->verify && r->verify)
		verification_rebind(d->verify, r->verify);
}

/* A target that will not be told: logged and counted, never dropped in silence. */
static void fail(Delivery *d, Recipient *r, SignalError reason, const char *why)
{
	char sig[SIGNAME_MAX];

	d->failed++;
	if (!d->reason)
		d->reason = metrics_reason_name(reason);
	metrics_signal_error(d->metrics, d->rule, reason);
	log_error("signal failed", LF_STR("rule", d->rule), LF_INT("pid", r->p.pid),
		  LF_STR("signal", signame_format(d->signal, sig)),
		  LF_STR("reason", metrics_reason_name(reason)), LF_STR("err", why));
	notify_unpin(&r->p);
	r->state = R_DONE;
}

void delivery_add(Delivery *d, pid_t pid, unsigned long long starttime)
{
	uint64_t now = timer_now();
	Pinned p;

	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].p.pid == pid && d->v[i].p.starttime == starttime)
			return;
	if (ARRAY_RESERVE(d->v, d->cap, d->n) < 0) {
		Recipient lost = { .p = { .pid = pid, .pidfd = -1 } };
		fail(d, &lost, REASON_OTHER, "out of memory");
		return;
	}
	int r = notify_pin(pid, starttime, &p);
	if (r == -ESRCH)
		return; /* gone since the scan: nothing left to reload */
	Recipient *rc = &d->v[d->n++];
	*rc = (Recipient){ .p = { .pid = pid, .starttime = starttime, .pidfd = -1 } };
	if (r < 0) {
		fail(d, rc, REASON_OTHER, strerror(-r)); /* kept, so that it fails only once */
		return;
	}
	/* A process only just started may not have read its configuration, or set up the
	 * handler it shows (Go's runtime catches SIGHUP from its first instruction, but exits on
	 * it until the program calls signal.Notify): it is signaled once it is old enough. */
	uint64_t age = proc_age_ns(starttime);
	uint64_t grace_until = age < d->start_grace_ns ? now + (d->start_grace_ns - age) : 0;
	*rc = (Recipient){ .p = p,
			   .state = R_WAITING,
			   .next_at = grace_until,
			   .grace_until = grace_until,
			   .give_up_at = (grace_until ? grace_until : now) + d->handler_wait_ns };
}

void delivery_seal(Delivery *d)
{
	d->sealed = true;
}

static void send_one(Delivery *d, Recipient *r, uint64_t now)
{
	char sig[SIGNAME_MAX], digest[DIGEST_HEX_LEN], delay[32], why[256];
	int res = d->dry_run ? 0 : notify_send(&r->p, d->signal);

	if (res == -EPERM) {
		notify_explain_eperm(r->p.pid, why, sizeof(why));
		fail(d, r, REASON_EPERM, why);
	} else if (res == -ESRCH) {
		fail(d, r, REASON_ESRCH, "the process exited before the signal");
	} else if (res < 0) {
		fail(d, r, REASON_OTHER, strerror(-res));
	}
	if (res < 0)
		return;
	snprintf(delay, sizeof(delay), "%.3f",
		 d->burst_start ? (double)(now - d->burst_start) / 1e6 : 0.0);
	log_info(d->dry_run ? "would signal (dry run)" : "signaled", LF_STR("rule", d->rule),
		 LF_STR("signal", signame_format(d->signal, sig)), LF_INT("pid", r->p.pid),
		 LF_STR("sha256", digest_hex(d->digest, digest)), LF_STR("since_event_ms", delay));
	d->signaled++;
	if (d->dry_run) {
		notify_unpin(&r->p);
		r->state = R_DONE;
		return;
	}
	metrics_signal_sent(d->metrics, d->rule, d->signal);
	r->state = R_SENT; /* pinned until verified */
}

/* Looks at one waiting target whose time has come: sends, fails it, or says when to look again. */
static void try_one(Delivery *d, Recipient *r, uint64_t now)
{
	char sig[SIGNAME_MAX], why[160];

	switch (notify_ready(&r->p, d->signal)) {
	case NOTIFY_READY:
		send_one(d, r, now);
		return;
	case NOTIFY_IGNORED:
		snprintf(why, sizeof(why),
			 "it ignores %s (SIG_IGN, as under nohup): the signal would do nothing",
			 signame_format(d->signal, sig));
		fail(d, r, REASON_IGNORED, why);
		return;
	case NOTIFY_NOT_YET:
		if (!d->handler_wait_ns) {
			send_one(d, r, now); /* handler_wait 0: the user asked for no wait */
			return;
		}
		if (now < r->give_up_at) {
			uint64_t retry = now + HANDLER_RETRY_NS;
			r->next_at = retry < r->give_up_at ? retry : r->give_up_at;
			return;
		}
		snprintf(why, sizeof(why),
			 "no handler for %s after %llums: not signaled, its default action would "
			 "end it",
			 signame_format(d->signal, sig),
			 (unsigned long long)(d->handler_wait_ns / NSEC_PER_MSEC));
		fail(d, r, REASON_NO_HANDLER, why);
		return;
	case -ESRCH:
		fail(d, r, REASON_ESRCH, "the process exited before the signal");
		return;
	default:
		fail(d, r, REASON_OTHER, "cannot read /proc");
		return;
	}
}

/* Says once why the delivery waits, for the targets that make it wait. */
static void say_waiting(Delivery *d, size_t young, size_t handlerless)
{
	char sig[SIGNAME_MAX];

	if (young && !d->grace_logged)
		log_info("waiting for start_grace", LF_STR("rule", d->rule),
			 LF_UINT("targets", young),
			 LF_UINT("start_grace_ms", d->start_grace_ns / NSEC_PER_MSEC));
	d->grace_logged |= young > 0;
	if (handlerless && !d->waiting_logged)
		log_info("waiting for a signal handler", LF_STR("rule", d->rule),
			 LF_UINT("targets", handlerless),
			 LF_STR("signal", signame_format(d->signal, sig)));
	d->waiting_logged |= handlerless > 0;
}

static void verify_sent(Delivery *d)
{
	for (size_t i = 0; i < d->n; i++) {
		Recipient *r = &d->v[i];
		if (r->state != R_SENT)
			continue;
		if (!notify_alive(&r->p))
			fail(d, r, REASON_TARGET_EXITED, "the process exited after the signal");
		notify_unpin(&r->p);
		r->state = R_DONE;
	}
}

/* ---- an HTTP request instead of signals ------------------------------------------------ */

static void on_answer(const FetchResult *r, void *userdata)
{
	Delivery *d = userdata;
	const HttpRequest *req = &d->http->req;
	char took[32];
	bool ok = r->status != 0 && fetch_status_expected(req, r->status);

	d->fetch = NULL;
	d->status = r->status;
	metrics_http_request(d->metrics, d->rule, r->status, r->seconds);
	snprintf(took, sizeof(took), "%.3f", r->seconds);
	uint64_t now = timer_now();
	if (ok) {
		log_info("requested", LF_STR("rule", d->rule), LF_STR("url", req->url),
			 LF_INT("status", r->status), LF_UINT("attempt", d->attempts),
			 LF_STR("seconds", took));
		d->http_done = 1;
		d->http_wake = now;
		return;
	}
	bool again = d->attempts <= d->http->retries;
	uint64_t backoff = BACKOFF_FIRST_NS << (d->attempts - 1 < 5 ? d->attempts - 1 : 5);
	char next[48] = "none: the next change or resync tries again";
	if (again)
		snprintf(
		    next, sizeof(next), "attempt %u in %llus", d->attempts + 1,
		    (unsigned long long)((backoff < BACKOFF_MAX_NS ? backoff : BACKOFF_MAX_NS) /
					 NSEC_PER_SEC));
	log_warn("request failed", LF_STR("rule", d->rule), LF_STR("url", req->url),
		 LF_INT("status", r->status),
		 LF_STR("err", r->status  ? "an unexpected status"
			       : r->error ? r->error
					  : "error"),
		 LF_UINT("attempt", d->attempts), LF_STR("next", next));
	if (again) {
		d->http_wake = now + (backoff < BACKOFF_MAX_NS ? backoff : BACKOFF_MAX_NS);
		return;
	}
	d->failed++;
	d->reason = r->status ? "status" : "error";
	d->http_done = -1;
	d->http_wake = now;
}

/* Makes the request's next attempt when due: true once it is over, one way or the other. */
static bool request(Delivery *d, uint64_t now)
{
	const HttpRequest *req = &d->http->req;

	if (d->http_done) {
		d->http_wake = 0; /* seen */
		return true;
	}
	if (d->fetch || now < d->http_wake)
		return false;
	d->attempts++;
	if (d->dry_run) {
		log_info("would request (dry run)", LF_STR("rule", d->rule),
			 LF_STR("url", req->url));
		d->http_done = 1;
		d->http_wake = 0;
		return true;
	}
	if (fetch_start(d->fetcher, req, ACTION_MAX_BODY, on_answer, d, &d->fetch) < 0) {
		d->fetch = NULL;
		d->failed++;
		d->reason = "error";
		d->http_done = -1;
		d->http_wake = 0;
		return true;
	}
	d->http_wake = now + req->timeout_ms * NSEC_PER_MSEC + REQUEST_MARGIN_NS;
	return false;
}

/* ---- the delivery's course --------------------------------------------------------------- */

static void finish(Delivery *d, DeliveryOutcome *out)
{
	d->due = 0;
	*out = (DeliveryOutcome){ .signaled = d->signaled,
				  .failed = d->failed,
				  .reason = d->reason,
				  .status = d->status };
}

/* The signals' part: true once every target is signaled or failed, and no more can come. */
static bool signal_all(Delivery *d, uint64_t now)
{
	size_t young = 0, handlerless = 0;
	uint64_t next = 0;

	for (size_t i = 0; i < d->n; i++) {
		Recipient *r = &d->v[i];
		if (r->state == R_WAITING && r->next_at <= now)
			try_one(d, r, now);
		if (r->state != R_WAITING)
			continue;
		if (r->grace_until > now)
			young++;
		else
			handlerless++;
		if (!next || r->next_at < next)
			next = r->next_at;
	}
	if (next) {
		say_waiting(d, young, handlerless);
		d->due = next;
		return false;
	}
	d->due = 0; /* unsealed: more targets come in this turn of the loop */
	return d->sealed;
}

/* After the action: the polls of verify (once it was told), and verify_after. */
static bool verify_all(Delivery *d, uint64_t now)
{
	bool told = d->http ? d->http_done == 1 : d->signaled > 0;
	size_t sent = 0;

	if (d->verify && told) {
		if (!d->polling) {
			verification_poll(d->verify, now);
			d->polling = true;
		}
		VerifyState vs = verification_run(d->verify, now);
		if (vs == VERIFY_POLLING)
			return false;
		if (vs == VERIFY_FAILED) {
			log_error("not verified", LF_STR("rule", d->rule),
				  LF_STR("url", verification_url(d->verify)),
				  LF_STR("err", verification_why(d->verify)));
			d->failed++;
			if (!d->reason)
				d->reason = "verify";
		}
		verification_free(d->verify);
		d->verify = NULL;
	}
	for (size_t i = 0; i < d->n; i++)
		sent += d->v[i].state == R_SENT;
	if (sent && d->verify_after_ns) {
		if (!d->verify_at)
			d->verify_at = now + d->verify_after_ns;
		if (now < d->verify_at) {
			d->due = d->verify_at;
			return false;
		}
	}
	verify_sent(d);
	return true;
}

bool delivery_run(Delivery *d, uint64_t now, DeliveryOutcome *out)
{
	if (d->verify && !d->polling && verification_run(d->verify, now) == VERIFY_READING)
		return false; /* the action waits for the first read */
	if (!(d->http ? request(d, now) : signal_all(d, now)))
		return false;
	if (!verify_all(d, now))
		return false;
	finish(d, out);
	return true;
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

uint64_t delivery_due(const Delivery *d)
{
	uint64_t due = earliest(d->due, d->http_wake);

	return d->verify ? earliest(due, verification_due(d->verify)) : due;
}

const unsigned char *delivery_digest(const Delivery *d)
{
	return d->digest;
}

uint64_t delivery_burst_start(const Delivery *d)
{
	return d->burst_start;
}

bool delivery_sent(const Delivery *d)
{
	return d->http ? d->http_done == 1 : d->signaled > 0;
}

bool delivery_requesting(const Delivery *d)
{
	return d->http && d->http_done == 0;
}

void delivery_supersede(Delivery *d, DeliveryOutcome *out)
{
	size_t dropped = 0;

	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].state == R_WAITING) {
			notify_unpin(&d->v[i].p);
			d->v[i].state = R_DONE;
			dropped++;
		}
	if (dropped)
		log_info("superseded", LF_STR("rule", d->rule), LF_UINT("not_signaled", dropped));
	if (d->fetch) {
		fetch_cancel(d->fetch);
		d->fetch = NULL;
		log_info("superseded", LF_STR("rule", d->rule), LF_STR("request", "cancelled"));
	}
	verification_free(d->verify);
	d->verify = NULL;
	verify_sent(d);
	finish(d, out);
}
