/* duration.h: "200ms", "5s", "1m", "2h" or "0" to milliseconds and back. */
#ifndef SIGRELOAD_DURATION_H
#define SIGRELOAD_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The longest duration accepted anywhere: one week. */
#define DURATION_MAX_MS (7ULL * 24 * 3600 * 1000)

/* Parses an integer followed by ms, s, m or h, or a bare "0". Returns 0, -EINVAL (syntax) or
 * -ERANGE (above DURATION_MAX_MS). */
int duration_parse(const char *s, uint64_t *out_ms);

/* Writes the shortest exact form ("1500ms", "2s", "0s") into buf and returns buf. */
char *duration_format(uint64_t ms, char *buf, size_t size);

#endif
