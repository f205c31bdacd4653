/* Durations and signal names: the two small parsers of the rule file. */
#include "unit.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "duration.h"
#include "signame.h"

static void test_duration_parse(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t ms;
	} cases[] = {
		{ "0", 0, 0 },		 { "0ms", 0, 0 },
		{ "0s", 0, 0 },		 { "200ms", 0, 200 },
		{ "5s", 0, 5000 },	 { "1m", 0, 60000 },
		{ "2h", 0, 7200000 },	 { "168h", 0, DURATION_MAX_MS },
		{ "169h", -ERANGE, 0 },	 { "99999999999999999999s", -ERANGE, 0 },
		{ "200", -EINVAL, 0 },	 { "", -EINVAL, 0 },
		{ "ms", -EINVAL, 0 },	 { "1.5s", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },	 { "1 s", -EINVAL, 0 },
		{ "1S", -EINVAL, 0 },	 { "1sec", -EINVAL, 0 },
		{ "1h30m", -EINVAL, 0 }, { "+1s", -EINVAL, 0 },
		{ "00", -EINVAL, 0 },	 { "0x10s", -EINVAL, 0 },
		{ "1d", -EINVAL, 0 },	 { "10us", -EINVAL, 0 },
	};
	(void)state;
	for (size_t i = 0; i < ELEMS(cases); i++) {
		uint64_t ms = 12345;
		int r = duration_parse(cases[i].in, &ms);
		if (r != cases[i].ret)
			fail_msg("duration_parse(\"%s\") = %d, want %d", cases[i].in, r,
				 cases[i].ret);
		assert_int_equal(ms, r == 0 ? cases[i].ms : 12345); /* untouched on failure */
	}
}

static void test_duration_format(void **state)
{
	static const struct {
		uint64_t ms;
		const char *out;
	} cases[] = { { 0, "0s" },	{ 1, "1ms" },	    { 200, "200ms" },
		      { 1000, "1s" },	{ 1500, "1500ms" }, { 60000, "1m" },
		      { 90000, "90s" }, { 3600000, "1h" },  { 5400000, "90m" } };
	char buf[32];
	(void)state;
	for (size_t i = 0; i < ELEMS(cases); i++) {
		uint64_t back;
		assert_string_equal(duration_format(cases[i].ms, buf, sizeof(buf)), cases[i].out);
		assert_int_equal(duration_parse(buf, &back), 0); /* every output reads back */
		assert_int_equal(back, cases[i].ms);
	}
}

static void test_signame_parse(void **state)
{
	const struct {
		const char *in;
		int sig; /* 0: must be rejected */
	} cases[] = {
		{ "SIGHUP", SIGHUP },
		{ "HUP", SIGHUP },
		{ "hup", SIGHUP },
		{ "sighup", SIGHUP },
		{ "1", SIGHUP },
		{ "SIGUSR1", SIGUSR1 },
		{ "USR2", SIGUSR2 },
		{ "15", SIGTERM },
		{ "SIGWINCH", SIGWINCH },
		{ "SIGIO", SIGIO },
		{ "POLL", SIGPOLL },
		{ "IOT", SIGABRT },
		{ "RTMIN", 34 }, /* glibc's numbering in every build (signame.h) */
		{ "SIGRTMIN", SIGNAME_RTMIN },
		{ "RTMIN+3", SIGNAME_RTMIN + 3 },
		{ "SIGRTMIN+3", SIGNAME_RTMIN + 3 },
		{ "rtmin+0", SIGNAME_RTMIN },
		{ "RTMAX", 64 },
		{ "RTMAX-2", SIGNAME_RTMAX - 2 },
		{ "64", 64 },
		{ "34", 34 },
		{ "0", 0 },
		{ "32", 0 },
		{ "33", 0 },
		{ "65", 0 },
		{ "-1", 0 },
		{ "FOO", 0 },
		{ "SIG", 0 },
		{ "", 0 },
		{ "RTMIN+31", 0 },
		{ "RTMAX+1", 0 },
		{ "RTMIN-1", 0 },
		{ "RTMIN3", 0 },
		{ "RTMIN+", 0 },
		{ "1x", 0 },
		{ "SIGHUPX", 0 },
		{ " HUP", 0 },
		{ "RTMIN++1", 0 },
	};
	(void)state;
	for (size_t i = 0; i < ELEMS(cases); i++) {
		int sig = -1;
		int r = signame_parse(cases[i].in, &sig);
		if (cases[i].sig == 0 && r != -EINVAL)
			fail_msg("signame_parse(\"%s\") accepted it as %d", cases[i].in, sig);
		if (cases[i].sig != 0 && (r != 0 || sig != cases[i].sig))
			fail_msg("signame_parse(\"%s\") = %d (%d), want %d", cases[i].in, r, sig,
				 cases[i].sig);
	}
}

static void test_signame_format(void **state)
{
	char buf[SIGNAME_MAX];
	(void)state;
	assert_string_equal(signame_format(SIGHUP, buf), "SIGHUP");
	assert_string_equal(signame_format(SIGUSR2, buf), "SIGUSR2");
	assert_string_equal(signame_format(SIGNAME_RTMIN, buf), "SIGRTMIN");
	assert_string_equal(signame_format(SIGNAME_RTMIN + 3, buf), "SIGRTMIN+3");
	/* every valid signal formats to a name that parses back to it */
	for (int sig = 1; sig <= SIGNAME_RTMAX; sig++) {
		int back;
		if (signame_parse(signame_format(sig, buf), &back) == 0)
			assert_int_equal(back, sig);
		else
			assert_true(sig == 32 || sig == 33);
	}
}

static void test_signame_default_kills(void **state)
{
	(void)state;
	assert_true(signame_default_kills(SIGHUP));
	assert_true(signame_default_kills(SIGUSR1));
	assert_true(signame_default_kills(SIGTERM));
	assert_true(signame_default_kills(SIGNAME_RTMIN + 1));
	assert_false(signame_default_kills(SIGWINCH));
	assert_false(signame_default_kills(SIGCHLD));
	assert_false(signame_default_kills(SIGCONT));
	assert_false(signame_default_kills(SIGKILL)); /* uncatchable: never wait for a handler */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_signame_parse),
		cmocka_unit_test(test_signame_format),
		cmocka_unit_test(test_signame_default_kills),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
