/* hosts(5) lookups: what a name resolves to when libcurl may not resolve it itself. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "hosts.h"

static void test_find(void **state)
{
	static const struct {
		const char *text, *name;
		int n;
		const char *out;
	} cases[] = {
		{ "127.0.0.1 localhost\n::1 localhost ip6-localhost\n", "localhost", 2,
		  "127.0.0.1,[::1]" },
		{ "10.0.0.7\tprom.monitoring.svc prom  # the pod\n", "prom", 1, "10.0.0.7" },
		{ "10.0.0.7 Prom.Example\n", "prom.example", 1, "10.0.0.7" }, /* case ignored */
		{ "# 10.0.0.1 prom\n10.0.0.2 other # prom\n", "prom", 0, "" }, /* comments */
		{ "10.0.0.1 prom-a\n", "prom", 0, "" }, /* whole names only */
		{ "prom 10.0.0.1\n", "prom", 0, "" }, /* the address comes first */
		{ "10.0.0.1\n", "10.0.0.1", 0, "" }, /* an address alone names nothing */
		{ "300.1.1.1 prom\nfe80::1%eth0 prom\n10.0.0.3 prom", "prom", 1,
		  "10.0.0.3" }, /* not addresses; a last line without '\n' */
		{ "10.0.0.1 a\r\n10.0.0.2\tb\t\r\n", "b", 1, "10.0.0.2" }, /* CRLF, tabs */
		{ "", "prom", 0, "" },
		{ "10.0.0.1 prom\n", "", 0, "" },
	};
	char out[HOSTS_LIST_MAX];
	(void)state;
	for (size_t i = 0; i < ELEMS(cases); i++) {
		int n = hosts_find(cases[i].text, strlen(cases[i].text), cases[i].name, out);
		if (n != cases[i].n || strcmp(out, cases[i].out) != 0)
			fail_msg("case %zu (%s): %d \"%s\", want %d \"%s\"", i, cases[i].name, n,
				 out, cases[i].n, cases[i].out);
	}
}

/* The list is bounded, however many lines name the host, and always fits. */
static void test_many(void **state)
{
	char out[HOSTS_LIST_MAX], text[8192] = "";
	(void)state;
	for (int i = 0; i < 40; i++) {
		char line[96];
		snprintf(line, sizeof(line), "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.%d many\n",
			 i);
		strcat(text, line);
	}
	assert_int_equal(hosts_find(text, strlen(text), "many", out), HOSTS_MAX_ADDRS);
	assert_true(strlen(out) < HOSTS_LIST_MAX);
	assert_non_null(strstr(out, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.7]"));
	assert_null(strstr(out, "255.255.255.8]"));
}

static void test_lookup_file(void **state)
{
	const char *dir = *state;
	char *path = xasprintf("%s/hosts", dir), *big = xasprintf("%s/big", dir);
	char out[HOSTS_LIST_MAX];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	static const char text[] = "192.0.2.9 sink\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
	close(fd);
	assert_int_equal(hosts_lookup(path, "sink", out), 1);
	assert_string_equal(out, "192.0.2.9");
	assert_int_equal(hosts_lookup(dir, "sink", out), -EINVAL); /* not a regular file */
	assert_int_equal(hosts_lookup(big, "sink", out), -ENOENT);
	assert_int_equal(truncate(path, HOSTS_MAX_BYTES + 1), 0);
	assert_int_equal(hosts_lookup(path, "sink", out), -EFBIG);
	free(path);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_many),
		cmocka_unit_test_setup_teardown(test_lookup_file, tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
