/* duration.c: the rule file's duration syntax. */
#include "duration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *unit;
	uint64_t ms;
} units[] = { { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 } };

int duration_parse(const char *s, uint64_t *out_ms)
{
	uint64_t n = 0;
	const char *p = s;

	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > DURATION_MAX_MS)
			return -ERANGE; /* keep consuming digits would overflow */
		n = n * 10 + (uint64_t)(*p - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) != 0)
			continue;
		if (n > DURATION_MAX_MS / units[i].ms)
			return -ERANGE;
		*out_ms = n * units[i].ms;
		return 0;
	}
	return -EINVAL;
}

char *duration_format(uint64_t ms, char *buf, size_t size)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms != 0 && ms % units[i].ms == 0) {
			snprintf(buf, size, "%llu%s", (unsigned long long)(ms / units[i].ms),
				 units[i].unit);
			return buf;
		}
	snprintf(buf, size, "0s");
	return buf;
}
