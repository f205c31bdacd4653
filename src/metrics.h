/* metrics.h: sigreload's counters and gauges, rendered in Prometheus text format 0.0.4. */
#ifndef SIGRELOAD_METRICS_H
#define SIGRELOAD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

typedef enum {
	RESULT_SIGNALED,
	RESULT_UNCHANGED,
	RESULT_NO_TARGET,
	RESULT_FAILED,
	RESULT_HELD,
	RESULT_REQUESTED, /* an HTTP action answered as expected */
	RESULT_N,
} ReloadResult;

typedef enum {
	REASON_EPERM,
	REASON_ESRCH,
	REASON_NO_HANDLER,
	REASON_TARGET_EXITED,
	REASON_IGNORED,
	REASON_OTHER,
	REASON_N,
} SignalError;

typedef enum {
	WATCH_ERR_LIMIT, /* ENOSPC: max_user_watches */
	WATCH_ERR_OVERFLOW, /* IN_Q_OVERFLOW */
	WATCH_ERR_ACCESS, /* EACCES */
	WATCH_ERR_OTHER,
	WATCH_ERR_N,
} WatchError;

typedef struct Metrics Metrics;

int metrics_new(Metrics **out);
void metrics_free(Metrics *m);

/* The rules now configured, by name, with their signals: series of rules no longer there are
 * dropped, those of new rules start at zero (their last_reload_successful at 1, as of now).
 * A signal of 0 is a rule that sends none (an http rule): it has the HTTP series instead. */
int metrics_set_rules(Metrics *m, char *const *names, const int *signals, size_t n);

void metrics_reload(Metrics *m, const char *rule, ReloadResult result);
void metrics_signal_sent(Metrics *m, const char *rule, int sig);
void metrics_signal_error(Metrics *m, const char *rule, SignalError reason);
void metrics_config_hash(Metrics *m, const char *rule, const unsigned char sha[DIGEST_LEN]);
/* How many of the rule's files are counted by identity because they cannot be read. */
void metrics_unreadable(Metrics *m, const char *rule, size_t files);
void metrics_target_exit(Metrics *m, const char *rule);
void metrics_rules_loaded(Metrics *m, bool ok);
void metrics_watch_error(Metrics *m, WatchError reason);

/* One HTTP request a rule made (its action or its verification): status 0 when no answer came
 * (counted as code="error"), and how long it took. */
void metrics_http_request(Metrics *m, const char *rule, long status, double seconds);

const char *metrics_reason_name(SignalError reason);

/* A rule's targets (the leaders it would signal), summed, as a /proc scan found them. */
typedef struct TargetFigures {
	size_t targets;
	uint64_t resident_bytes, threads;
	double cpu_seconds;
	uint64_t open_fds;
	size_t fds_read; /* targets whose fd table could be read (same uid, or CAP_SYS_PTRACE) */
	double oldest_start; /* the oldest target's start, seconds since the epoch; 0: none */
} TargetFigures;

/* What is read at scrape time rather than counted. */
typedef struct MetricsLive {
	size_t watches;
	uint64_t watch_events;
	const TargetFigures *targets; /* per rule, in metrics_set_rules order; NULL if unknown */
} MetricsLive;

/* The exposition as a malloc'd string (NULL on ENOMEM). */
char *metrics_render(const Metrics *m, const MetricsLive *live, size_t *len);

#endif
