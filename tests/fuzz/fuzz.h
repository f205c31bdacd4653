/* fuzz.h: what the libFuzzer targets share: a failed invariant aborts with a message, so that
 * libFuzzer saves the input that broke it, exactly as it does for a sanitizer report. */
#ifndef SIGRELOAD_FUZZ_H
#define SIGRELOAD_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("INVARIANT BROKEN: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(__VA_ARGS__);                                                    \
	} while (0)

#endif
