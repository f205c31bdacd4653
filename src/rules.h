/* rules.h: the rule file (YAML) as an immutable, validated set of rules and settings. */
#ifndef SIGRELOAD_RULES_H
#define SIGRELOAD_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <regex.h>

#include "cleanup.h"
#include "log.h"
#include "match.h"

#define RULES_MAX_FILE_BYTES (1024 * 1024)
#define RULES_MAX_RULES	     256
#define RULES_MAX_PATHS	     64 /* per rule */
#define RULES_MAX_ERRORS     50
#define RULES_NAME_MAX	     63
#define RULES_MAX_HEADERS    32 /* per http: */
#define RULES_MAX_STATUSES   16 /* per expect_status */
#define RULES_MAX_RETRIES    10
#define RULES_URL_MAX	     2048

/* How old a target must be before it is signaled (start_grace): a Go program exits on SIGHUP
 * until it calls signal.Notify, though /proc shows the signal as caught from its start. */
#define RULES_DEFAULT_START_GRACE_MS 2000

#define RULES_DEFAULT_FILE "/etc/sigreload/sigreload.yaml"

typedef struct Settings {
	uint64_t debounce_ms, max_wait_ms, resync_ms, handler_wait_ms, verify_after_ms;
	uint64_t min_interval_ms, start_grace_ms;
	LogFormat log_format;
	LogLevel log_level;
	char *metrics_listen; /* "" disables the HTTP endpoint */
} Settings;

/* An HTTP request sigreload makes: a rule's action (http:), or its verification (verify:). */
typedef struct HttpRequest {
	char *url; /* http:// or https://, its userinfo removed (moved to username, password) */
	char *method; /* POST for an action (default), GET for verify */
	int *expect_status; /* accepted statuses; n_expect_status 0: any 2xx */
	size_t n_expect_status;
	uint64_t timeout_ms; /* per attempt */
	char **headers; /* "Name: value" */
	size_t n_headers;
	char *bearer_token_file; /* read again at every attempt */
	char *username, *password, *password_file; /* basic auth */
	char *ca_file, *cert_file, *key_file, *server_name;
	bool insecure_skip_verify;
} HttpRequest;

typedef struct HttpAction {
	HttpRequest req;
	unsigned retries; /* attempts after a failure; backoff from 1 s, doubling, at most 30 s */
} HttpAction;

/* Read once just before the action, then polled after it until the answer differs from that
 * first read and matches; timeout bounds the polling. */
typedef struct Verify {
	HttpRequest req; /* GET; expect_status; timeout_ms (default 10 s) */
	char *expect_body; /* an ERE as written, or NULL */
	regex_t body_re; /* compiled when expect_body is set */
} Verify;

/* One rule after defaults: every field is set. Plain read-only data once loaded. A rule has
 * exactly one action: match (signal its processes) or http (request a URL). */
typedef struct Rule {
	char *name;
	char **paths; /* absolute, normalised (no "//", no trailing '/') */
	size_t n_paths;
	Matcher *match; /* NULL for an http rule */
	HttpAction *http; /* NULL for a signal rule */
	Verify *verify; /* NULL: none */
	bool leaders_only;
	bool signal_on_start;
	int signal;
	uint64_t debounce_ms, max_wait_ms, handler_wait_ms, verify_after_ms;
	uint64_t min_interval_ms; /* at most one delivery per interval (0: no limit) */
	uint64_t start_grace_ms; /* a target younger than this is signaled once it is this old */
} Rule;

typedef struct Rules {
	char *file;
	unsigned char sha256[32]; /* of the bytes parsed: what a later change is compared with */
	Settings settings;
	Rule *v;
	size_t n;
} Rules;

/* Messages "FILE:LINE:COL: what is wrong and what to do", in file order. */
typedef struct RulesErrors {
	char **v;
	size_t n;
	bool truncated; /* the last line says the parser stopped at RULES_MAX_ERRORS */
	/* The SHA-256 of the bytes parsed, valid or not (read: whether any were): what a live
	 * reload compares the file with later, never the file as it is after the parse. */
	bool read;
	unsigned char sha256[32];
} RulesErrors;

/* Reads and validates file. Returns 0 and *out, or -EINVAL with every problem in errs (the file
 * is never half-applied), or another -errno if it cannot be read (also described in errs). */
int rules_load(const char *file, Rules **out, RulesErrors *errs);

/* The same for a document in memory; file only names it in messages. */
int rules_parse(const char *file, const char *buf, size_t len, Rules **out, RulesErrors *errs);

void rules_free(Rules *rules);
DEFINE_CLEANUP_FUNC(Rules, rules_free)
void rules_errors_done(RulesErrors *errs);

const Rule *rules_find(const Rules *rules, const char *name);

/* True when both rules watch the same paths (in the same order). */
bool rules_same_paths(const Rule *a, const Rule *b);

/* True when both rules watch the same paths, in any order (their digests are the same). */
bool rules_same_path_set(const Rule *a, const Rule *b);

/* True when both rules tell the same targets the same way: the same match (or http action),
 * leaders_only, signal and verify. A rule-file reload that changes these hands the rule's
 * state on as "targets not known to hold the current content". */
bool rules_same_action(const Rule *a, const Rule *b);

/* The request's URL as a person may see it: the user name it had put back, its password (if
 * any) written as "xxxxx". Malloc'd, or NULL (out of memory). */
char *rules_url_redacted(const HttpRequest *req);

/* The resolved plan as a YAML rule file (every default written out) that check accepts again. */
void rules_print(const Rules *rules, FILE *f);

#endif
