/* The rule file: every corpus file's exact errors, plans that read back, limits, defaults. */
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "duration.h"
#include "rules.h"
#include "rules_keys.h"
#include "signame.h"
#include "yamldoc.h"

/* A corpus that vanished must not pass as "every file gave its errors". */
#define MIN_BAD_FILES  35
#define MIN_GOOD_FILES 10

static char *corpus_path(const char *sub)
{
	const char *dir = getenv("SIGRELOAD_TESTS");

	if (!dir || !*dir)
		fail_msg("SIGRELOAD_TESTS is not set: run this through `make test-unit`");
	return xasprintf("%s/rules/%s", dir, sub);
}

/* The whole file, NUL-terminated; *len excludes the NUL. NULL if it cannot be read. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t size = 0;

	if (!f)
		return NULL;
	FILE *out = open_memstream(&buf, &size);
	assert_non_null(out);
	for (int c; (c = fgetc(f)) != EOF;)
		fputc(c, out);
	fclose(f);
	fclose(out);
	if (len)
		*len = size;
	return buf;
}

static int yaml_filter(const struct dirent *de)
{
	size_t n = strlen(de->d_name);
	return n > 5 && strcmp(de->d_name + n - 5, ".yaml") == 0;
}

/* The names (without .yaml) of the corpus files in dir, sorted. */
static size_t list_corpus(const char *dir, char ***out)
{
	struct dirent **v;
	int n = scandir(dir, &v, yaml_filter, alphasort);

	if (n < 0) {
		fail_msg("cannot list %s: %s", dir, strerror(errno));
		return 0;
	}
	*out = calloc((size_t)n + 1, sizeof(**out));
	assert_non_null(*out);
	for (int i = 0; i < n; i++) {
		(*out)[i] = strndup(v[i]->d_name, strlen(v[i]->d_name) - 5);
		free(v[i]);
	}
	free(v);
	return (size_t)n;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Lines of text, without their '\n'. */
static size_t split_lines(char *text, char ***out)
{
	size_t n = 0;

	*out = NULL;
	for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		*out = reallocarray(*out, n + 2, sizeof(**out));
		assert_non_null(*out);
		(*out)[n++] = line;
		(*out)[n] = NULL;
	}
	return n;
}

/* Checks one bad file; returns the number of problems found (each printed). */
static int check_bad_file(const char *dir, const char *name)
{
	_cleanup_free_ char *yaml = xasprintf("%s/%s.yaml", dir, name);
	_cleanup_free_ char *errpath = xasprintf("%s/%s.err", dir, name);
	_cleanup_free_ char *expected_text = slurp(errpath, NULL);
	_cleanup_free_ char **expected = NULL;
	RulesErrors errs;
	Rules *rules = (Rules *)0x1; /* must stay as it is: a bad file is never half-applied */
	int problems = 0;

	if (!expected_text) {
		print_error("%s: no %s.err beside it\n", yaml, name);
		return 1;
	}
	size_t n = split_lines(expected_text, &expected);
	if (n == 0) {
		print_error("%s.err is empty: a bad file must give at least one error\n", name);
		return 1;
	}
	int r = rules_load(yaml, &rules, &errs);
	if (r != -EINVAL) {
		print_error("%s: rules_load returned %d, want -EINVAL\n", name, r);
		problems++;
	}
	if (rules != (Rules *)0x1) {
		print_error("%s: rules_load wrote *out on failure\n", name);
		problems++;
	}
	for (size_t i = 0; i < n || i < errs.n; i++) {
		_cleanup_free_ char *want = i < n ? xasprintf("%s:%s", yaml, expected[i]) : NULL;
		const char *got = i < errs.n ? errs.v[i] : NULL;
		if (!want || !got || strcmp(want, got) != 0) {
			print_error("%s: error %zu\n  want: %s\n  got:  %s\n", name, i + 1,
				    want ? want : "(nothing)", got ? got : "(nothing)");
			problems++;
		}
	}
	rules_errors_done(&errs);
	return problems;
}

static void test_bad_corpus(void **state)
{
	_cleanup_free_ char *dir = corpus_path("bad");
	char **names;
	int problems = 0;
	(void)state;

	size_t n = list_corpus(dir, &names);
	if (n < MIN_BAD_FILES)
		fail_msg("%s holds %zu bad files, want at least %d", dir, n, MIN_BAD_FILES);
	for (size_t i = 0; i < n; i++)
		problems += check_bad_file(dir, names[i]);
	free_strv(names);
	if (problems)
		fail_msg("%d mismatches in the bad corpus", problems);
}

/* Every .err belongs to a .yaml: a renamed file must not leave its expectations unchecked. */
static void test_bad_corpus_no_orphans(void **state)
{
	_cleanup_free_ char *dir = corpus_path("bad");
	DIR *d = opendir(dir);
	struct dirent *de;
	(void)state;

	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.')
			continue;
		if (len > 4 && strcmp(de->d_name + len - 4, ".err") == 0) {
			_cleanup_free_ char *yaml =
			    xasprintf("%s/%.*s.yaml", dir, (int)(len - 4), de->d_name);
			if (access(yaml, F_OK) != 0)
				fail_msg("%s has no .yaml beside it", de->d_name);
		} else if (len <= 5 || strcmp(de->d_name + len - 5, ".yaml") != 0) {
			fail_msg("%s/%s is neither .yaml nor .err", dir, de->d_name);
		}
	}
	closedir(d);
}

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The http action and verify, but for the password: the plan never shows it. */
static void assert_http_equal(const Rule *r, const Rule *s)
{
	HttpAction a = { 0 }, b = { 0 };

	assert_int_equal(!r->http, !s->http);
	assert_int_equal(!r->verify, !s->verify);
	if (r->http) {
		a = *r->http, b = *s->http;
		assert_int_equal(!a.req.password, !b.req.password);
		a.req.password = b.req.password = NULL;
		assert_true(rules_same_action(&(Rule){ .http = &a }, &(Rule){ .http = &b }));
	}
	if (r->verify) {
		Verify v = *r->verify, w = *s->verify;
		assert_int_equal(!v.req.password, !w.req.password);
		v.req.password = w.req.password = NULL;
		assert_true(rules_same_action(&(Rule){ .verify = &v }, &(Rule){ .verify = &w }));
	}
}

/* Field by field: rules_print must lose nothing. */
static void assert_rules_equal(const Rules *a, const Rules *b)
{
	const Settings *x = &a->settings, *y = &b->settings;

	assert_int_equal(x->debounce_ms, y->debounce_ms);
	assert_int_equal(x->max_wait_ms, y->max_wait_ms);
	assert_int_equal(x->resync_ms, y->resync_ms);
	assert_int_equal(x->handler_wait_ms, y->handler_wait_ms);
	assert_int_equal(x->verify_after_ms, y->verify_after_ms);
	assert_int_equal(x->log_format, y->log_format);
	assert_int_equal(x->log_level, y->log_level);
	assert_string_equal(x->metrics_listen, y->metrics_listen);
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const Rule *r = &a->v[i], *s = &b->v[i];
		uid_t ur = 0, us = 0;
		assert_string_equal(r->name, s->name);
		assert_int_equal(r->n_paths, s->n_paths);
		for (size_t j = 0; j < r->n_paths; j++)
			assert_string_equal(r->paths[j], s->paths[j]);
		assert_int_equal(!r->match, !s->match);
		if (r->match) {
			assert_true(str_eq(match_comm(r->match), match_comm(s->match)));
			assert_true(str_eq(match_cmdline(r->match), match_cmdline(s->match)));
			assert_true(str_eq(match_exe(r->match), match_exe(s->match)));
			assert_int_equal(match_uid(r->match, &ur), match_uid(s->match, &us));
			assert_int_equal(ur, us);
		}
		assert_int_equal(r->leaders_only, s->leaders_only);
		assert_int_equal(r->signal_on_start, s->signal_on_start);
		assert_int_equal(r->signal, s->signal);
		assert_int_equal(r->debounce_ms, s->debounce_ms);
		assert_int_equal(r->max_wait_ms, s->max_wait_ms);
		assert_int_equal(r->handler_wait_ms, s->handler_wait_ms);
		assert_int_equal(r->verify_after_ms, s->verify_after_ms);
		assert_int_equal(r->min_interval_ms, s->min_interval_ms);
		assert_int_equal(r->start_grace_ms, s->start_grace_ms);
		assert_http_equal(r, s);
	}
}

static char *print_plan(const Rules *rules, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	assert_non_null(f);
	rules_print(rules, f);
	fclose(f);
	*len = size;
	return buf;
}

static Rules *parse_ok(const char *file, const char *buf, size_t len)
{
	RulesErrors errs;
	Rules *rules = NULL;

	int r = rules_parse(file, buf, len, &rules, &errs);
	for (size_t i = 0; i < errs.n; i++)
		print_error("%s\n", errs.v[i]);
	assert_int_equal(errs.n, 0);
	assert_int_equal(r, 0);
	assert_non_null(rules);
	rules_errors_done(&errs);
	return rules;
}

/* The plan is a rule file that reads back as the same rules, and prints the same again. */
static void assert_plan_round_trips(const Rules *rules)
{
	size_t len1, len2;
	_cleanup_free_ char *plan1 = print_plan(rules, &len1);
	_cleanup_(rules_freep) Rules *back = parse_ok(rules->file, plan1, len1);
	_cleanup_free_ char *plan2 = print_plan(back, &len2);

	assert_rules_equal(rules, back);
	assert_string_equal(plan1, plan2);
}

static void test_good_corpus(void **state)
{
	_cleanup_free_ char *dir = corpus_path("good");
	char **names;
	(void)state;

	size_t n = list_corpus(dir, &names);
	if (n < MIN_GOOD_FILES)
		fail_msg("%s holds %zu good files, want at least %d", dir, n, MIN_GOOD_FILES);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = xasprintf("%s/%s.yaml", dir, names[i]);
		_cleanup_(rules_freep) Rules *rules = NULL;
		RulesErrors errs;
		int r = rules_load(path, &rules, &errs);
		for (size_t j = 0; j < errs.n; j++)
			print_error("%s\n", errs.v[j]);
		if (r != 0)
			fail_msg("%s: rules_load returned %d", path, r);
		rules_errors_done(&errs);
		assert_string_equal(rules->file, path);
		assert_true(rules->n > 0);
		assert_plan_round_trips(rules);
	}
	free_strv(names);
}

static Rules *load_good(const char *name)
{
	_cleanup_free_ char *path = corpus_path(name);
	Rules *rules = NULL;
	RulesErrors errs;

	int r = rules_load(path, &rules, &errs);
	rules_errors_done(&errs);
	assert_int_equal(r, 0);
	return rules;
}

static void test_defaults(void **state)
{
	_cleanup_(rules_freep) Rules *rules = load_good("good/minimal.yaml");
	const Settings *s = &rules->settings;
	uid_t uid;
	(void)state;

	assert_int_equal(s->debounce_ms, 200);
	assert_int_equal(s->max_wait_ms, 5000);
	assert_int_equal(s->resync_ms, 0);
	assert_int_equal(s->handler_wait_ms, 10000);
	assert_int_equal(s->verify_after_ms, 1000);
	assert_int_equal(s->min_interval_ms, 0);
	assert_int_equal(s->start_grace_ms, RULES_DEFAULT_START_GRACE_MS);
	assert_int_equal(s->log_format, LOG_LOGFMT);
	assert_int_equal(s->log_level, LEVEL_INFO);
	assert_string_equal(s->metrics_listen, ":9533");
	assert_int_equal(rules->n, 1);
	const Rule *r = &rules->v[0];
	assert_string_equal(r->name, "app");
	assert_int_equal(r->n_paths, 1);
	assert_string_equal(r->paths[0], "/etc/app");
	assert_string_equal(match_comm(r->match), "app");
	assert_null(match_cmdline(r->match));
	assert_null(match_exe(r->match));
	assert_false(match_uid(r->match, &uid));
	assert_true(r->leaders_only);
	assert_false(r->signal_on_start);
	assert_int_equal(r->signal, SIGHUP);
	assert_int_equal(r->debounce_ms, 200);
	assert_int_equal(r->max_wait_ms, 5000);
	assert_int_equal(r->handler_wait_ms, 10000);
	assert_int_equal(r->verify_after_ms, 1000);
	assert_int_equal(r->min_interval_ms, 0);
	assert_int_equal(r->start_grace_ms, RULES_DEFAULT_START_GRACE_MS);
	assert_null(r->http);
	assert_null(r->verify);
}

static void test_every_key(void **state)
{
	_cleanup_(rules_freep) Rules *rules = load_good("good/every-key.yaml");
	const Settings *s = &rules->settings;
	uid_t uid = 12345;
	(void)state;

	assert_int_equal(s->debounce_ms, 300);
	assert_int_equal(s->max_wait_ms, 7000);
	assert_int_equal(s->resync_ms, 60000);
	assert_int_equal(s->handler_wait_ms, 20000);
	assert_int_equal(s->verify_after_ms, 2000);
	assert_int_equal(s->log_format, LOG_JSON);
	assert_int_equal(s->log_level, LEVEL_DEBUG);
	assert_string_equal(s->metrics_listen, "127.0.0.1:9100");
	assert_int_equal(rules->n, 2);

	/* every per-rule key overrides its global */
	const Rule *r = &rules->v[0];
	assert_string_equal(r->name, "nginx");
	assert_int_equal(r->n_paths, 2);
	assert_string_equal(r->paths[0], "/etc/nginx/conf.d");
	assert_string_equal(r->paths[1], "/etc/nginx/nginx.conf");
	assert_string_equal(match_comm(r->match), "nginx");
	assert_string_equal(match_cmdline(r->match), "^nginx: master process");
	assert_string_equal(match_exe(r->match), "/usr/sbin/nginx");
	assert_true(match_uid(r->match, &uid));
	assert_int_equal(uid, 0);
	assert_false(r->leaders_only);
	assert_true(r->signal_on_start);
	assert_int_equal(r->signal, SIGUSR1);
	assert_int_equal(r->debounce_ms, 1000);
	assert_int_equal(r->max_wait_ms, 10000);
	assert_int_equal(r->handler_wait_ms, 0);
	assert_int_equal(r->verify_after_ms, 0);

	/* a rule that sets nothing inherits the file's globals, not the built-in defaults */
	r = &rules->v[1];
	assert_true(match_uid(r->match, &uid));
	assert_int_equal(uid, 65532);
	assert_null(match_comm(r->match));
	assert_true(r->leaders_only);
	assert_int_equal(r->signal, SIGHUP);
	assert_int_equal(r->debounce_ms, 300);
	assert_int_equal(r->max_wait_ms, 7000);
	assert_int_equal(r->handler_wait_ms, 20000);
	assert_int_equal(r->verify_after_ms, 2000);
}

static void test_metrics_listen_disabled(void **state)
{
	static const char *const files[] = { "good/metrics-disabled.yaml",
					     "good/metrics-null.yaml" };
	(void)state;

	for (size_t i = 0; i < ELEMS(files); i++) {
		_cleanup_(rules_freep) Rules *rules = load_good(files[i]);
		assert_string_equal(rules->settings.metrics_listen, "");
	}
}

static void test_signals(void **state)
{
	_cleanup_(rules_freep) Rules *rules = load_good("good/signals.yaml");
	const int want[] = { SIGHUP,
			     SIGUSR2,
			     SIGUSR1,
			     SIGUSR1,
			     SIGHUP,
			     34,
			     64,
			     SIGNAME_RTMIN,
			     SIGNAME_RTMIN + 3,
			     SIGNAME_RTMIN + 30,
			     SIGNAME_RTMAX - 1,
			     SIGWINCH,
			     SIGABRT,
			     SIGIO };
	(void)state;

	assert_int_equal(rules->n, ELEMS(want));
	for (size_t i = 0; i < ELEMS(want); i++)
		if (rules->v[i].signal != want[i])
			fail_msg("rule %s: signal %d, want %d", rules->v[i].name,
				 rules->v[i].signal, want[i]);
}

static void test_anchors(void **state)
{
	_cleanup_(rules_freep) Rules *rules = load_good("good/anchors.yaml");
	uid_t uid;
	(void)state;

	assert_int_equal(rules->n, 3);
	const Rule *api = &rules->v[0], *worker = &rules->v[1];
	assert_true(rules_same_paths(api, worker));
	assert_string_equal(match_comm(worker->match), "app");
	assert_true(match_uid(worker->match, &uid));
	assert_int_equal(uid, 1000);
	assert_int_equal(worker->debounce_ms, 2000);
	assert_int_equal(worker->max_wait_ms, 2000);
	/* an alias is a value like any other: here the string SIGHUP as a comm */
	assert_string_equal(match_comm(rules->v[2].match), "SIGHUP");
	/* the two rules share YAML nodes but not memory */
	assert_ptr_not_equal(api->paths[0], worker->paths[0]);
}

static void test_path_normalisation(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "//a//b/", "/a/b" },
		{ "/a/b", "/a/b" },
		{ "/", "/" },
		{ "///", "/" },
		{ "/a/", "/a" },
		{ "//etc///nginx//conf.d//", "/etc/nginx/conf.d" },
		{ "/..data", "/..data" },
		{ "/a/...", "/a/..." },
		{ "/.hidden/x", "/.hidden/x" },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		_cleanup_free_ char *yaml = xasprintf(
		    "rules:\n  - {name: a, paths: [\"%s\"], match: {comm: a}}\n", cases[i].in);
		_cleanup_(rules_freep) Rules *rules = parse_ok("norm.yaml", yaml, strlen(yaml));
		if (strcmp(rules->v[0].paths[0], cases[i].out) != 0)
			fail_msg("\"%s\" normalised to \"%s\", want \"%s\"", cases[i].in,
				 rules->v[0].paths[0], cases[i].out);
	}
}

static void test_same_paths_and_find(void **state)
{
	static const char yaml[] = "rules:\n"
				   "  - {name: a, paths: [/x, /y], match: {comm: a}}\n"
				   "  - {name: b, paths: ['//x/', /y//], match: {comm: b}}\n"
				   "  - {name: c, paths: [/y, /x], match: {comm: c}}\n"
				   "  - {name: d, paths: [/x], match: {comm: d}}\n"
				   "  - {name: e, paths: [/x, /y, /z], match: {comm: e}}\n"
				   "  - {name: A, paths: [/x, /yy], match: {comm: e}}\n";
	_cleanup_(rules_freep) Rules *rules = parse_ok("same.yaml", yaml, strlen(yaml));
	(void)state;

	const Rule *a = rules_find(rules, "a"), *b = rules_find(rules, "b"),
		   *c = rules_find(rules, "c"), *d = rules_find(rules, "d"),
		   *e = rules_find(rules, "e"), *upper = rules_find(rules, "A");
	assert_ptr_equal(a, &rules->v[0]);
	assert_ptr_equal(e, &rules->v[4]);
	assert_ptr_equal(upper, &rules->v[5]); /* names are case-sensitive */
	assert_null(rules_find(rules, "f"));
	assert_null(rules_find(rules, ""));
	assert_null(rules_find(rules, "a "));

	assert_true(rules_same_paths(a, a));
	assert_true(rules_same_paths(a, b)); /* compared after normalisation */
	assert_false(rules_same_paths(a, c)); /* order matters */
	assert_false(rules_same_paths(a, d));
	assert_false(rules_same_paths(d, a));
	assert_false(rules_same_paths(a, e));
	assert_false(rules_same_paths(a, upper));
}

/* A document with count rules; bad_signal gives each one error at a known place. */
static char *gen_rules(size_t count, bool bad_signal)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	assert_non_null(f);
	fputs("rules:\n", f);
	for (size_t i = 0; i < count; i++)
		fprintf(f, "  - {name: r%zu, paths: [/a], match: {comm: x}%s}\n", i,
			bad_signal ? ", signal: BADX" : "");
	fclose(f);
	return buf;
}

static void parse_bad(const char *buf, RulesErrors *errs)
{
	Rules *rules = NULL;

	assert_int_equal(rules_parse("gen.yaml", buf, strlen(buf), &rules, errs), -EINVAL);
	assert_null(rules);
}

static void test_limit_rules(void **state)
{
	_cleanup_free_ char *ok = gen_rules(RULES_MAX_RULES, false);
	_cleanup_free_ char *bad = gen_rules(RULES_MAX_RULES + 1, false);
	_cleanup_(rules_freep) Rules *rules = parse_ok("gen.yaml", ok, strlen(ok));
	RulesErrors errs;
	(void)state;

	assert_int_equal(rules->n, RULES_MAX_RULES);
	parse_bad(bad, &errs);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0], "gen.yaml:2:3: too many rules (257; at most 256): "
				       "let one rule watch several paths");
	rules_errors_done(&errs);
}

static char *gen_paths(size_t count)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	assert_non_null(f);
	fputs("rules:\n  - name: many\n    match: {comm: x}\n    paths:\n", f);
	for (size_t i = 0; i < count; i++)
		fprintf(f, "      - /etc/p%zu\n", i);
	fclose(f);
	return buf;
}

static void test_limit_paths(void **state)
{
	_cleanup_free_ char *ok = gen_paths(RULES_MAX_PATHS);
	_cleanup_free_ char *bad = gen_paths(RULES_MAX_PATHS + 1);
	_cleanup_(rules_freep) Rules *rules = parse_ok("gen.yaml", ok, strlen(ok));
	RulesErrors errs;
	(void)state;

	assert_int_equal(rules->v[0].n_paths, RULES_MAX_PATHS);
	assert_string_equal(rules->v[0].paths[63], "/etc/p63");
	parse_bad(bad, &errs);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.v[0], "gen.yaml:5:7: too many paths (65; at most 64): "
				       "watch a common parent directory instead");
	rules_errors_done(&errs);
}

/* Exactly RULES_MAX_ERRORS errors are all reported; one more is cut, and says so. */
static void test_limit_errors(void **state)
{
	const size_t counts[] = { RULES_MAX_ERRORS - 1, RULES_MAX_ERRORS, RULES_MAX_ERRORS + 1,
				  200 };
	(void)state;

	for (size_t c = 0; c < ELEMS(counts); c++) {
		_cleanup_free_ char *yaml = gen_rules(counts[c], true);
		size_t shown = counts[c] < RULES_MAX_ERRORS ? counts[c] : RULES_MAX_ERRORS;
		bool cut = counts[c] > RULES_MAX_ERRORS;
		RulesErrors errs;

		parse_bad(yaml, &errs);
		assert_int_equal(errs.n, shown + cut);
		for (size_t i = 0; i < shown; i++) {
			/* "  - {name: rI, paths: [/a], match: {comm: x}, signal: BADX}" */
			static const char before[] =
			    "  - {name: r, paths: [/a], match: {comm: x}, signal: ";
			size_t col = strlen(before) + (size_t)snprintf(NULL, 0, "%zu", i) + 1;
			_cleanup_free_ char *want =
			    xasprintf("gen.yaml:%zu:%zu: unknown signal \"BADX\": use a name "
				      "(SIGHUP or HUP), a number (1), or RTMIN+n",
				      i + 2, col);
			assert_string_equal(errs.v[i], want);
		}
		if (cut)
			assert_string_equal(errs.v[shown],
					    "gen.yaml: too many errors, stopped after 50");
		rules_errors_done(&errs);
	}
}

static void write_file(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* What rules_load says about files it cannot parse at all. */
static void test_load_unreadable(void **state)
{
	const char *dir = *state;
	_cleanup_free_ char *missing = xasprintf("%s/missing.yaml", dir);
	_cleanup_free_ char *fifo = xasprintf("%s/fifo.yaml", dir);
	_cleanup_free_ char *big = xasprintf("%s/big.yaml", dir);
	_cleanup_free_ char *limit = xasprintf("%s/limit.yaml", dir);
	_cleanup_free_ char *buf = malloc(RULES_MAX_FILE_BYTES + 1);
	struct {
		const char *path;
		int ret;
		const char *msg;
	} cases[] = {
		{ missing, -ENOENT, "cannot read the rule file: No such file or directory" },
		{ dir, -EINVAL, "cannot read the rule file: not a regular file" },
		/* a FIFO with no writer: opening it for reading must not wait for one */
		{ fifo, -EINVAL, "cannot read the rule file: not a regular file" },
		{ big, -EFBIG, "the rule file is larger than 1048576 bytes" },
		/* at the limit, the file is read and parsed */
		{ limit, -EINVAL,
		  "1:1: the file holds only comments and blank lines: it needs at "
		  "least rules: with one rule" },
	};
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_non_null(buf);
	memset(buf, '\n', RULES_MAX_FILE_BYTES + 1);
	buf[0] = '#';
	write_file(big, buf, RULES_MAX_FILE_BYTES + 1);
	write_file(limit, buf, RULES_MAX_FILE_BYTES);
	alarm(10); /* a hang on the FIFO kills this binary rather than the whole run */
	for (size_t i = 0; i < ELEMS(cases); i++) {
		Rules *rules = NULL;
		RulesErrors errs;
		/* "FILE: message", or "FILE:LINE:COL: message" */
		bool at = cases[i].msg[0] >= '0' && cases[i].msg[0] <= '9';
		_cleanup_free_ char *want =
		    xasprintf("%s:%s%s", cases[i].path, at ? "" : " ", cases[i].msg);
		assert_int_equal(rules_load(cases[i].path, &rules, &errs), cases[i].ret);
		assert_null(rules);
		assert_int_equal(errs.n, 1);
		assert_string_equal(errs.v[0], want);
		rules_errors_done(&errs);
	}
	alarm(0);
}

/* Any character a value can hold survives rules_print: every code point a YAML escape can
 * write below U+0100, and the ones libyaml's reader refuses or folds when written raw. */
static void test_print_hostile_values(void **state)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	(void)state;

	assert_non_null(f);
	fputs("rules:\n", f);
	for (unsigned c = 1; c < 0x100; c++)
		/* in a bracket expression any character is a valid regex */
		fprintf(f,
			"  - {name: c%u, paths: [\"/p\\x%02x\"], match: {comm: \"\\x%02x\", "
			"cmdline: \"[a\\x%02x]\", exe: \"/\\x%02x/\"}}\n",
			c, c, c, c, c);
	fputs("  - {name: u, paths: [\"/\\u2028\\u2029\\ufeff\\ufffe\\uffff\\U0001F527\"], "
	      "match: {comm: \"\\u0085\\u00a0\"}}\n",
	      f);
	fclose(f);

	_cleanup_free_ char *yaml = buf;
	_cleanup_(rules_freep) Rules *rules = parse_ok("hostile.yaml", yaml, size);
	assert_int_equal(rules->n, 256);
	assert_string_equal(rules->v[0x22 - 1].paths[0], "/p\"");
	assert_string_equal(rules->v[0x5c - 1].paths[0], "/p\\");
	assert_string_equal(rules->v[0x80 - 1].paths[0], "/p\xc2\x80");
	assert_plan_round_trips(rules);
}

/* The plan's first line is a comment whatever the file is called. */
static void test_print_file_name(void **state)
{
	static const char yaml[] = "rules: [{name: a, paths: [/a], match: {comm: a}}]\n";
	static const struct {
		const char *name, *line;
	} cases[] = {
		{ "a\nrules: []\n.yaml", "# a\\x0arules: []\\x0a.yaml: valid, 1 rule" },
		{ "caf\xe9.yaml", "# caf\\xe9.yaml: valid, 1 rule" },
		{ "x\r\xc2\x85y", "# x\\x0d\\x85y: valid, 1 rule" },
		{ "caf\xc3\xa9.yaml", "# caf\xc3\xa9.yaml: valid, 1 rule" },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		_cleanup_(rules_freep) Rules *rules = parse_ok(cases[i].name, yaml, strlen(yaml));
		size_t len;
		_cleanup_free_ char *plan = print_plan(rules, &len);
		_cleanup_free_ char *want =
		    xasprintf("%s (every default written out)\n", cases[i].line);
		assert_memory_equal(plan, want, strlen(want));
		_cleanup_(rules_freep) Rules *back = parse_ok("plan.yaml", plan, len);
		assert_rules_equal(rules, back);
	}
}

static void test_http_keys(void **state)
{
	_cleanup_(rules_freep) Rules *rules = load_good("good/http.yaml");
	(void)state;

	assert_int_equal(rules->settings.min_interval_ms, 30000);
	assert_int_equal(rules->settings.start_grace_ms, 0);
	const Rule *r = &rules->v[0];
	assert_null(r->match);
	assert_non_null(r->http);
	const HttpRequest *q = &r->http->req;
	/* the userinfo left the URL, percent-decoded, as basic auth */
	assert_string_equal(q->url, "https://prometheus.example:9090/-/reload?now=1");
	assert_string_equal(q->username, "reloader");
	assert_string_equal(q->password, "p@ss");
	assert_null(q->password_file);
	assert_string_equal(q->method, "PUT");
	assert_int_equal(q->n_expect_status, 2);
	assert_int_equal(q->expect_status[0], 200);
	assert_int_equal(q->expect_status[1], 204);
	assert_int_equal(q->timeout_ms, 2000);
	assert_int_equal(r->http->retries, 10);
	assert_int_equal(q->n_headers, 2);
	assert_string_equal(q->headers[0], "X-Reload: 1");
	assert_string_equal(q->headers[1], "X-Empty: ");
	assert_string_equal(q->bearer_token_file, "/var/run/secrets/reload/token");
	assert_string_equal(q->ca_file, "/etc/reload/ca.pem");
	assert_string_equal(q->cert_file, "/etc/reload/client.pem");
	assert_string_equal(q->key_file, "/etc/reload/client.key");
	assert_string_equal(q->server_name, "prometheus.internal");
	assert_true(q->insecure_skip_verify);
	assert_true(r->signal_on_start);
	assert_int_equal(r->min_interval_ms, 30000); /* inherited */
	assert_int_equal(r->start_grace_ms, 1000);

	const Verify *v = r->verify;
	assert_non_null(v);
	assert_string_equal(v->req.url, "http://127.0.0.1:9090/api/v1/status/runtimeinfo");
	assert_string_equal(v->req.method, "GET");
	assert_int_equal(v->req.n_expect_status, 1);
	assert_int_equal(v->req.timeout_ms, 60000);
	assert_int_equal(regexec(&v->body_re, "{\"reloadConfigSuccess\":\n true}", 0, NULL, 0), 0);
	assert_int_equal(regexec(&v->body_re, "{\"reloadConfigSuccess\": false}", 0, NULL, 0),
			 REG_NOMATCH);

	/* the defaults of http:, and basic_auth */
	r = &rules->v[1];
	q = &r->http->req;
	assert_string_equal(q->url, "http://[::1]:9093/-/reload");
	assert_string_equal(q->method, "POST");
	assert_int_equal(q->n_expect_status, 0);
	assert_int_equal(q->timeout_ms, 5000);
	assert_int_equal(r->http->retries, 3);
	assert_string_equal(q->username, "admin");
	assert_null(q->password);
	assert_string_equal(q->password_file, "/etc/alertmanager/password");
	assert_false(q->insecure_skip_verify);
	assert_int_equal(r->min_interval_ms, 0);
	assert_int_equal(r->start_grace_ms, 0); /* inherited */
}

/* Neither a URL's password nor an Authorization header appears in the plan. */
static void test_plan_hides_credentials(void **state)
{
	_cleanup_(rules_freep) Rules *rules = load_good("good/http.yaml");
	size_t len;
	_cleanup_free_ char *plan = print_plan(rules, &len);
	(void)state;

	assert_null(strstr(plan, "p@ss"));
	assert_null(strstr(plan, "p%40ss"));
	assert_non_null(strstr(plan, "url: \"https://reloader:xxxxx@prometheus.example:9090/"));
	_cleanup_free_ char *url = rules_url_redacted(&rules->v[0].http->req);
	assert_string_equal(url, "https://reloader:xxxxx@prometheus.example:9090/-/reload?now=1");

	static const char headers[] =
	    "rules: [{name: a, paths: [/a], http: {url: \"http://h/\", headers: "
	    "{authorization: Bearer t0ken, Proxy-Authorization: t0ken, Cookie: t0ken, X: ok}}}]\n";
	_cleanup_(rules_freep) Rules *h = parse_ok("h.yaml", headers, strlen(headers));
	_cleanup_free_ char *plan2 = print_plan(h, &len);
	assert_null(strstr(plan2, "t0ken"));
	assert_non_null(strstr(plan2, "\"authorization\": \"xxxxx\""));
	assert_non_null(strstr(plan2, "\"X\": \"ok\""));
}

static Rules *parse_text(const char *yaml)
{
	return parse_ok("same.yaml", yaml, strlen(yaml));
}

/* rules_same_action: what a rule-file reload compares to keep a rule's state. */
static void test_same_action(void **state)
{
	static const char base[] = "{name: a, paths: [/a], match: {comm: x}}";
	static const char http[] = "{name: a, paths: [/a], http: {url: \"http://h/r\"}}";
	static const struct {
		const char *a, *b;
		bool same;
	} cases[] = {
		{ base, base, true },
		{ base, "{name: b, paths: [/b], match: {comm: x}, debounce: 1s}", true },
		{ base, "{name: a, paths: [/a], match: {comm: y}}", false },
		{ base, "{name: a, paths: [/a], match: {comm: x, uid: 0}}", false },
		{ base, "{name: a, paths: [/a], match: {comm: x}, signal: USR1}", false },
		{ base, "{name: a, paths: [/a], match: {comm: x}, leaders_only: false}", false },
		{ base, "{name: a, paths: [/a], match: {comm: x}, verify: {url: \"http://h/\"}}",
		  false },
		{ base, http, false },
		{ http, http, true },
		{ http, "{name: a, paths: [/a], http: {url: \"http://h/s\"}}", false },
		{ http, "{name: a, paths: [/a], http: {url: \"http://h/r\", method: PUT}}", false },
		{ http, "{name: a, paths: [/a], http: {url: \"http://h/r\", retries: 1}}", false },
		{ http, "{name: a, paths: [/a], http: {url: \"http://h/r\", timeout: 1s}}", false },
		{ http, "{name: a, paths: [/a], http: {url: \"http://h/r\", expect_status: 200}}",
		  false },
		{ http, "{name: a, paths: [/a], http: {url: \"http://h/r\", headers: {X: y}}}",
		  false },
		{ http, "{name: a, paths: [/a], http: {url: \"http://u:p@h/r\"}}", false },
		{ "{name: a, paths: [/a], http: {url: \"http://u:p@h/r\"}}",
		  "{name: a, paths: [/a], http: {url: \"http://u:q@h/r\"}}", false },
		{ http, "{name: a, paths: [/a], http: {url: \"http://h/r\", tls: {ca_file: /c}}}",
		  false },
		{ http,
		  "{name: a, paths: [/a], http: {url: \"http://h/r\", "
		  "tls: {insecure_skip_verify: true}}}",
		  false },
		{ "{name: a, paths: [/a], match: {comm: x}, verify: {url: \"http://h/\"}}",
		  "{name: a, paths: [/a], match: {comm: x}, verify: {url: \"http://h/\", "
		  "expect_body: ok}}",
		  false },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		_cleanup_free_ char *ya = xasprintf("rules: [%s]\n", cases[i].a);
		_cleanup_free_ char *yb = xasprintf("rules: [%s]\n", cases[i].b);
		_cleanup_(rules_freep) Rules *a = parse_text(ya);
		_cleanup_(rules_freep) Rules *b = parse_text(yb);
		if (rules_same_action(&a->v[0], &b->v[0]) != cases[i].same ||
		    rules_same_action(&b->v[0], &a->v[0]) != cases[i].same)
			fail_msg("case %zu: %s vs %s: want %s", i, cases[i].a, cases[i].b,
				 cases[i].same ? "same" : "different");
	}
}

/* The event pre-pass refuses what the document loader would spend quadratic time or much
 * memory on, at the first value past the limit. */
static void test_limit_yaml(void **state)
{
	static const char head[] = "rules: [{name: a, paths: [/a], match: {comm: x}}]\n";
	static const struct {
		const char *item; /* repeated in a flow list x: [...] ("%zu": a numbered anchor) */
		size_t ok, bad; /* how many still pass, and how many fail */
		const char *msg;
	} cases[] = {
		{ "[", YAMLDOC_MAX_DEPTH - 2, YAMLDOC_MAX_DEPTH - 1,
		  "nested more than 32 levels deep: a rule file needs 7 at most" },
		{ "%zu", YAMLDOC_MAX_ANCHORS - 1, YAMLDOC_MAX_ANCHORS,
		  "more than 1024 anchors (&name): name fewer values" },
		{ "*a,", YAMLDOC_MAX_ALIASES, YAMLDOC_MAX_ALIASES + 1,
		  "more than 4096 aliases (*name): write the values out, or share fewer" },
		{ "x,", YAMLDOC_MAX_NODES - 20, YAMLDOC_MAX_NODES,
		  "more than 32768 values (keys, list items and their values): 256 rules of 64 "
		  "paths need about 20000" },
	};
	(void)state;

	for (size_t c = 0; c < ELEMS(cases); c++) {
		for (int pass = 0; pass < 2; pass++) {
			size_t n = pass ? cases[c].bad : cases[c].ok;
			char *buf = NULL;
			size_t size = 0;
			FILE *f = open_memstream(&buf, &size);
			assert_non_null(f);
			fprintf(f, "%sy: &a 1\nx: [", head);
			for (size_t i = 0; i < n; i++)
				if (strcmp(cases[c].item, "%zu") == 0)
					fprintf(f, "&a%zu x,", i);
				else
					fputs(cases[c].item, f);
			for (size_t i = 0; cases[c].item[0] == '[' && i < n; i++)
				fputc(']', f);
			fputs("]\n", f);
			fclose(f);
			Rules *rules = NULL;
			RulesErrors errs;
			rules_parse("gen.yaml", buf, size, &rules, &errs);
			free(buf);
			/* under the limit: only the unknown keys x and y */
			if (!pass) {
				assert_int_equal(errs.n, 2);
				assert_non_null(strstr(errs.v[0], "unknown key \"y\""));
			} else {
				assert_int_equal(errs.n, 1);
				assert_non_null(strstr(errs.v[0], cases[c].msg));
			}
			rules_errors_done(&errs);
		}
	}
}

/* Where the man page documents each table of keys. */
static const char *const man_titles[RS_N] = {
	[RS_TOP] = "Top-level keys",
	[RS_RULE] = "Rule keys",
	[RS_MATCH] = "Match keys",
	[RS_HTTP] = "HTTP keys",
	[RS_BASIC_AUTH] = "HTTP basic_auth keys",
	[RS_TLS] = "HTTP tls keys",
	[RS_VERIFY] = "Verify keys",
};

/* The text of the man page's subsection title, up to the next .Sh or .Ss; NULL if none. */
static char *man_section(const char *man, const char *title)
{
	_cleanup_free_ char *head = xasprintf("\n.Ss %s\n", title);
	const char *start = strstr(man, head), *end;

	if (!start)
		return NULL;
	start += strlen(head);
	end = strstr(start, "\n.Ss ");
	if (!end || (strstr(start, "\n.Sh ") && strstr(start, "\n.Sh ") < end))
		end = strstr(start, "\n.Sh ");
	return strndup(start, end ? (size_t)(end - start) : strlen(start));
}

/* The value after "Default\n.Ql " (or .Dv, .Cm) in an entry, its quotes and punctuation
 * removed; NULL if the entry states none. */
static char *man_default(const char *entry)
{
	const char *d = strstr(entry, "Default\n.");
	char *v, *o;

	if (!d || !(strncmp(d + 9, "Ql ", 3) == 0 || strncmp(d + 9, "Dv ", 3) == 0 ||
		    strncmp(d + 9, "Cm ", 3) == 0))
		return NULL;
	v = strndup(d + 12, strcspn(d + 12, "\n"));
	assert_non_null(v);
	size_t n = strlen(v);
	if (n > 2 && v[n - 2] == ' ' && strchr(".,;", v[n - 1]))
		v[n - 2] = '\0';
	o = v;
	for (const char *c = v; *c;) { /* \(dq is a quote, \& nothing */
		if (strncmp(c, "\\(dq", 4) == 0)
			c += 4;
		else if (strncmp(c, "\\&", 2) == 0)
			c += 2;
		else
			*o++ = *c++;
	}
	*o = '\0';
	return v;
}

/* One key's entry: its name, what it defaults to, whether it is required. */
static void check_man_entry(const char *section, RulesSection s, const RulesKey *k)
{
	_cleanup_free_ char *head = xasprintf("\n.It Ic %s ", k->name);
	_cleanup_free_ char *head2 = xasprintf("\n.It Ic %s\n", k->name);
	const char *start = strstr(section, head) ? strstr(section, head) : strstr(section, head2);

	if (!start) {
		fail_msg("'%s' of sigreload.yaml.5 does not document %s (add .It Ic %s)",
			 man_titles[s], k->name, k->name);
		return; /* cmocka's fail_msg is not noreturn: gcc -O1 would see strstr(NULL + 1) */
	}
	const char *end = strstr(start + 1, "\n.It ");
	_cleanup_free_ char *entry = strndup(start, end ? (size_t)(end - start) : strlen(start));
	_cleanup_free_ char *def = man_default(entry);
	if ((k->flags & RK_REQUIRED) && !strstr(entry, "Required"))
		fail_msg("sigreload.yaml.5: %s is required, its entry does not say so", k->name);
	if (k->flags & RK_INHERITS) {
		_cleanup_free_ char *want = xasprintf("Default: the top-level\n.Ic %s", k->name);
		if (!strstr(entry, want))
			fail_msg("sigreload.yaml.5: %s defaults to the top-level %s: say so",
				 k->name, k->name);
	}
	if (!k->def) {
		if (def)
			fail_msg("sigreload.yaml.5 gives %s a default (%s) it has not", k->name,
				 def);
		return;
	}
	uint64_t a, b;
	bool same = def && (k->type == RT_DURATION ? duration_parse(def, &a) == 0 &&
							 duration_parse(k->def, &b) == 0 && a == b
						   : strcmp(def, k->def) == 0);
	if (!same)
		fail_msg("sigreload.yaml.5 says %s defaults to %s; it is %s", k->name,
			 def ? def : "(nothing)", k->def);
}

/* The man page's key reference is complete and true against the parser's own tables: every key,
 * no other, each with its default. */
static void test_man_page_documents_every_key(void **state)
{
	_cleanup_free_ char *path = corpus_path("../../man/sigreload.yaml.5");
	_cleanup_free_ char *man = slurp(path, NULL);
	(void)state;

	assert_non_null(man);
	for (int s = 0; s < RS_N; s++) {
		const RulesSectionInfo *sec = &rules_sections[s];
		assert_non_null(man_titles[s]);
		_cleanup_free_ char *section = man_section(man, man_titles[s]);
		if (!section)
			fail_msg("sigreload.yaml.5 has no .Ss %s", man_titles[s]);
		size_t entries = 0;
		for (const char *c = section; (c = strstr(c, "\n.It Ic ")); c++)
			entries++;
		for (size_t i = 0; i < sec->n_keys; i++)
			check_man_entry(section, s, &sec->keys[i]);
		if (entries != sec->n_keys)
			fail_msg("'%s' of sigreload.yaml.5 documents %zu keys; the parser has %zu",
				 man_titles[s], entries, sec->n_keys);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_corpus),
		cmocka_unit_test(test_bad_corpus_no_orphans),
		cmocka_unit_test(test_good_corpus),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_metrics_listen_disabled),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_anchors),
		cmocka_unit_test(test_path_normalisation),
		cmocka_unit_test(test_same_paths_and_find),
		cmocka_unit_test(test_limit_rules),
		cmocka_unit_test(test_limit_paths),
		cmocka_unit_test(test_limit_errors),
		cmocka_unit_test_setup_teardown(test_load_unreadable, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test(test_print_hostile_values),
		cmocka_unit_test(test_print_file_name),
		cmocka_unit_test(test_http_keys),
		cmocka_unit_test(test_plan_hides_credentials),
		cmocka_unit_test(test_same_action),
		cmocka_unit_test(test_limit_yaml),
		cmocka_unit_test(test_man_page_documents_every_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
