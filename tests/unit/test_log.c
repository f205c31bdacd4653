/* Log lines: exact logfmt and JSON, and hostile values read back by decoders written here. */
#include "unit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"

#define VALUE_MAX  1024 /* log.c's VALUE_MAX_BYTES: longer values are cut, with "…" */
#define ELLIPSIS   "\xe2\x80\xa6"
#define MAX_FIELDS 64

typedef struct Decoded {
	size_t n;
	char *key[MAX_FIELDS];
	char *val[MAX_FIELDS]; /* strings as decoded; numbers and booleans as written */
	size_t len[MAX_FIELDS];
} Decoded;

static void decoded_done(Decoded *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->key[i]);
		free(d->val[i]);
	}
	*d = (Decoded){ 0 };
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t put_utf8(char *out, unsigned c)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	out[0] = (char)(0xe0 | c >> 12);
	out[1] = (char)(0x80 | (c >> 6 & 0x3f));
	out[2] = (char)(0x80 | (c & 0x3f));
	return 3;
}

/* Length of a valid UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))
			return 0; /* overlong, surrogate */
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

/* A JSON string (RFC 8259) at *p: raw text must be valid UTF-8 without control characters.
 * Returns the decoded bytes (malloc'd, NUL-terminated, *len set) or NULL if invalid. */
static char *json_string(const char **p, size_t *len)
{
	const char *s = *p;
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	assert_non_null(out);
	if (*s++ != '"')
		goto bad;
	while (*s != '"') {
		unsigned char c = (unsigned char)*s;
		if (c == '\0' || c < 0x20)
			goto bad;
		if (c != '\\') {
			size_t n = utf8_len((const unsigned char *)s);
			if (n == 0)
				goto bad;
			memcpy(o, s, n);
			o += n, s += n;
			continue;
		}
		s++;
		const char *esc = strchr("\"\\/bfnrt", *s);
		if (*s && esc) {
			*o++ = "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
			s++;
			continue;
		}
		if (*s != 'u')
			goto bad;
		unsigned v = 0;
		for (int i = 1; i <= 4; i++) {
			if (hexval(s[i]) < 0)
				goto bad;
			v = v << 4 | (unsigned)hexval(s[i]);
		}
		if (v >= 0xd800 && v <= 0xdfff)
			goto bad; /* log.c never writes surrogate pairs */
		o += put_utf8(o, v);
		s += 5;
	}
	*p = s + 1;
	*o = '\0';
	*len = (size_t)(o - out);
	return out;
bad:
	free(out);
	return NULL;
}

static void add_field(Decoded *d, char *key, char *val, size_t len)
{
	assert_true(d->n < MAX_FIELDS);
	d->key[d->n] = key;
	d->val[d->n] = val;
	d->len[d->n] = len;
	d->n++;
}

/* Parses one JSON line as log.c writes it: a flat object of strings, integers and booleans,
 * then '\n'. Returns false (with d cleared) if it is not valid JSON of that shape. */
static bool json_decode(const char *line, Decoded *d)
{
	const char *p = line;

	*d = (Decoded){ 0 };
	if (*p++ != '{')
		return false;
	for (;;) {
		size_t klen, vlen;
		char *key = json_string(&p, &klen), *val = NULL;
		if (!key || *p++ != ':')
			goto bad_key;
		if (*p == '"') {
			val = json_string(&p, &vlen);
		} else {
			size_t n = strspn(p, "-0123456789");
			if (n == 0 && strncmp(p, "true", 4) == 0)
				n = 4;
			else if (n == 0 && strncmp(p, "false", 5) == 0)
				n = 5;
			else if (n == 0 || strspn(p + (*p == '-'), "0123456789") != n - (*p == '-'))
				n = 0;
			if (n > 0) {
				val = strndup(p, n);
				vlen = n;
				p += n;
			}
		}
		if (!val)
			goto bad_key;
		add_field(d, key, val, vlen);
		if (*p == ',') {
			p++;
			continue;
		}
		if (p[0] == '}' && p[1] == '\n' && p[2] == '\0')
			return true;
		goto bad;
	bad_key:
		free(key);
		goto bad;
	}
bad:
	decoded_done(d);
	return false;
}

/* logfmt as log.c writes it: key=value separated by single spaces; a value is bare (no
 * blanks, '"', '=' or '\\') or quoted with JSON's escapes. */
static bool logfmt_decode(const char *line, Decoded *d)
{
	const char *p = line;

	*d = (Decoded){ 0 };
	while (*p && *p != '\n') {
		size_t klen = strcspn(p, "= \n\"");
		if (klen == 0 || p[klen] != '=')
			goto bad;
		char *key = strndup(p, klen), *val;
		size_t vlen;
		p += klen + 1;
		if (*p == '"') {
			val = json_string(&p, &vlen);
		} else {
			vlen = strcspn(p, " \n\"=\\");
			val = vlen ? strndup(p, vlen) : NULL; /* an empty value is written "" */
			p += vlen;
		}
		if (!val) {
			free(key);
			goto bad;
		}
		add_field(d, key, val, vlen);
		if (*p == ' ' && p[1] != '\n' && p[1] != ' ')
			p++;
		else if (*p != '\n')
			goto bad;
	}
	if (p[0] == '\n' && p[1] == '\0')
		return true;
bad:
	decoded_done(d);
	return false;
}

static bool decode(LogFormat format, const char *line, Decoded *d)
{
	return format == LOG_JSON ? json_decode(line, d) : logfmt_decode(line, d);
}

/* What a value should read back as: invalid UTF-8 bytes become U+FFFD, one each. */
static char *sanitised(const char *s)
{
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	assert_non_null(out);
	while (*s) {
		size_t n = utf8_len((const unsigned char *)s);
		if (n == 0) {
			o += put_utf8(o, 0xfffd);
			s++;
		} else {
			memcpy(o, s, n);
			o += n, s += n;
		}
	}
	*o = '\0';
	return out;
}

static const char *const formats[] = { "logfmt", "json" };

static void test_exact_lines(void **state)
{
	const LogField fields[] = { LF_STR("rule", "nginx"),
				    LF_STR("signal", "SIGHUP"),
				    LF_INT("pid", 8),
				    LF_INT("delta", -3),
				    LF_UINT("big", 18446744073709551615ULL),
				    LF_BOOL("ok", true),
				    LF_BOOL("dry", false),
				    LF_STR("path", "/etc/a b"),
				    LF_STR("empty", ""),
				    LF_STR("none", NULL),
				    LF_END };
	char buf[1024];
	(void)state;

	size_t n = log_format_line(buf, sizeof(buf), LOG_LOGFMT, "2026-01-02T03:04:05.678Z",
				   LEVEL_INFO, "signaled", fields);
	assert_string_equal(buf, "ts=2026-01-02T03:04:05.678Z level=info msg=\"signaled\" "
				 "rule=nginx signal=SIGHUP pid=8 delta=-3 big=18446744073709551615 "
				 "ok=true dry=false path=\"/etc/a b\" empty=\"\" none=\"\"\n");
	assert_int_equal(n, strlen(buf));
	n = log_format_line(buf, sizeof(buf), LOG_JSON, "2026-01-02T03:04:05.678Z", LEVEL_WARN,
			    "signaled", fields);
	assert_string_equal(buf, "{\"ts\":\"2026-01-02T03:04:05.678Z\",\"level\":\"warn\","
				 "\"msg\":\"signaled\",\"rule\":\"nginx\",\"signal\":\"SIGHUP\","
				 "\"pid\":8,\"delta\":-3,\"big\":18446744073709551615,\"ok\":true,"
				 "\"dry\":false,\"path\":\"/etc/a b\",\"empty\":\"\","
				 "\"none\":\"\"}\n");
	assert_int_equal(n, strlen(buf));

	/* no fields at all, every level */
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	for (LogLevel l = LEVEL_DEBUG; l <= LEVEL_ERROR; l++) {
		_cleanup_free_ char *want = NULL;
		log_format_line(buf, sizeof(buf), LOG_LOGFMT, "T", l, "m", NULL);
		assert_true(asprintf(&want, "ts=T level=%s msg=\"m\"\n", levels[l]) > 0);
		assert_string_equal(buf, want);
	}
	log_format_line(buf, sizeof(buf), LOG_JSON, "T", LEVEL_ERROR, "m", (LogField[]){ LF_END });
	assert_string_equal(buf, "{\"ts\":\"T\",\"level\":\"error\",\"msg\":\"m\"}\n");
}

/* Exact escapes: what a user greps for must be stable. */
static void test_exact_escapes(void **state)
{
	static const struct {
		const char *in, *logfmt, *json;
	} cases[] = {
		{ "plain", "plain", "\"plain\"" },
		{ "a b", "\"a b\"", "\"a b\"" },
		{ "a=b", "\"a=b\"", "\"a=b\"" },
		{ "=", "\"=\"", "\"=\"" },
		{ "say \"hi\"", "\"say \\\"hi\\\"\"", "\"say \\\"hi\\\"\"" },
		{ "C:\\dir\\", "\"C:\\\\dir\\\\\"", "\"C:\\\\dir\\\\\"" },
		{ "a\nb\rc\td", "\"a\\nb\\rc\\td\"", "\"a\\nb\\rc\\td\"" },
		{ "\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"", "\"\\u0001\\u001f\\u007f\"" },
		{ "\xff", "\"\\ufffd\"", "\"\\ufffd\"" },
		{ "caf\xc3\xa9", "\"caf\xc3\xa9\"", "\"caf\xc3\xa9\"" },
		{ "\xc3", "\"\\ufffd\"", "\"\\ufffd\"" },
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"", "\"\\ufffd\\ufffd\\ufffd\"" },
		{ "", "\"\"", "\"\"" },
		{ "-", "-", "\"-\"" },
		{ "/etc/nginx/conf.d", "/etc/nginx/conf.d", "\"/etc/nginx/conf.d\"" },
	};
	char buf[256];
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		const LogField f[] = { LF_STR("v", cases[i].in), LF_END };
		_cleanup_free_ char *l = NULL, *j = NULL;
		assert_true(asprintf(&l, "ts=T level=info msg=\"m\" v=%s\n", cases[i].logfmt) > 0);
		assert_true(asprintf(&j,
				     "{\"ts\":\"T\",\"level\":\"info\",\"msg\":\"m\","
				     "\"v\":%s}\n",
				     cases[i].json) > 0);
		log_format_line(buf, sizeof(buf), LOG_LOGFMT, "T", LEVEL_INFO, "m", f);
		assert_string_equal(buf, l);
		log_format_line(buf, sizeof(buf), LOG_JSON, "T", LEVEL_INFO, "m", f);
		assert_string_equal(buf, j);
	}
}

static char *repeat(const char *unit, size_t times)
{
	size_t n = strlen(unit);
	char *s = malloc(n * times + 1);

	assert_non_null(s);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * n, unit, n);
	s[n * times] = '\0';
	return s;
}

/* Checks that value v, in field "v" and as msg, reads back as itself (or, past VALUE_MAX, as a
 * prefix of itself and an ellipsis), in both formats. */
static void check_round_trip(const char *v)
{
	_cleanup_free_ char *want = sanitised(v);
	char buf[8192];

	for (LogFormat format = LOG_LOGFMT; format <= LOG_JSON; format++) {
		const LogField f[] = { LF_STR("v", v), LF_INT("after", 7), LF_END };
		Decoded d;
		log_format_line(buf, sizeof(buf), format, "T", LEVEL_INFO, v, f);
		if (!decode(format, buf, &d))
			fail_msg("%s line for value \"%s\" does not decode:\n%s", formats[format],
				 v, buf);
		assert_int_equal(d.n, 5);
		assert_string_equal(d.key[2], "msg");
		assert_string_equal(d.key[3], "v");
		assert_string_equal(d.key[4], "after");
		assert_string_equal(d.val[4], "7"); /* a long value does not crowd out the rest */
		for (size_t i = 2; i <= 3; i++) {
			const char *got = d.val[i];
			size_t len = d.len[i];
			assert_int_equal(len, strlen(got)); /* no NUL smuggled in */
			if (strcmp(got, want) == 0)
				continue;
			/* cut: a prefix of the value, then "…", never a short value */
			size_t el = strlen(ELLIPSIS);
			if (len < el || strcmp(got + len - el, ELLIPSIS) != 0 ||
			    strncmp(got, want, len - el) != 0 || strlen(want) <= len - el ||
			    strlen(v) <= VALUE_MAX / 6)
				fail_msg("%s: \"%s\" read back as \"%s\"", formats[format], v, got);
		}
		/* the cut is at a character boundary, near the cap */
		assert_true(strlen(buf) < 2 * (VALUE_MAX + 16) + 64);
		decoded_done(&d);
	}
}

static void test_hostile_values(void **state)
{
	static const char *const values[] = {
		"",
		" ",
		"  two  ",
		"\"",
		"\"\"",
		"\\",
		"\\\"",
		"a\"b\\c",
		"=",
		"a=b=c",
		"key=value other=x",
		"\n",
		"line1\nline2\r\n",
		"\t\v\f\b",
		"\x01\x02\x1b[31mred\x1b[0m",
		"\x7f",
		"\xff\xfe\xfd",
		"\xc3",
		"\xc3(",
		"\xc0\xaf",
		"\xe0\x80\xaf",
		"\xed\xa0\x80",
		"\xf4\x90\x80\x80",
		"\xf0\x9f\x94\xa7 tool",
		"caf\xc3\xa9 \xe8\xa8\xad\xe5\xae\x9a",
		"\xe2\x80\xa8\xe2\x80\xa9",
		"msg=\"forged\" level=error",
		"\",\"level\":\"error",
		"}{",
		"true",
		"-1",
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(values); i++)
		check_round_trip(values[i]);
}

static void test_long_values(void **state)
{
	static const struct {
		const char *unit;
		size_t times;
	} cases[] = {
		{ "a", VALUE_MAX - 1 }, { "a", VALUE_MAX },	 { "a", VALUE_MAX + 1 },
		{ "a", 5000 },		{ "\x01", 2000 },	 { "\"", 3000 },
		{ "\xc3\xa9", 1000 },	{ "\xe8\xa8\xad", 700 }, { "\xf0\x9f\x94\xa7", 600 },
		{ "\xff", 2000 },	{ "ab\xc3\xa9\n", 500 }, { "x y", 2000 },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		_cleanup_free_ char *v = repeat(cases[i].unit, cases[i].times);
		check_round_trip(v);
	}
}

/* More fields than the line holds: the line stays valid, and says it was cut. */
static void test_line_overflow(void **state)
{
	_cleanup_free_ char *big = repeat("x", 1000);
	_cleanup_free_ char *esc = repeat("\x01", 1000);
	LogField fields[40];
	(void)state;

	for (size_t i = 0; i < ELEMS(fields) - 1; i++)
		fields[i] = LF_STR("f", i % 2 ? esc : big);
	fields[ELEMS(fields) - 1] = LF_END;
	for (size_t size = LOG_LINE_MIN; size <= 8192; size = size * 3 / 2) {
		for (LogFormat format = LOG_LOGFMT; format <= LOG_JSON; format++) {
			_cleanup_free_ char *buf = malloc(size);
			Decoded d;
			assert_non_null(buf);
			size_t n = log_format_line(buf, size, format, "2026-01-02T03:04:05.678Z",
						   LEVEL_INFO, "signaled", fields);
			assert_true(n < size);
			assert_int_equal(n, strlen(buf));
			if (!decode(format, buf, &d))
				fail_msg("%s line in %zu bytes does not decode:\n%s",
					 formats[format], size, buf);
			assert_string_equal(d.key[d.n - 1], "truncated");
			assert_string_equal(d.val[d.n - 1], "true");
			/* fields are whole or absent: none is cut by the end of the line */
			for (size_t i = 3; i + 1 < d.n; i++) {
				const char *v = d.val[i];
				size_t ctl = strspn(v, "\x01");
				if ((i - 3) % 2 == 0)
					assert_string_equal(v, big);
				else if (ctl * 6 < VALUE_MAX - 6 || strcmp(v + ctl, ELLIPSIS) != 0)
					fail_msg("field %zu is \"%s\" (%zu bytes)", i, v, d.len[i]);
			}
			assert_true(d.n > 3 || size < 200);
			decoded_done(&d);
		}
	}
}

/* Below LOG_LINE_MIN nothing is written, and nothing is written past size. */
static void test_small_buffers(void **state)
{
	char buf[LOG_LINE_MIN + 8];
	const LogField f[] = { LF_STR("k", "v"), LF_END };
	(void)state;

	for (size_t size = 0; size < sizeof(buf) - 4; size++) {
		memset(buf, '#', sizeof(buf));
		size_t n = log_format_line(buf, size, LOG_JSON, "T", LEVEL_INFO, "m", f);
		for (size_t i = size; i < sizeof(buf); i++)
			assert_int_equal(buf[i], '#');
		if (size < LOG_LINE_MIN) {
			assert_int_equal(n, 0);
			continue;
		}
		Decoded d;
		assert_true(json_decode(buf, &d));
		decoded_done(&d);
	}
}

static void test_parse_names(void **state)
{
	LogFormat f;
	LogLevel l;
	(void)state;

	assert_int_equal(log_format_parse("logfmt", &f), 0);
	assert_int_equal(f, LOG_LOGFMT);
	assert_int_equal(log_format_parse("json", &f), 0);
	assert_int_equal(f, LOG_JSON);
	assert_int_equal(log_format_parse("JSON", &f), -EINVAL);
	assert_int_equal(log_format_parse("", &f), -EINVAL);
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LEVEL_DEBUG);
	assert_int_equal(log_level_parse("error", &l), 0);
	assert_int_equal(l, LEVEL_ERROR);
	assert_int_equal(log_level_parse("warning", &l), -EINVAL);
	assert_string_equal(log_format_name(LOG_JSON), "json");
	assert_string_equal(log_level_name(LEVEL_WARN), "warn");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_lines),    cmocka_unit_test(test_exact_escapes),
		cmocka_unit_test(test_hostile_values), cmocka_unit_test(test_long_values),
		cmocka_unit_test(test_line_overflow),  cmocka_unit_test(test_small_buffers),
		cmocka_unit_test(test_parse_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
