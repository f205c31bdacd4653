/* The regex cost check: each refusal, and a search of pattern families for the costliest
 * patterns it lets through, each held to a few MiB of memory when glibc compiles and runs it. */
#include "unit.h"

#include <errno.h>
#include <regex.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "match.h"

/* What any pattern that passes may cost to compile and run (the chart's limit is 32 MiB). */
#define BUDGET_BYTES (8L << 20)

static void test_refusals(void **state)
{
	static const struct {
		const char *re, *why; /* why: a part of the refusal, or NULL: accepted */
	} cases[] = {
		{ "(a)\\1", "back-references such as \\1 are not supported" },
		{ "^(x)(y)\\2$", "back-references such as \\2 are not supported" },
		{ "a+*", "a repetition of a repetition" },
		{ "a**", "a repetition of a repetition" },
		{ "a?+", "a repetition of a repetition" },
		{ "(a){3}{2}", "a repetition of a repetition" },
		{ "x{2}*", "a repetition of a repetition" },
		{ "(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))",
		  "more than 32 nested groups" },
		{ "(a{64}){65}", "expand to more than 4096 copies" },
		{ "[0-9]{4097}", "a bound over 255" },
		{ "[0-9]{256}", "a bound over 255" },
		{ "x{1,256}", "a bound over 255" },
		{ "x{256,}", "a bound over 255" },
		{ "((abcdefgh){64}){9}", "expand to more than 4096 copies" },
		{ "((a|b|c|d|e|f|g|h){64}){9}", "expand to more than 4096 copies" },
		{ "((.*){1,63}){1,63}", "more than 128 copies that may match nothing" },
		{ "(a?){129}", "more than 128 copies that may match nothing" },
		{ ".{0,129}", "more than 128 copies that may match nothing" },
		{ "(a|){129}", "more than 128 copies that may match nothing" },
		{ "(.*){1,129}", "more than 128 copies that may match nothing" },
		{ "x{1,}(y?){200}", "more than 128 copies that may match nothing" },
		{ "a{32769}", "a bound over 255" }, /* beyond glibc's RE_DUP_MAX */
		/* accepted: what cmdline patterns look like, and the limits themselves */
		{ "^nginx: master process", NULL },
		{ "(^| )-W( |$)", NULL },
		{ "[0-9a-f]{64}", NULL },
		{ "[0-9]{1,3}(\\.[0-9]{1,3}){3}", NULL },
		{ "(a?){128}", NULL },
		{ ".{0,128}", NULL },
		{ "x{255}", NULL },
		{ "x{0,64}y{255,}", NULL },
		{ "((abcdefgh){64}){8}", NULL },
		{ "[]a]+[^]b]*\\(x\\)", NULL },
		{ "[[:alpha:]][[:digit:]]{5}", NULL },
		{ "(", NULL }, /* not refused here: regcomp explains it */
		{ "[abc", NULL },
		{ "x[[",
		  NULL }, /* a '[' at the very end of an open bracket: nothing read past it */
		{ "[a[:", NULL },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		char err[256] = "";
		int r = match_regex_check(cases[i].re, err, sizeof(err));
		if (!cases[i].why && r != 0)
			fail_msg("%s: refused (%s), want accepted", cases[i].re, err);
		if (cases[i].why && (r != -EINVAL || !strstr(err, cases[i].why)))
			fail_msg("%s: %d \"%s\", want -EINVAL \"%s\"", cases[i].re, r, err,
				 cases[i].why);
	}
}

/* Families of patterns that glibc's regcomp expands or closes over at a cost: "%d" is the
 * repeat count (or copies) swept below. */
static const char *const families[] = {
	"(.*){%d}",
	"(.*){1,%d}",
	"((.*){1,%d}){1,16}",
	"(a?){%d}",
	".{0,%d}",
	"(a|){%d}",
	"([^x]*){%d}",
	"(a*b*){%d}",
	"(a|b?|c*){%d}",
	"([[:alpha:]]?){%d}",
	"(.?){%d}x",
	"((a?){%d}){2}",
	"(a{0,%d}){4}",
	"(x.*y.*){%d}",
	"(a{1,%d}){1,4}",
	"((a|b|c|d)?){%d}",
	"(.*.*.*.*){%d}",
	"[a-z]{%d}",
	"(a|b){%d,}",
	"((.*)*){%d}",
	"(^|$|a?){%d}",
	"(a{%d}){2}",
	"([ab]{1,%d}c){1,8}",
	"(()){%d}",
	"(a|b|c){1,%d}(d|e){1,%d}",
};

/* Patterns repeated by concatenation rather than by a bound. */
static const char *const pieces[] = { "a?", "(.*)", "(.?)", ".*", "(^|a)", "(|)", "x" };

static const int counts[] = { 2, 16, 32, 64, 100, 127, 128, 129, 255, 256, 300, 512, 1000, 4096 };

static long vm_bytes(void)
{
	long pages = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &pages), 1);
	fclose(f);
	return pages * sysconf(_SC_PAGESIZE);
}

/* In a child with BUDGET_BYTES more address space than it has: compile re and run it over a
 * long command line. Returns the child's exit status: 0 when both fit. */
static int compile_in_budget(const char *re)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { vm_bytes() + BUDGET_BYTES, vm_bytes() + BUDGET_BYTES };
		char line[4097];
		regex_t rx;
		memset(line, 'a', sizeof(line) - 1);
		line[sizeof(line) - 1] = '\0';
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			_exit(3);
		if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
			_exit(1);
		if (regexec(&rx, line, 0, NULL, 0) == REG_ESPACE)
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void try_pattern(const char *re, size_t *tried)
{
	char err[256];

	if (strlen(re) > 1024 || match_regex_check(re, err, sizeof(err)) < 0)
		return;
	(*tried)++;
	int r = compile_in_budget(re);
	if (r != 0)
		fail_msg("%s passes the check but needs more than %ld MiB (child: %d)", re,
			 BUDGET_BYTES >> 20, r);
}

static void test_worst_survivors_fit_the_budget(void **state)
{
	size_t tried = 0;
	char re[8192];
	(void)state;

#if defined(__SANITIZE_ADDRESS__)
	skip(); /* the sanitizer's shadow memory does not fit in an address-space limit */
#endif
	for (size_t f = 0; f < ELEMS(families); f++)
		for (size_t c = 0; c < ELEMS(counts); c++) {
			/* a family with two counts gets the same one twice */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			snprintf(re, sizeof(re), families[f], counts[c], counts[c]);
#pragma GCC diagnostic pop
			try_pattern(re, &tried);
		}
	for (size_t p = 0; p < ELEMS(pieces); p++)
		for (size_t c = 0; c < ELEMS(counts); c++) {
			re[0] = '\0';
			for (int i = 0; i < counts[c] && strlen(re) + 8 < sizeof(re); i++)
				strcat(re, pieces[p]);
			try_pattern(re, &tried);
		}
	/* a search that tries nothing proves nothing */
	if (tried < 100)
		fail_msg("only %zu patterns passed the check: widen the families", tried);
}

/* A pattern beyond the budget is caught by the harness: the test can fail. */
static void test_budget_catches_a_costly_pattern(void **state)
{
	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	skip();
#endif
	assert_int_not_equal(compile_in_budget("(a?){1500}"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_worst_survivors_fit_the_budget),
		cmocka_unit_test(test_budget_catches_a_costly_pattern),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
