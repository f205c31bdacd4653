/* fuzz_cmreload: configmap-reload's flags, as arbitrary argv (the input split at NUL bytes),
 * taken out of argv and written as a rule file. Beyond "no crash, no leak": what is not taken
 * stays in order, and whatever a value holds (quotes, backslashes, newlines, any byte), the
 * rule file has exactly one line per line it says it wrote, each printable but for its '\n':
 * no value can end its YAML scalar or its line early. */
#include <errno.h>
#include <string.h>

#include "cmreload.h"
#include "fuzz.h"

#define MAX_ARGS 64

static void check_text(const CmReloadText *t)
{
	size_t lines = 0;

	for (const unsigned char *p = (const unsigned char *)t->text; *p; p++) {
		lines += *p == '\n';
		FUZZ_CHECK(*p == '\n' || (*p >= 0x20 && *p != 0x7f), "raw byte 0x%02x in the file",
			   *p);
	}
	FUZZ_CHECK(lines == t->n_lines, "%zu lines written, %zu said", lines, t->n_lines);
	FUZZ_CHECK(t->text[0] == '\0' || t->text[strlen(t->text) - 1] == '\n',
		   "the last line is not ended");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[MAX_ARGS + 2] = { "run" }, *copy[MAX_ARGS + 2];
	int argc = 1;
	CmReload c = { 0 };
	CmReloadText t;
	char err[512];

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf; p < buf + size && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	memcpy(copy, argv, sizeof(argv));
	int taken = cmreload_take(&argc, argv, &c, err, sizeof(err));
	FUZZ_CHECK(taken >= -EINVAL, "cmreload_take returned %d", taken);
	if (taken >= 0) {
		FUZZ_CHECK(argv[argc] == NULL, "argv not NULL-terminated");
		/* what is left is a subsequence of what came, in order */
		for (int i = 0, j = 0; i < argc; i++, j++) {
			while (copy[j] && copy[j] != argv[i])
				j++;
			FUZZ_CHECK(copy[j], "argv[%d] was not in the input, or moved", i);
		}
		if (cmreload_rules(&c, &t, err, sizeof(err)) == 0) {
			check_text(&t);
			cmreload_text_done(&t);
		}
	}
	cmreload_done(&c);
	free(buf);
	return 0;
}
