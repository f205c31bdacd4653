/* log.c: structured log lines (logfmt or JSON) written to stderr with one write(2) each. */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "utf8.h"

#define LINE_MAX_BYTES 8192
/* A hostile cmdline or file name must not crowd the other fields out of the line. */
#define VALUE_MAX_BYTES 1024

static LogFormat log_format = LOG_LOGFMT;
static LogLevel log_level = LEVEL_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };
static const char *const format_names[] = { "logfmt", "json" };

void log_setup(LogFormat format, LogLevel level)
{
	log_format = format;
	log_level = level;
}

bool log_enabled(LogLevel level)
{
	return level >= log_level;
}

int log_format_parse(const char *s, LogFormat *out)
{
	for (size_t i = 0; i < ELEMENTSOF(format_names); i++)
		if (strcmp(s, format_names[i]) == 0) {
			*out = (LogFormat)i;
			return 0;
		}
	return -EINVAL;
}

int log_level_parse(const char *s, LogLevel *out)
{
	for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (LogLevel)i;
			return 0;
		}
	return -EINVAL;
}

const char *log_format_name(LogFormat format)
{
	return format_names[format];
}

const char *log_level_name(LogLevel level)
{
	return level_names[level];
}

typedef struct Buf {
	char *p;
	size_t len, size; /* size excludes the bytes kept back for the end of the line */
	bool full; /* something did not fit and was cut */
} Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
	if (n > b->size - b->len) {
		n = b->size - b->len;
		b->full = true;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void buf_puts(Buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static bool logfmt_needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '=' || *p == '"' || *p == '\\' || *p >= 0x7f)
			return true;
	return false;
}

/* A JSON string literal; logfmt's quoted values use the same escapes. Invalid UTF-8 becomes
 * U+FFFD so that neither format can be broken by bytes from files or /proc. */
static void buf_put_quoted(Buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), start = b->len;

	buf_put(b, "\"", 1);
	while (n > 0) {
		if (b->len - start > VALUE_MAX_BYTES) {
			buf_puts(b, "\xe2\x80\xa6"); /* … */
			break;
		}
		uint32_t c;
		size_t len = utf8_decode(p, n, &c);
		if (len == 0) {
			buf_puts(b, "\\ufffd");
			len = 1;
		} else if (*p == '"' || *p == '\\') {
			char esc[2] = { '\\', (char)*p };
			buf_put(b, esc, 2);
		} else if (*p == '\n') {
			buf_puts(b, "\\n");
		} else if (*p == '\r') {
			buf_puts(b, "\\r");
		} else if (*p == '\t') {
			buf_puts(b, "\\t");
		} else if (*p < 0x20 || *p == 0x7f) {
			buf_printf(b, "\\u%04x", *p);
		} else {
			buf_put(b, (const char *)p, len);
		}
		p += len;
		n -= len;
	}
	buf_put(b, "\"", 1);
}

static void buf_put_str(Buf *b, LogFormat format, const char *s, bool quote)
{
	if (format == LOG_JSON || quote || logfmt_needs_quotes(s) || strlen(s) > VALUE_MAX_BYTES)
		buf_put_quoted(b, s);
	else
		buf_puts(b, s);
}

static void buf_put_value(Buf *b, LogFormat format, const LogField *f)
{
	switch (f->type) {
	case LF_T_STR:
		buf_put_str(b, format, f->v.s ? f->v.s : "", false);
		break;
	case LF_T_INT:
		buf_printf(b, "%lld", f->v.i);
		break;
	case LF_T_UINT:
		buf_printf(b, "%llu", f->v.u);
		break;
	case LF_T_BOOL:
		buf_puts(b, f->v.b ? "true" : "false");
		break;
	case LF_T_END:
		break;
	}
}

static void buf_put_key(Buf *b, LogFormat format, const char *key)
{
	if (format == LOG_JSON) {
		buf_puts(b, b->len == 0 ? "{\"" : ",\"");
		buf_puts(b, key);
		buf_puts(b, "\":");
	} else {
		if (b->len > 0)
			buf_put(b, " ", 1);
		buf_puts(b, key);
		buf_put(b, "=", 1);
	}
}

size_t log_format_line(char *buf, size_t size, LogFormat format, const char *ts, LogLevel level,
		       const char *msg, const LogField *fields)
{
	/* Kept back: room for a last "truncated" field, the closing brace, '\n' and the NUL. */
	static const size_t keep = sizeof(",\"truncated\":true}\n");
	const LogField head[] = { LF_STR("ts", ts), LF_STR("level", level_names[level]),
				  LF_STR("msg", msg) };
	Buf b = { .p = buf, .size = size - keep };
	bool cut = false;

	if (size < LOG_LINE_MIN) {
		if (size > 0)
			buf[0] = '\0';
		return 0;
	}
	/* A field that does not fit is left out whole, never cut inside a value: the line stays
	 * valid JSON (or logfmt), and says it was truncated. */
	for (size_t i = 0; !cut; i++) {
		const LogField *f = i < ELEMENTSOF(head) ? &head[i] : &fields[i - ELEMENTSOF(head)];
		size_t mark = b.len;
		if (i >= ELEMENTSOF(head) && (!fields || f->type == LF_T_END))
			break;
		buf_put_key(&b, format, f->key);
		if (f == &head[2]) /* msg: quoted even in logfmt, as users grep for it */
			buf_put_str(&b, format, msg, true);
		else
			buf_put_value(&b, format, f);
		if (b.full) {
			b.len = mark;
			cut = true;
		}
	}
	b.size = size - 3;
	if (cut) {
		buf_put_key(&b, format, "truncated");
		buf_puts(&b, "true");
	}
	if (format == LOG_JSON)
		b.p[b.len++] = '}';
	b.p[b.len++] = '\n';
	b.p[b.len] = '\0';
	return b.len;
}

static void format_now(char ts[32])
{
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, 32 - n, ".%03ldZ", now.tv_nsec / 1000000);
}

void log_emit(LogLevel level, const char *msg, const LogField *fields)
{
	char line[LINE_MAX_BYTES], ts[32];
	int saved = errno;

	if (!log_enabled(level))
		return;
	format_now(ts);
	size_t len = log_format_line(line, sizeof(line), log_format, ts, level, msg, fields);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(STDERR_FILENO, line + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	errno = saved;
}
