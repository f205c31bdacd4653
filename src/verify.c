/* verify.c: a rule's verify: one read before the action, polls after it. */
#include "verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "timer.h"

/* How often the URL is read again after the action, until it proves the reload. */
#define POLL_NS (500 * NSEC_PER_MSEC)
/* What is kept of an answer: enough for a status page (Prometheus' runtimeinfo is ~1 KiB). */
#define VERIFY_MAX_BODY (64 * 1024)
/* A request's deadline is its own timeout; its callback comes by then, this much later at worst. */
#define MARGIN_NS (1000 * NSEC_PER_MSEC)

struct Verification {
	const Verify *v;
	Fetcher *f;
	Fetch *fetch; /* in flight, or NULL */
	VerifyState state;
	bool first_answered; /* the first read got an answer: later ones must differ from it */
	long first_status;
	unsigned char first_body[DIGEST_LEN];
	uint64_t deadline; /* of the polling */
	uint64_t wake; /* when verification_run has something to do; 0: nothing */
	char why[192];
};

static void on_first(const FetchResult *r, void *userdata)
{
	Verification *x = userdata;

	x->fetch = NULL;
	x->first_answered = r->status != 0;
	x->first_status = r->status;
	digest_buf(r->body ? r->body : "", r->body_len, x->first_body);
	x->state = VERIFY_READ;
	x->wake = timer_now();
}

/* Whether an answer proves the reload: it differs from the first read, and it matches. */
static bool proves(Verification *x, const FetchResult *r)
{
	const Verify *v = x->v;
	unsigned char body[DIGEST_LEN];

	if (r->status == 0) {
		snprintf(x->why, sizeof(x->why), "no answer: %s", r->error ? r->error : "error");
		return false;
	}
	digest_buf(r->body ? r->body : "", r->body_len, body);
	if (x->first_answered && r->status == x->first_status &&
	    memcmp(body, x->first_body, DIGEST_LEN) == 0) {
		snprintf(x->why, sizeof(x->why), "status %ld, the same answer as before the reload",
			 r->status);
		return false;
	}
	if (!fetch_status_expected(&v->req, r->status)) {
		snprintf(x->why, sizeof(x->why), "status %ld, not the one expected", r->status);
		return false;
	}
	if (v->expect_body && regexec(&v->body_re, r->body ? r->body : "", 0, NULL, 0) != 0) {
		snprintf(x->why, sizeof(x->why), "status %ld, the body does not match expect_body",
			 r->status);
		return false;
	}
	return true;
}

static void on_poll(const FetchResult *r, void *userdata)
{
	Verification *x = userdata;

	x->fetch = NULL;
	if (proves(x, r)) {
		x->state = VERIFY_OK;
		x->wake = timer_now();
		return;
	}
	uint64_t next = timer_now() + POLL_NS;
	x->wake = next < x->deadline ? next : x->deadline;
}

/* One GET of the URL, for at most timeout_ms; the answer goes to done. */
static void request(Verification *x, uint64_t now, uint64_t timeout_ms, FetchDone done)
{
	HttpRequest req = x->v->req;

	req.timeout_ms = timeout_ms ? timeout_ms : 1;
	if (fetch_start(x->f, &req, VERIFY_MAX_BODY, done, x, &x->fetch) < 0) {
		x->fetch = NULL; /* no memory: as if no answer came, at the next look */
		snprintf(x->why, sizeof(x->why), "cannot start a request: out of memory");
		x->wake = now + POLL_NS;
		return;
	}
	x->wake = now + req.timeout_ms * NSEC_PER_MSEC + MARGIN_NS;
}

int verification_new(const Verify *v, Fetcher *f, Verification **out)
{
	Verification *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	*x = (Verification){ .v = v, .f = f, .state = VERIFY_READING };
	snprintf(x->why, sizeof(x->why), "no answer yet");
	request(x, timer_now(), v->req.timeout_ms, on_first);
	if (!x->fetch)
		x->state = VERIFY_READ; /* no first read: any proving answer will do */
	*out = x;
	return 0;
}

void verification_free(Verification *x)
{
	if (!x)
		return;
	if (x->fetch)
		fetch_cancel(x->fetch);
	free(x);
}

void verification_rebind(Verification *x, const Verify *v)
{
	x->v = v;
}

void verification_poll(Verification *x, uint64_t now)
{
	x->state = VERIFY_POLLING;
	x->deadline = now + x->v->req.timeout_ms * NSEC_PER_MSEC;
	x->wake = now;
}

VerifyState verification_run(Verification *x, uint64_t now)
{
	if (x->state == VERIFY_READ || x->state == VERIFY_OK || x->state == VERIFY_FAILED)
		x->wake = 0; /* seen: nothing more to do until verification_poll */
	if (x->state != VERIFY_POLLING || x->fetch || now < x->wake)
		return x->state;
	if (now >= x->deadline) {
		x->state = VERIFY_FAILED;
		x->wake = 0;
		return x->state;
	}
	request(x, now, (x->deadline - now) / NSEC_PER_MSEC, on_poll);
	return x->state;
}

uint64_t verification_due(const Verification *x)
{
	return x->wake;
}

const char *verification_url(const Verification *x)
{
	return x->v->req.url;
}

const char *verification_why(const Verification *x)
{
	return x->why;
}
