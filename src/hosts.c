/* hosts.c: hosts(5) lookups, so that names listed there need no resolver. */
#include "hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* The next field of a line [*p, end): its start and length; 0 at the line's end. */
static size_t field(const char **p, const char *end, const char **start)
{
	while (*p < end && blank(**p))
		(*p)++;
	*start = *p;
	while (*p < end && !blank(**p))
		(*p)++;
	return (size_t)(*p - *start);
}

/* Appends addr (len bytes, not NUL-terminated) when it is an address: 1 if it was, else 0. */
static int append(char *out, const char *addr, size_t len)
{
	char text[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t used = strlen(out);

	if (len >= sizeof(text))
		return 0;
	memcpy(text, addr, len);
	text[len] = '\0';
	bool v4 = inet_pton(AF_INET, text, bin) == 1;
	if (!v4 && inet_pton(AF_INET6, text, bin) != 1)
		return 0;
	snprintf(out + used, HOSTS_LIST_MAX - used, v4 ? "%s%s" : "%s[%s]", used ? "," : "", text);
	return 1;
}

/* Whether the line [p, end) lists name after its address; the address is returned. */
static bool line_names(const char *p, const char *end, const char *name, const char **addr,
		       size_t *addr_len)
{
	size_t name_len = strlen(name), n;
	const char *f;

	*addr_len = field(&p, end, addr);
	if (*addr_len == 0)
		return false;
	while ((n = field(&p, end, &f)) > 0)
		if (n == name_len && strncasecmp(f, name, n) == 0)
			return true;
	return false;
}

int hosts_find(const char *buf, size_t len, const char *name, char out[HOSTS_LIST_MAX])
{
	const char *end = buf + len, *addr;
	size_t addr_len;
	int found = 0;

	out[0] = '\0';
	if (!*name)
		return 0;
	for (const char *line = buf; line < end && found < HOSTS_MAX_ADDRS;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *stop = nl ? nl : end;
		const char *hash = memchr(line, '#', (size_t)(stop - line));
		/* a NUL ends the line too: nothing after it is what the resolver would read */
		const char *nul = memchr(line, '\0', (size_t)(stop - line));
		const char *text_end = hash ? hash : stop;
		if (nul && nul < text_end)
			text_end = nul;
		if (line_names(line, text_end, name, &addr, &addr_len))
			found += append(out, addr, addr_len);
		line = nl ? nl + 1 : end;
	}
	return found;
}

int hosts_lookup(const char *path, const char *name, char out[HOSTS_LIST_MAX])
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (!(buf = malloc(HOSTS_MAX_BYTES + 1)))
		return -ENOMEM;
	/* read to the end rather than trust st_size: a file may be rewritten meanwhile */
	for (;;) {
		ssize_t n = read(fd, buf + len, HOSTS_MAX_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > HOSTS_MAX_BYTES)
			return -EFBIG;
	}
	return hosts_find(buf, len, name, out);
}
