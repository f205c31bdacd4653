/* verify.h: proof that the app took its new configuration (a rule's verify:): the URL read
 * once just before the action, then polled after it until its answer differs from that first
 * read and matches (status, body), or the timeout passes. */
#ifndef SIGRELOAD_VERIFY_H
#define SIGRELOAD_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "fetch.h"
#include "rules.h"

typedef struct Verification Verification;

typedef enum {
	VERIFY_READING, /* the first read is in flight */
	VERIFY_READ, /* the first read answered (or failed): the action may go */
	VERIFY_POLLING,
	VERIFY_OK,
	VERIFY_FAILED,
} VerifyState;

/* Starts the first read at once. v is borrowed: verification_rebind when the rule is reloaded
 * with the same verify. */
int verification_new(const Verify *v, Fetcher *f, Verification **out);
void verification_free(Verification *x); /* cancels its request, without callback */
void verification_rebind(Verification *x, const Verify *v);

/* The action is done: poll from now until the answer proves it, for at most the timeout. */
void verification_poll(Verification *x, uint64_t now);

/* Starts the next poll when due; says where it stands. */
VerifyState verification_run(Verification *x, uint64_t now);

/* When verification_run has something to do (an answer came, a poll is due, the deadline); 0
 * once it is over or waiting for verification_poll. */
uint64_t verification_due(const Verification *x);

const char *verification_url(const Verification *x);

/* The last answer, for a failure's message: "status 200, body does not match". */
const char *verification_why(const Verification *x);

#endif
