/* configmap-reload's flags: how Go's flag syntax is taken out of argv, the rule file they make,
 * and the errors that name a flag. */
#include "unit.h"

#include <errno.h>
#include <unistd.h>

#include "cmreload.h"

#define MAX_ARGS 16

/* argv as a NULL-terminated list, in a buffer cmreload_take may rearrange. */
typedef struct Args {
	char *v[MAX_ARGS + 1];
	int n;
} Args;

static void args_of(Args *a, const char *const *list)
{
	a->n = 0;
	for (; *list; list++)
		a->v[a->n++] = (char *)*list;
	a->v[a->n] = NULL;
}

static void test_take(void **state)
{
	static const char *const in[] = { "run",
					  "-volume-dir=/a",
					  "--volume-dir",
					  "/b",
					  "--log-level",
					  "debug",
					  "-webhook-url",
					  "http://x/-/reload",
					  "--webhook-method=PUT",
					  "-webhook-method",
					  "-X", /* a value may start with '-', as in Go */
					  "-c-like",
					  "--",
					  "-volume-dir=/c",
					  NULL };
	static const char *const rest[] = { "run",     "--log-level", "debug",
					    "-c-like", "--",	      "-volume-dir=/c" };
	CmReload c = { 0 };
	Args a;
	char err[128] = "";
	(void)state;
	args_of(&a, in);
	assert_int_equal(cmreload_take(&a.n, a.v, &c, err, sizeof(err)), 5);
	assert_int_equal(a.n, ELEMS(rest));
	for (size_t i = 0; i < ELEMS(rest); i++)
		assert_string_equal(a.v[i], rest[i]);
	assert_null(a.v[a.n]);
	assert_int_equal(c.n_dirs, 2);
	assert_string_equal(c.dirs[0], "/a");
	assert_string_equal(c.dirs[1], "/b");
	assert_int_equal(c.n_urls, 1);
	assert_string_equal(c.urls[0], "http://x/-/reload");
	assert_string_equal(c.method, "-X"); /* given twice: the last one counts */
	cmreload_done(&c);

	static const char *const none[] = { "check", "-c", "x.yaml", "-volume-dirs=/a", NULL };
	args_of(&a, none);
	assert_int_equal(cmreload_take(&a.n, a.v, &c, err, sizeof(err)), 0);
	assert_int_equal(a.n, 4);
	cmreload_done(&c);

	static const char *const dangling[] = { "run", "-volume-dir=/a", "--webhook-url", NULL };
	args_of(&a, dangling);
	assert_int_equal(cmreload_take(&a.n, a.v, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "flag needs an argument: -webhook-url");
	cmreload_done(&c);
}

static void test_rules(void **state)
{
	static const char *const in[] = { "run",
					  "-volume-dir=/etc/config",
					  "-volume-dir=rel/dir",
					  "-volume-dir=/odd\"name\n",
					  "-webhook-url=http://127.0.0.1:9090/-/reload",
					  "-webhook-url=http://127.0.0.1:9093/-/reload",
					  "-webhook-status-code=204",
					  "-webhook-retries=3",
					  "-web.listen-address=:9533",
					  "-web.telemetry-path=/metrics",
					  NULL };
	char cwd[4096], err[256], *want;
	CmReload c = { 0 };
	CmReloadText t;
	Args a;
	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	args_of(&a, in);
	assert_int_equal(cmreload_take(&a.n, a.v, &c, err, sizeof(err)), 9);
	assert_int_equal(cmreload_rules(&c, &t, err, sizeof(err)), 0);
	want = xasprintf("# configmap-reload's flags, as a rule file\n"
			 "metrics_listen: \":9533\"\n"
			 "rules:\n"
			 "  - name: \"webhook-1\"\n"
			 "    paths:\n"
			 "      - \"/etc/config\"\n"
			 "      - \"%s/rel/dir\"\n"
			 "      - \"/odd\\\"name\\x0a\"\n"
			 "    http:\n"
			 "      url: \"http://127.0.0.1:9090/-/reload\"\n"
			 "      method: \"POST\"\n"
			 "      expect_status: 204\n"
			 "      retries: 2\n"
			 "  - name: \"webhook-2\"\n"
			 "    paths:\n"
			 "      - \"/etc/config\"\n"
			 "      - \"%s/rel/dir\"\n"
			 "      - \"/odd\\\"name\\x0a\"\n"
			 "    http:\n"
			 "      url: \"http://127.0.0.1:9093/-/reload\"\n"
			 "      method: \"POST\"\n"
			 "      expect_status: 204\n"
			 "      retries: 2\n",
			 cwd, cwd);
	assert_string_equal(t.text, want);
	/* each line says which flag made it, for the parser's messages */
	assert_int_equal(t.n_lines, 23);
	assert_null(t.origins[0]);
	assert_string_equal(t.origins[1], "-web.listen-address :9533");
	assert_string_equal(t.origins[3], "-webhook-url #1");
	assert_string_equal(t.origins[6], "-volume-dir rel/dir");
	assert_string_equal(t.origins[7], "-volume-dir /odd\"name\\x0a");
	assert_string_equal(t.origins[9], "-webhook-url #1"); /* never its value: credentials */
	assert_string_equal(t.origins[11], "-webhook-status-code 204");
	assert_string_equal(t.origins[12], "-webhook-retries 3");
	assert_string_equal(t.origins[19], "-webhook-url #2");
	free(want);
	cmreload_text_done(&t);
	cmreload_done(&c);
}

/* configmap-reload's defaults: POST, exactly 200, one attempt. */
static void test_defaults(void **state)
{
	char *dirs[] = { "/v" }, *urls[] = { "http://localhost:8080/reload" };
	CmReload c = { .dirs = dirs, .n_dirs = 1, .urls = urls, .n_urls = 1 };
	char err[256];
	CmReloadText t;
	(void)state;
	assert_int_equal(cmreload_rules(&c, &t, err, sizeof(err)), 0);
	assert_string_equal(t.text, "# configmap-reload's flags, as a rule file\n"
				    "rules:\n"
				    "  - name: \"webhook\"\n"
				    "    paths:\n"
				    "      - \"/v\"\n"
				    "    http:\n"
				    "      url: \"http://localhost:8080/reload\"\n"
				    "      method: \"POST\"\n"
				    "      expect_status: 200\n"
				    "      retries: 0\n");
	assert_string_equal(t.origins[2], "-webhook-url");
	cmreload_text_done(&t);
}

static void test_errors(void **state)
{
	static const struct {
		const char *flag, *value, *err;
	} cases[] = {
		{ "status", "99", "-webhook-status-code 99: not an HTTP status (100 to 599)" },
		{ "status", "600", "-webhook-status-code 600: not an HTTP status (100 to 599)" },
		{ "status", "0x1F", "-webhook-status-code 0x1F: not an HTTP status (100 to 599)" },
		{ "status", "+200", "-webhook-status-code +200: not an HTTP status (100 to 599)" },
		{ "status", "", "-webhook-status-code : not an HTTP status (100 to 599)" },
		{ "retries", "0",
		  "-webhook-retries 0: not a number of attempts (1 or more, the first one "
		  "included, as configmap-reload counts them)" },
		{ "retries", "-1",
		  "-webhook-retries -1: not a number of attempts (1 or more, the first one "
		  "included, as configmap-reload counts them)" },
		{ "retries", "99999999999999999999",
		  "-webhook-retries 99999999999999999999: not a number of attempts (1 or more, the "
		  "first one included, as configmap-reload counts them)" },
		{ "listen", "nonsense",
		  "-web.listen-address nonsense: not an address such as :9533" },
		{ "telemetry", "/prom",
		  "-web.telemetry-path /prom: sigreload serves its metrics at /metrics only" },
	};
	char *dirs[] = { "/v" }, *urls[] = { "http://x/" }, err[256];
	CmReloadText t;
	(void)state;
	for (size_t i = 0; i < ELEMS(cases); i++) {
		CmReload c = { .dirs = dirs, .n_dirs = 1, .urls = urls, .n_urls = 1 };
		const char **slot = !strcmp(cases[i].flag, "status")	? &c.status
				    : !strcmp(cases[i].flag, "retries") ? &c.retries
				    : !strcmp(cases[i].flag, "listen")	? &c.listen
									: &c.telemetry;
		*slot = cases[i].value;
		assert_int_equal(cmreload_rules(&c, &t, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, cases[i].err);
	}
	CmReload no_dir = { .urls = urls, .n_urls = 1 }, no_url = { .dirs = dirs, .n_dirs = 1 };
	assert_int_equal(cmreload_rules(&no_dir, &t, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "missing -volume-dir: the directory to watch");
	assert_int_equal(cmreload_rules(&no_url, &t, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "missing -webhook-url: the URL to request when it changes");
}

/* The rule parser's own checks come back naming the flag, not a line of the made-up file. */
static void test_parser_errors_name_the_flag(void **state)
{
	char *dirs[70], *urls[] = { "http://x/" };
	CmReload c = { .dirs = dirs, .n_dirs = ELEMS(dirs), .urls = urls, .n_urls = 1 };
	RulesErrors errs;
	Rules *rules = NULL;
	bool named = false;
	(void)state;
	for (size_t i = 0; i < ELEMS(dirs); i++)
		dirs[i] = xasprintf("/d%zu", i);
	assert_int_equal(cmreload_load(&c, &rules, &errs), -EINVAL);
	assert_null(rules);
	for (size_t i = 0; i < errs.n; i++) {
		named = named || strncmp(errs.v[i], "-volume-dir /d0: too many paths", 31) == 0;
		assert_null(strstr(errs.v[i], CMRELOAD_SOURCE ":10:")); /* no line of ours left */
	}
	assert_true(named);
	rules_errors_done(&errs);
	for (size_t i = 0; i < ELEMS(dirs); i++)
		free(dirs[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_parser_errors_name_the_flag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
