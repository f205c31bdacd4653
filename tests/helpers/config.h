/* config.h: how the test helpers report the file they reload, one line's worth: what the
 * system tests' escaped() expects (tests/system/conftest.py). */
#ifndef SIGRELOAD_TEST_CONFIG_H
#define SIGRELOAD_TEST_CONFIG_H

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* The first 2 KiB of path, '\n' as "\n" and anything not printable (space and '\' included) as
 * "\xNN"; "-" when it cannot be read. O_NONBLOCK: a FIFO put in its place never blocks. */
static inline void read_config(const char *path, char *out, size_t size)
{
	char buf[2048];
	ssize_t n = -1;
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n < 0) {
		snprintf(out, size, "-");
		return;
	}
	size_t o = 0;
	for (ssize_t i = 0; i < n && o + 5 < size; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n')
			o += (size_t)snprintf(out + o, size - o, "\\n");
		else if (c < 0x21 || c >= 0x7f || c == '\\')
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

#endif
