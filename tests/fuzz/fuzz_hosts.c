/* fuzz_hosts: hosts_find on arbitrary hosts-file text (a container's /etc/hosts is whatever its
 * image or runtime put there) and an arbitrary name: the input's first line is the name, the
 * rest the file. Beyond "no crash": the count is bounded, the list fits, and every entry in it
 * is an address inet_pton takes (IPv6 in brackets), as CURLOPT_RESOLVE needs. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "hosts.h"

static void check_list(const char *out, int n)
{
	char entry[HOSTS_LIST_MAX];
	unsigned char bin[sizeof(struct in6_addr)];
	int seen = 0;

	FUZZ_CHECK(strlen(out) < HOSTS_LIST_MAX, "list overflows");
	for (const char *p = out; *p; seen++) {
		size_t len = strcspn(p, ",");
		memcpy(entry, p, len);
		entry[len] = '\0';
		bool v6 = entry[0] == '[' && len > 2 && entry[len - 1] == ']';
		if (v6)
			entry[len - 1] = '\0';
		FUZZ_CHECK(inet_pton(v6 ? AF_INET6 : AF_INET, entry + v6, bin) == 1,
			   "\"%s\" in the list is not an address", entry);
		p += len + (p[len] == ',');
	}
	FUZZ_CHECK(seen == n, "%d entries listed, %d returned", seen, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nl = memchr(text, '\n', size);
	size_t name_len = nl ? (size_t)(nl - text) : size;
	char name[256], out[HOSTS_LIST_MAX];

	if (name_len >= sizeof(name) || memchr(text, '\0', name_len))
		return 0;
	memcpy(name, text, name_len);
	name[name_len] = '\0';
	size_t rest = nl ? size - name_len - 1 : 0;
	char *file = malloc(rest ? rest : 1); /* exactly its size: ASan sees a read past it */
	if (!file)
		return 0;
	memcpy(file, nl ? nl + 1 : text, rest);
	int n = hosts_find(file, rest, name, out);
	FUZZ_CHECK(n >= 0 && n <= HOSTS_MAX_ADDRS, "hosts_find returned %d", n);
	check_list(out, n);
	free(file);
	return 0;
}
