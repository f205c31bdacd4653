/* fuzz_rules: rules_parse on arbitrary bytes, as `sigreload check` and every rule-file reload
 * read them. Beyond "no crash, no leak": a refused file is explained (every message is
 * FILE:LINE:COL or FILE: ...), an accepted one is complete, and the plan `check` prints is a rule
 * file that parses back to the same plan (rules.h: "check accepts again"). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "rules.h"

#define FILE_NAME "fuzz.yaml"

static char *print_plan(const Rules *rules, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	FUZZ_CHECK(f, "open_memstream");
	rules_print(rules, f);
	fclose(f);
	return buf;
}

static void check_errors(const RulesErrors *errs)
{
	for (size_t i = 0; i < errs->n; i++) {
		size_t line = 0, col = 0;
		int at = 0;
		const char *e = errs->v[i];
		FUZZ_CHECK(strncmp(e, FILE_NAME ":", strlen(FILE_NAME ":")) == 0,
			   "error does not name the file: %s", e);
		if (sscanf(e, FILE_NAME ":%zu:%zu: %n", &line, &col, &at) == 2 && at > 0)
			FUZZ_CHECK(line >= 1 && col >= 1, "line or column 0: %s", e);
		else
			FUZZ_CHECK(strncmp(e, FILE_NAME ": ", strlen(FILE_NAME) + 2) == 0,
				   "error without line and column: %s", e);
	}
}

/* A URL's authority (after "://", before the path, query or fragment) holds no '@'. */
static bool no_userinfo(const char *url)
{
	const char *auth = strstr(url, "://");

	return auth && !memchr(auth + 3, '@', strcspn(auth + 3, "/?#"));
}

static void check_rules(const Rules *rules)
{
	FUZZ_CHECK(rules->n >= 1, "accepted with no rule");
	for (size_t i = 0; i < rules->n; i++) {
		const Rule *r = &rules->v[i];
		FUZZ_CHECK(r->name && *r->name, "rule %zu has no name", i);
		FUZZ_CHECK(r->n_paths >= 1, "rule %s has no paths", r->name);
		FUZZ_CHECK(!r->match != !r->http, "rule %s has not exactly one of match and http",
			   r->name);
		FUZZ_CHECK(!r->http || (r->http->req.url && no_userinfo(r->http->req.url) &&
					r->http->req.method && r->http->req.timeout_ms > 0),
			   "rule %s: http action incomplete, or its url keeps a user name",
			   r->name);
		FUZZ_CHECK(!r->verify || (r->verify->req.url && r->verify->req.method),
			   "rule %s: verify incomplete", r->name);
		FUZZ_CHECK(r->max_wait_ms >= r->debounce_ms, "rule %s: max_wait < debounce",
			   r->name);
		for (size_t j = 0; j < r->n_paths; j++)
			FUZZ_CHECK(r->paths[j][0] == '/' && !strstr(r->paths[j], "//"),
				   "rule %s: path not absolute and normalised: %s", r->name,
				   r->paths[j]);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(rules->v[j].name, r->name) != 0, "duplicate rule %s",
				   r->name);
	}
}

/* No url: line of the plan shows a password in its authority (":PASSWORD@"); "xxxxx" is what
 * the plan writes in its place. */
static void check_passwords(const Rules *rules, const char *plan)
{
	for (size_t i = 0; i < rules->n; i++) {
		const char *pw = rules->v[i].http ? rules->v[i].http->req.password : NULL;
		char *shown = NULL;
		if (!pw || strcmp(pw, "xxxxx") == 0 || asprintf(&shown, ":%s@", pw) < 0)
			continue;
		for (const char *l = plan; (l = strstr(l, "url: \"")); l++) {
			const char *auth = strstr(l, "://");
			size_t n = auth ? strcspn(auth + 3, "/?#\"\n") : 0;
			FUZZ_CHECK(!auth || !memmem(auth + 2, n + 1, shown, strlen(shown)),
				   "the plan shows rule %s's password", rules->v[i].name);
		}
		free(shown);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Rules *rules = NULL, *again = NULL;
	RulesErrors errs, errs2;

	int r = rules_parse(FILE_NAME, (const char *)data, size, &rules, &errs);
	check_errors(&errs);
	if (r < 0) {
		FUZZ_CHECK(r == -ENOMEM || errs.n > 0, "refused (%d) without a message", r);
		rules_errors_done(&errs);
		return 0;
	}
	FUZZ_CHECK(errs.n == 0, "accepted with %zu errors", errs.n);
	check_rules(rules);

	size_t len, len2;
	char *plan = print_plan(rules, &len);
	check_passwords(rules, plan);
	r = rules_parse(FILE_NAME, plan, len, &again, &errs2);
	if (r < 0) {
		fprintf(stderr, "the plan:\n%s\nis refused:\n", plan);
		for (size_t i = 0; i < errs2.n; i++)
			fprintf(stderr, "  %s\n", errs2.v[i]);
		fuzz_fail("`check` prints a plan it does not accept again");
	}
	char *plan2 = print_plan(again, &len2);
	/* the first line names the file and counts the rules; the rest is the plan itself */
	if (len != len2 || memcmp(plan, plan2, len) != 0) {
		fprintf(stderr, "printed:\n%s\nread back and printed:\n%s\n", plan, plan2);
		fuzz_fail("`check`'s plan reads back as a different plan");
	}
	free(plan);
	free(plan2);
	rules_free(again);
	rules_free(rules);
	return 0;
}
