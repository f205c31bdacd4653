/* The nearest processes to a rule that matches nothing: which keys each fails, and the order. */
#include "unit.h"

#include <stdbool.h>
#include <sys/types.h>

#include "match.h"

#define NO_UID ((uid_t)-1)

typedef struct Rule {
	const char *comm, *cmdline, *exe;
	uid_t uid; /* NO_UID: no uid key */
} Rule;

static Matcher *matcher(const Rule *r)
{
	Matcher *m;
	char err[256];

	if (match_new(r->comm, r->cmdline, r->exe, r->uid == NO_UID ? NULL : &r->uid, &m, err,
		      sizeof(err)) < 0)
		fail_msg("match_new: %s", err);
	return m;
}

static const Rule GUNICORN = { .comm = "gunicorn", .uid = NO_UID };
static const Rule HAPROXY_W = { .comm = "haproxy", .cmdline = "(^| )-Ws?( |$)", .uid = NO_UID };
static const Rule NGINX_EXE = { .exe = "/usr/sbin/nginx", .uid = NO_UID };
static const Rule NGINX_ROOT = { .comm = "nginx", .uid = 0 };
static const Rule PHP_FPM = { .comm = "php-fpm", .uid = NO_UID };
static const Rule GUNICORN_CMDLINE = {
	.cmdline = "^(gunicorn: master|[^ ]*python[0-9.]* (-m gunicorn|[^ ]*/gunicorn))( |$)",
	.uid = NO_UID
};

static void test_fails_and_relation(void **state)
{
	static const struct {
		const char *what;
		const Rule *rule;
		MatchFacts f;
		unsigned fails;
		bool near; /* shown at all */
	} cases[] = {
		{ "setproctitle renamed it",
		  &GUNICORN,
		  { .comm = "gunicorn: maste", .cmdline = "gunicorn: master [app:app]" },
		  MATCH_FAILS_COMM,
		  true },
		{ "python3 -m gunicorn: its cmdline names the pattern",
		  &GUNICORN,
		  { .comm = "python3", .cmdline = "/usr/bin/python3 -m gunicorn app:app" },
		  MATCH_FAILS_COMM,
		  true },
		{ "a comm sharing 3 letters",
		  &GUNICORN,
		  { .comm = "gunzip", .cmdline = "gunzip" },
		  MATCH_FAILS_COMM,
		  true },
		{ "2 letters are chance",
		  &GUNICORN,
		  { .comm = "gusty", .cmdline = "gusty" },
		  MATCH_FAILS_COMM,
		  false },
		{ "nothing alike",
		  &GUNICORN,
		  { .comm = "bash", .cmdline = "bash -c sleep" },
		  MATCH_FAILS_COMM,
		  false },
		{ "case does not hide a likeness",
		  &GUNICORN,
		  { .comm = "Gunicorn", .cmdline = "Gunicorn" },
		  MATCH_FAILS_COMM,
		  true },
		{ "an unreadable cmdline is a failed cmdline",
		  &HAPROXY_W,
		  { .comm = "haproxy" },
		  MATCH_FAILS_CMDLINE,
		  true },
		{ "master-worker set in haproxy.cfg: no -W",
		  &HAPROXY_W,
		  { .comm = "haproxy", .cmdline = "haproxy -f /etc/haproxy/haproxy.cfg" },
		  MATCH_FAILS_CMDLINE,
		  true },
		{ "haproxy -Ws matches",
		  &HAPROXY_W,
		  { .comm = "haproxy", .cmdline = "/usr/sbin/haproxy -Ws -f /etc/haproxy.cfg" },
		  0,
		  true },
		{ "another uid's exe, without CAP_SYS_PTRACE",
		  &NGINX_EXE,
		  { .comm = "nginx", .cmdline = "nginx: master process", .exe_denied = true },
		  MATCH_FAILS_EXE_UNREADABLE,
		  true },
		{ "an unreadable exe of something else",
		  &NGINX_EXE,
		  { .comm = "sh", .cmdline = "sh", .exe_denied = true },
		  MATCH_FAILS_EXE_UNREADABLE,
		  false },
		{ "the same exe basename elsewhere",
		  &NGINX_EXE,
		  { .comm = "nginx", .cmdline = "nginx", .exe = "/usr/local/sbin/nginx" },
		  MATCH_FAILS_EXE,
		  true },
		{ "another exe",
		  &NGINX_EXE,
		  { .comm = "sleep", .cmdline = "sleep 1", .exe = "/usr/bin/sleep" },
		  MATCH_FAILS_EXE,
		  false },
		{ "nginx's workers run as www-data",
		  &NGINX_ROOT,
		  { .comm = "nginx",
		    .cmdline = "nginx: worker process",
		    .uid_known = true,
		    .uid = 33 },
		  MATCH_FAILS_UID,
		  true },
		{ "a uid in common is no likeness",
		  &NGINX_ROOT,
		  { .comm = "sleep", .cmdline = "sleep 1", .uid_known = true, .uid = 0 },
		  MATCH_FAILS_COMM,
		  false },
		{ "every key failed",
		  &NGINX_ROOT,
		  { .comm = "nginx-debug", .cmdline = "nginx-debug", .uid_known = true, .uid = 33 },
		  MATCH_FAILS_COMM | MATCH_FAILS_UID,
		  true },
		{ "Debian's binary is php-fpm8.2",
		  &PHP_FPM,
		  { .comm = "php-fpm8.2", .cmdline = "php-fpm: master process" },
		  MATCH_FAILS_COMM,
		  true },
		{ "a cmdline-only rule whose pattern names the comm",
		  &GUNICORN_CMDLINE,
		  { .comm = "gunicorn", .cmdline = "/opt/venv/bin/gunicorn app:app" },
		  MATCH_FAILS_CMDLINE,
		  true },
		{ "a cmdline-only rule and an unrelated process",
		  &GUNICORN_CMDLINE,
		  { .comm = "nginx", .cmdline = "nginx: master process" },
		  MATCH_FAILS_CMDLINE,
		  false },
		{ "a shell wrapper is not gunicorn's arbiter",
		  &GUNICORN_CMDLINE,
		  { .comm = "sh", .cmdline = "sh -c gunicorn app:app" },
		  MATCH_FAILS_CMDLINE,
		  false },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		Matcher *m = matcher(cases[i].rule);
		unsigned fails = 12345;
		unsigned near = match_nearness(m, &cases[i].f, &fails);
		if (fails != cases[i].fails || (near > 0) != cases[i].near)
			fail_msg("%s: fails %#x near %u, want fails %#x, %s", cases[i].what, fails,
				 near, cases[i].fails, cases[i].near ? "near" : "not near");
		match_free(m);
	}
}

/* Each list is nearest first. */
static void test_order(void **state)
{
	static const struct {
		const Rule *rule;
		MatchFacts f[4];
	} cases[] = {
		{ &GUNICORN,
		  { { .comm = "gunicorn: maste", .cmdline = "gunicorn: master [app]" },
		    { .comm = "python3", .cmdline = "python3 -m gunicorn app" },
		    { .comm = "gunzip", .cmdline = "gunzip -c x.gz" } } },
		/* a key that passes outweighs any likeness of one that fails */
		{ &NGINX_ROOT,
		  { { .comm = "nginx", .cmdline = "nginx", .uid_known = true, .uid = 101 },
		    { .comm = "nginx-debug",
		      .cmdline = "nginx-debug",
		      .uid_known = true,
		      .uid = 0 },
		    { .comm = "nginxy", .cmdline = "nginxy", .uid_known = true, .uid = 101 } } },
		{ &PHP_FPM,
		  { { .comm = "php-fpm8.2", .cmdline = "php-fpm: master process" },
		    { .comm = "php8.2", .cmdline = "php8.2 artisan queue:work" } } },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		Matcher *m = matcher(cases[i].rule);
		unsigned fails, last = ~0u;
		for (size_t j = 0; j < ELEMS(cases[i].f) && cases[i].f[j].comm; j++) {
			unsigned near = match_nearness(m, &cases[i].f[j], &fails);
			if (near == 0 || near >= last)
				fail_msg("case %zu: %s comes %u near, after %u", i,
					 cases[i].f[j].comm, near, last);
			last = near;
		}
		match_free(m);
	}
}

static void test_fails_format(void **state)
{
	char buf[128];
	(void)state;

	assert_string_equal(match_fails_format(MATCH_FAILS_COMM, false, buf, sizeof(buf)), "comm");
	assert_string_equal(
	    match_fails_format(MATCH_FAILS_COMM | MATCH_FAILS_EXE_UNREADABLE | MATCH_FAILS_UID,
			       false, buf, sizeof(buf)),
	    "comm,exe-unreadable,uid");
	assert_string_equal(match_fails_format(MATCH_FAILS_WORKER, true, buf, sizeof(buf)),
			    "nothing, but it is a worker of a match");
	assert_string_equal(match_fails_format(MATCH_FAILS_EXE_UNREADABLE, true, buf, sizeof(buf)),
			    "exe (unreadable: another uid's, and no CAP_SYS_PTRACE)");
	assert_string_equal(match_fails_format(0, false, buf, sizeof(buf)),
			    "nothing: it matches now");
	/* a short buffer is cut at a whole name, never overrun */
	assert_string_equal(
	    match_fails_format(MATCH_FAILS_COMM | MATCH_FAILS_CMDLINE, false, buf, 8), "comm");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fails_and_relation),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_fails_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
