/* utf8.c: escaping text that quotes a user's input (the decoder is inline in utf8.h). */
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *utf8_escape(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), size = 0;
	char *out = NULL;
	FILE *f = open_memstream(&out, &size);
	uint32_t c;

	if (!f)
		return NULL;
	while (n > 0) {
		size_t len = utf8_decode(p, n, &c);
		if (len == 0 || (c < 0x80 && !utf8_printable(c)))
			fprintf(f, "\\x%02x", *p), len = 1;
		else if (!utf8_printable(c))
			fprintf(f, "\\u%04x", (unsigned)c);
		else
			fwrite(p, 1, len, f);
		p += len;
		n -= len;
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}
