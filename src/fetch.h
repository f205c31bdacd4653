/* fetch.h: asynchronous HTTP requests (libcurl's multi interface) driven by sigreload's loop:
 * no thread, no blocking call. */
#ifndef SIGRELOAD_FETCH_H
#define SIGRELOAD_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "rules.h"

#define FETCH_MAX_SECRET_BYTES 16384 /* a bearer token or password file */
#define FETCH_MAX_BODY	       (1024 * 1024) /* the most max_body may ask to keep */

typedef struct Fetcher Fetcher; /* one per loop: libcurl's multi handle and its sockets */
typedef struct Fetch Fetch; /* one request in flight */

/* How one attempt ended. Valid during the FetchDone call only. */
typedef struct FetchResult {
	long status; /* the HTTP status, 0 when no answer came */
	int err; /* 0 when an answer came, else why not (below) */
	const char *error; /* what went wrong, for a log line (credentials redacted), or NULL */
	const char *body; /* the answer's first max_body bytes, NUL-terminated */
	size_t body_len;
	bool truncated; /* more came than max_body: reading stopped there */
	double seconds; /* from fetch_start to the end */
} FetchResult;

/* err, when no answer came: -ETIMEDOUT (timeout_ms passed), -ECONNREFUSED (or another connect
 * errno), -EHOSTUNREACH (the name could not be resolved, or not without a thread: see
 * fetch_resolver), -EPROTO (TLS: handshake, certificate, verification; or not HTTP),
 * -ECONNRESET (the connection broke), -ENOENT, -EACCES, ... (a token or password file could
 * not be read), -EMSGSIZE (such a file is over FETCH_MAX_SECRET_BYTES), -EBADMSG (it holds a
 * byte a header cannot carry), -EINVAL (the request cannot be made: URL, TLS files),
 * -ENOMEM, -EIO (anything else). */
typedef void (*FetchDone)(const FetchResult *r, void *userdata);

/* Initialises libcurl on first use; call before the sandbox is applied. */
int fetcher_new(Loop *loop, Fetcher **out);
/* Cancels every request without calling back. Not from inside a FetchDone. */
void fetcher_free(Fetcher *f);

/* Starts one attempt of req (retries are the caller's): its method, headers, timeout_ms, basic
 * auth, bearer token (the files read now, at every attempt), TLS. req is read during the call
 * only. done is called exactly once, later, from fetcher_dispatch or fetcher_run_due, never
 * from inside fetch_start or fetch_cancel; a failure found here (a token file missing) is
 * delivered that way too. max_body: bytes of the answer to keep (at most FETCH_MAX_BODY).
 * Returns 0 and *out (valid until done is called or it is cancelled), -ENOMEM, or -EINVAL for
 * a request that cannot be: no url, timeout_ms 0, max_body too large. */
int fetch_start(Fetcher *f, const HttpRequest *req, size_t max_body, FetchDone done, void *userdata,
		Fetch **out);

/* Abandons a request: done is not called. Not for one whose done is running. */
void fetch_cancel(Fetch *x);

/* The loop's dispatch for a SOURCE_FETCH source. May call back. */
void fetcher_dispatch(Fetcher *f, Source *src, uint32_t events);

/* When fetcher_run_due must run (CLOCK_MONOTONIC ns, possibly already past), 0 for never. Read it
 * after every dispatch, fetch_start and fetch_cancel: arm the loop's timer with it. */
uint64_t fetcher_deadline(const Fetcher *f);

/* Runs libcurl's timeouts and delivers what is due. May call back. */
void fetcher_run_due(Fetcher *f);

/* Whether status answers req as its expect_status says (none: any 2xx). */
bool fetch_status_expected(const HttpRequest *req, long status);

/* How this build resolves host names: "c-ares" (asynchronously, any name), or "hosts-file"
 * (libcurl would resolve in a thread: IP addresses, localhost and the names of /etc/hosts only;
 * any other name fails with -EHOSTUNREACH). */
const char *fetch_resolver(void);

#endif
