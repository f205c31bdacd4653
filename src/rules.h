/* rules.h: the rule file (YAML) as an immutable, validated set of rules and settings. */
#ifndef SIGRELOAD_RULES_H
#define SIGRELOAD_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "match.h"

#define RULES_MAX_FILE_BYTES (1024 * 1024)
#define RULES_MAX_RULES	     256
#define RULES_MAX_PATHS	     64 /* per rule */
#define RULES_MAX_ERRORS     50
#define RULES_NAME_MAX	     63

#define RULES_DEFAULT_FILE "/etc/sigreload/sigreload.yaml"

typedef struct Settings {
	uint64_t debounce_ms, max_wait_ms, resync_ms, handler_wait_ms, verify_after_ms;
	LogFormat log_format;
	LogLevel log_level;
	char *metrics_listen; /* "" disables the HTTP endpoint */
} Settings;

/* One rule after defaults: every field is set. Plain read-only data once loaded. */
typedef struct Rule {
	char *name;
	char **paths; /* absolute, normalised (no "//", no trailing '/') */
	size_t n_paths;
	Matcher *match;
	bool leaders_only;
	bool signal_on_start;
	int signal;
	uint64_t debounce_ms, max_wait_ms, handler_wait_ms, verify_after_ms;
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
} RulesErrors;

/* Reads and validates file. Returns 0 and *out, or -EINVAL with every problem in errs (the file
 * is never half-applied), or another -errno if it cannot be read (also described in errs). */
int rules_load(const char *file, Rules **out, RulesErrors *errs);

/* The same for a document in memory; file only names it in messages. */
int rules_parse(const char *file, const char *buf, size_t len, Rules **out, RulesErrors *errs);

void rules_free(Rules *rules);
static inline void rules_freep(Rules **rules)
{
	rules_free(*rules);
}
void rules_errors_done(RulesErrors *errs);

const Rule *rules_find(const Rules *rules, const char *name);

/* True when both rules watch the same paths (in the same order). */
bool rules_same_paths(const Rule *a, const Rule *b);

/* The resolved plan as a YAML rule file (every default written out) that check accepts again. */
void rules_print(const Rules *rules, FILE *f);

#endif
