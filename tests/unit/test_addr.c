/* The metrics_listen syntax: every form accepted, and what is refused (no name resolution). */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "addr.h"

static void test_addresses(void **state)
{
	static const struct {
		const char *s;
		int family; /* AF_UNSPEC: every interface; -1: refused */
		const char *host;
		unsigned port;
	} cases[] = {
		{ ":9533", AF_UNSPEC, NULL, 9533 },
		{ ":0", AF_UNSPEC, NULL, 0 },
		{ ":65535", AF_UNSPEC, NULL, 65535 },
		{ "127.0.0.1:9533", AF_INET, "127.0.0.1", 9533 },
		{ "0.0.0.0:80", AF_INET, "0.0.0.0", 80 },
		{ "localhost:9533", AF_INET, "127.0.0.1", 9533 },
		{ "[::1]:9533", AF_INET6, "::1", 9533 },
		{ "[::]:1", AF_INET6, "::", 1 },
		{ "[::ffff:10.0.0.1]:8080", AF_INET6, "::ffff:10.0.0.1", 8080 },
		{ "127.0.0.1:080", AF_INET, "127.0.0.1", 80 },
		{ "", -1, NULL, 0 },
		{ ":", -1, NULL, 0 },
		{ "9533", -1, NULL, 0 },
		{ ":65536", -1, NULL, 0 },
		{ ":99999999999", -1, NULL, 0 },
		{ ":+80", -1, NULL, 0 },
		{ ":-1", -1, NULL, 0 },
		{ ":80 ", -1, NULL, 0 },
		{ "127.0.0.1", -1, NULL, 0 },
		{ "127.0.0.1:", -1, NULL, 0 },
		{ "127.0.0.256:80", -1, NULL, 0 },
		{ "example.com:80", -1, NULL, 0 }, /* host names are not resolved */
		{ "::1:80", -1, NULL, 0 }, /* IPv6 needs its brackets */
		{ "[::1]", -1, NULL, 0 },
		{ "[::1]80", -1, NULL, 0 },
		{ "[::1:80", -1, NULL, 0 },
		{ "[127.0.0.1]:80", -1, NULL, 0 },
		{ "[]:80", -1, NULL, 0 },
		{ "[fe80::1%eth0]:80", -1, NULL, 0 },
		{ "1111111111111111111111111111111111111111111111111111111111111111:80", -1, NULL,
		  0 },
		{ "[1111:1111:1111:1111:1111:1111:1111:1111:1111:1111:1111:1111:1111:1]:80", -1,
		  NULL, 0 },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		ListenAddr a;
		char host[INET6_ADDRSTRLEN] = "";
		int r = addr_parse(cases[i].s, &a);
		if (cases[i].family < 0) {
			if (r != -EINVAL)
				fail_msg("\"%s\": %d, want -EINVAL", cases[i].s, r);
			continue;
		}
		if (r != 0)
			fail_msg("\"%s\": %d, want 0", cases[i].s, r);
		assert_int_equal(a.ss.ss_family, cases[i].family);
		assert_int_equal(a.port, cases[i].port);
		if (cases[i].family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&a.ss;
			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			assert_int_equal(ntohs(in->sin_port), cases[i].port);
			assert_int_equal(a.len, sizeof(*in));
		} else if (cases[i].family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.ss;
			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			assert_int_equal(ntohs(in6->sin6_port), cases[i].port);
			assert_int_equal(a.len, sizeof(*in6));
		}
		if (cases[i].host)
			assert_string_equal(host, cases[i].host);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
