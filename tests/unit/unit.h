/* unit.h: what every cmocka unit test needs. */
#ifndef SIGRELOAD_UNIT_H
#define SIGRELOAD_UNIT_H

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs setjmp.h, stdarg.h, stddef.h and stdint.h first */
#include <cmocka.h>

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* asprintf that fails the test rather than return NULL. */
static inline char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	assert_true(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return s;
}

static inline int unit_remove_entry(const char *path, const struct stat *st, int flag,
				    struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Removes dir and everything in it, never following a symlink out of it. */
static inline int remove_tree(const char *dir)
{
	return nftw(dir, unit_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* cmocka fixtures: a fresh directory per test in *state, removed with everything in it even
 * when the test fails. */
static inline int tmpdir_setup(void **state)
{
	char *dir = strdup("/tmp/sigreload-unit-XXXXXX");

	if (!dir || !mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static inline int tmpdir_teardown(void **state)
{
	int r = remove_tree(*state);
	free(*state);
	return r;
}

#endif
