/* satoken.c: spotting a projected service-account token among the files a rule watches. */
#include "satoken.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

#define TOKEN_MAX (16 * 1024) /* a bound token is about 1 KiB; a larger file is no token */

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes unpadded base64url into out (NUL-terminated). Returns the length, or -1 when in is
 * not base64url or out is too small. */
static ssize_t b64url_decode(const char *in, size_t len, char *out, size_t size)
{
	unsigned bits = 0, nbits = 0;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);
		if (v < 0)
			return -1;
		bits = (bits << 6) | (unsigned)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			if (n + 1 >= size)
				return -1;
			out[n++] = (char)((bits >> nbits) & 0xff);
		}
	}
	out[n] = '\0';
	return (ssize_t)n;
}

bool satoken_is_projected(const char *buf, size_t len)
{
	char claims[TOKEN_MAX];
	const char *dot1, *dot2, *end = buf + len;

	while (end > buf && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	for (const char *p = buf; p < end; p++)
		if (*p != '.' && b64url_value((unsigned char)*p) < 0)
			return false;
	/* header.claims.signature, the header a JSON object ("eyJ" is base64 of "{\"") */
	if (end - buf < 3 || memcmp(buf, "eyJ", 3) != 0 || !(dot1 = memchr(buf, '.', end - buf)) ||
	    !(dot2 = memchr(dot1 + 1, '.', end - dot1 - 1)) ||
	    memchr(dot2 + 1, '.', end - dot2 - 1))
		return false;
	if (b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), claims, sizeof(claims)) < 0)
		return false;
	/* the claims of a token from the TokenRequest API: {"aud":[..],"exp":..,
	 * "kubernetes.io":{"namespace":..,"pod":..,"serviceaccount":..},..} */
	return strstr(claims, "\"kubernetes.io\":") && strstr(claims, "\"exp\":");
}

/* 1 if the regular file name (relative to dirfd) is a projected token. */
static int file_is_token(int dirfd, const char *name)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	char buf[TOKEN_MAX];
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT || errno == EACCES ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size > TOKEN_MAX)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno;
	return satoken_is_projected(buf, (size_t)n);
}

int satoken_find(const char *path, char *found, size_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *keys = NULL;
	struct dirent *de;
	int r = 0;

	if (fd < 0) {
		/* a file (or nothing yet): only itself can be a token */
		r = errno == ENOTDIR ? file_is_token(AT_FDCWD, path) : 0;
		if (r == 1)
			snprintf(found, size, "%s", path);
		return r;
	}
	/* a volume's keys, as the kubelet last switched them in */
	int data = openat(fd, "..data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (data < 0)
		return 0;
	if (!(keys = fdopendir(data))) {
		close(data);
		return -errno;
	}
	for (size_t seen = 0; r == 0 && seen < SATOKEN_MAX_KEYS && (de = readdir(keys)); seen++) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.'))
			continue; /* ".", ".." and the kubelet's own names */
		r = file_is_token(dirfd(keys), de->d_name);
		if (r == 1)
			snprintf(found, size, "%s/%s", path, de->d_name);
	}
	return r;
}
