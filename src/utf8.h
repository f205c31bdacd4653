/* utf8.h: the one UTF-8 decoder, and the escaping of text that quotes a user's input. */
#ifndef SIGRELOAD_UTF8_H
#define SIGRELOAD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1 to 4) of the UTF-8 sequence at s, which has n bytes left, and its code point in
 * *out; 0 if it is not valid UTF-8 (overlong, a surrogate, above U+10FFFF, cut short). */
static inline size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *out)
{
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len = 0;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		len = 1;
	else if ((s[0] & 0xe0) == 0xc0)
		len = 2;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4;
	if (len == 0 || len > n)
		return 0;
	uint32_t c = len == 1 ? s[0] : s[0] & (0x7fu >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*out = c;
	return len;
}

/* A character that stands for itself on a terminal and in a YAML double-quoted scalar: not a
 * control character (C0, DEL, C1), not a line or paragraph separator, not a BOM. */
static inline bool utf8_printable(uint32_t c)
{
	return (c >= 0x20 && c <= 0x7e) ||
	       (c >= 0xa0 && c <= 0xd7ff && c != 0x2028 && c != 0x2029) ||
	       (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

/* s with every byte that is not printable UTF-8 written as \xNN (and U+0080 and above that is
 * not printable as \uNNNN), so that no message quoting input holds a newline or a terminal
 * escape. Returns a malloc'd string, or NULL (out of memory). */
char *utf8_escape(const char *s);

#endif
