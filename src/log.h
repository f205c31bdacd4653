/* log.h: one event a line on stderr, as logfmt or JSON, with typed key/value fields. */
#ifndef SIGRELOAD_LOG_H
#define SIGRELOAD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef enum { LEVEL_DEBUG, LEVEL_INFO, LEVEL_WARN, LEVEL_ERROR } LogLevel;
typedef enum { LOG_LOGFMT, LOG_JSON } LogFormat;

typedef enum { LF_T_END, LF_T_STR, LF_T_INT, LF_T_UINT, LF_T_BOOL } LogFieldType;

typedef struct LogField {
	const char *key;
	LogFieldType type;
	union {
		const char *s;
		long long i;
		unsigned long long u;
		bool b;
	} v;
} LogField;

#define LF_STR(k, x)  ((LogField){ .key = (k), .type = LF_T_STR, .v.s = (x) })
#define LF_INT(k, x)  ((LogField){ .key = (k), .type = LF_T_INT, .v.i = (long long)(x) })
#define LF_UINT(k, x) ((LogField){ .key = (k), .type = LF_T_UINT, .v.u = (unsigned long long)(x) })
#define LF_BOOL(k, x) ((LogField){ .key = (k), .type = LF_T_BOOL, .v.b = (x) })
/* e is a positive errno value. */
#define LF_ERRNO(e) LF_STR("err", strerror(e))
#define LF_END	    ((LogField){ .type = LF_T_END })

void log_setup(LogFormat format, LogLevel level);
bool log_enabled(LogLevel level);

/* Writes one line if level is enabled; fields end with LF_END. Preserves errno. */
void log_emit(LogLevel level, const char *msg, const LogField *fields);

/* Formats one line into buf (NUL-terminated, ends in '\n'); returns its length. Fields that do
 * not fit in size are left out whole and the line ends with truncated=true. size must be at
 * least LOG_LINE_MIN (else nothing is written and 0 returned). For tests. */
#define LOG_LINE_MIN 64
size_t log_format_line(char *buf, size_t size, LogFormat format, const char *ts, LogLevel level,
		       const char *msg, const LogField *fields);

#define LOG_AT(level, msg, ...)                                                                    \
	log_emit(level, msg, (const LogField[]){ __VA_ARGS__ __VA_OPT__(, ) LF_END })
#define log_debug(msg, ...) LOG_AT(LEVEL_DEBUG, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_info(msg, ...)  LOG_AT(LEVEL_INFO, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_warn(msg, ...)  LOG_AT(LEVEL_WARN, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_error(msg, ...) LOG_AT(LEVEL_ERROR, msg __VA_OPT__(, ) __VA_ARGS__)

int log_format_parse(const char *s, LogFormat *out);
int log_level_parse(const char *s, LogLevel *out);
const char *log_format_name(LogFormat format);
const char *log_level_name(LogLevel level);

#endif
