/* fuzz_rules: rules_parse on arbitrary bytes, as `sigreload check` and every rule-file reload
 * read them. Beyond "no crash, no leak": a refused file is explained (every message is
 * FILE:LINE:COL or FILE: ...), an accepted one is complete, and the plan `check` prints is a rule
 * file that parses back to the same plan (rules.h: "check accepts again"). */
#include <errno.h>
#include <stdbool.h>
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

static void check_rules(const Rules *rules)
{
	FUZZ_CHECK(rules->n >= 1, "accepted with no rule");
	for (size_t i = 0; i < rules->n; i++) {
		const Rule *r = &rules->v[i];
		FUZZ_CHECK(r->name && *r->name, "rule %zu has no name", i);
		FUZZ_CHECK(r->n_paths >= 1 && r->match, "rule %s has no paths or no match", r->name);
		FUZZ_CHECK(r->max_wait_ms >= r->debounce_ms, "rule %s: max_wait < debounce", r->name);
		for (size_t j = 0; j < r->n_paths; j++)
			FUZZ_CHECK(r->paths[j][0] == '/' && !strstr(r->paths[j], "//"),
				   "rule %s: path not absolute and normalised: %s", r->name, r->paths[j]);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(rules->v[j].name, r->name) != 0, "duplicate rule %s", r->name);
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
