/* metrics.c: counters kept by rule name (so they survive rule-file reloads), and the
 * exposition, with the standard process_* metrics read from /proc/self. */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "proc.h"
#include "signame.h"

typedef struct SigCount {
	int sig;
	uint64_t n;
} SigCount;

/* Statuses counted per rule, beyond which they count as code="other": an endpoint answering
 * random codes must not grow the exposition without bound. */
#define HTTP_CODES_MAX	16
#define HTTP_CODE_ERROR 0 /* no answer */
#define HTTP_CODE_OTHER -1

/* sigreload_http_request_duration_seconds' buckets: the client libraries' defaults. */
static const double http_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define HTTP_BUCKETS (sizeof(http_buckets) / sizeof(http_buckets[0]))

typedef struct HttpCount {
	long code;
	uint64_t n;
} HttpCount;

typedef struct HttpMetrics {
	HttpCount codes[HTTP_CODES_MAX + 1]; /* the last one: "other" */
	size_t n_codes;
	uint64_t buckets[HTTP_BUCKETS]; /* not cumulative: added up when rendered */
	uint64_t count;
	double sum;
} HttpMetrics;

typedef struct RuleMetrics {
	char *name;
	HttpMetrics *http; /* an http rule's, else NULL */
	uint64_t reloads[RESULT_N];
	uint64_t errors[REASON_N];
	SigCount *sent;
	size_t n_sent;
	bool last_ok;
	double last_ok_ts;
	bool has_hash;
	unsigned char sha[DIGEST_LEN];
	size_t unreadable;
	uint64_t target_exits;
} RuleMetrics;

struct Metrics {
	RuleMetrics *v;
	size_t n;
	bool rules_ok;
	double rules_ok_ts;
	uint64_t watch_errors[WATCH_ERR_N];
};

static const char *const result_names[RESULT_N] = { "signaled", "unchanged", "no_target",
						    "failed",	"held",	     "requested" };
static const char *const reason_names[REASON_N] = { "eperm",	     "esrch",	"no_handler",
						    "target_exited", "ignored", "other" };
static const char *const watch_error_names[WATCH_ERR_N] = { "limit", "overflow", "access",
							    "other" };

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *metrics_reason_name(SignalError reason)
{
	return reason_names[reason];
}

int metrics_new(Metrics **out)
{
	Metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->rules_ok = true;
	m->rules_ok_ts = wall_now();
	*out = m;
	return 0;
}

static void rule_metrics_done(RuleMetrics *r)
{
	free(r->name);
	free(r->sent);
	free(r->http);
}

void metrics_free(Metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		rule_metrics_done(&m->v[i]);
	free(m->v);
	free(m);
}

static int count_signal(RuleMetrics *r, int sig, uint64_t n)
{
	SigCount *v;

	for (size_t i = 0; i < r->n_sent; i++)
		if (r->sent[i].sig == sig) {
			r->sent[i].n += n;
			return 0;
		}
	if (!(v = reallocarray(r->sent, r->n_sent + 1, sizeof(*v))))
		return -ENOMEM;
	r->sent = v;
	r->sent[r->n_sent++] = (SigCount){ .sig = sig, .n = n };
	return 0;
}

int metrics_set_rules(Metrics *m, char *const *names, const int *signals, size_t n)
{
	RuleMetrics *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		RuleMetrics *old = NULL;
		for (size_t j = 0; j < m->n && !old; j++)
			if (m->v[j].name && strcmp(m->v[j].name, names[i]) == 0)
				old = &m->v[j];
		if (old) {
			v[i] = *old;
			*old = (RuleMetrics){ 0 };
		} else {
			v[i] = (RuleMetrics){ .name = strdup(names[i]),
					      .last_ok = true,
					      .last_ok_ts = wall_now() };
		}
		/* a signal rule's signal has a series from the start, at 0; an http rule's
		 * duration too, and a rule that changed kind keeps only its new kind's */
		if (signals[i]) {
			free(v[i].http);
			v[i].http = NULL;
		} else if (!v[i].http) {
			v[i].http = calloc(1, sizeof(*v[i].http));
		}
		if (!v[i].name || (signals[i] && count_signal(&v[i], signals[i], 0) < 0) ||
		    (!signals[i] && !v[i].http)) {
			for (size_t j = 0; j <= i; j++)
				rule_metrics_done(&v[j]);
			free(v);
			return -ENOMEM;
		}
	}
	for (size_t j = 0; j < m->n; j++)
		rule_metrics_done(&m->v[j]);
	free(m->v);
	m->v = v;
	m->n = n;
	return 0;
}

static RuleMetrics *find(Metrics *m, const char *rule)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].name, rule) == 0)
			return &m->v[i];
	return NULL;
}

void metrics_reload(Metrics *m, const char *rule, ReloadResult result)
{
	RuleMetrics *r = find(m, rule);

	if (!r)
		return;
	r->reloads[result]++;
	if (result == RESULT_SIGNALED || result == RESULT_REQUESTED) {
		r->last_ok = true;
		r->last_ok_ts = wall_now();
	} else if (result == RESULT_FAILED) {
		r->last_ok = false;
	}
}

void metrics_signal_sent(Metrics *m, const char *rule, int sig)
{
	RuleMetrics *r = find(m, rule);

	if (r)
		count_signal(r, sig, 1);
}

void metrics_signal_error(Metrics *m, const char *rule, SignalError reason)
{
	RuleMetrics *r = find(m, rule);

	if (r)
		r->errors[reason]++;
}

void metrics_config_hash(Metrics *m, const char *rule, const unsigned char sha[DIGEST_LEN])
{
	RuleMetrics *r = find(m, rule);

	if (!r)
		return;
	r->has_hash = true;
	memcpy(r->sha, sha, DIGEST_LEN);
}

void metrics_unreadable(Metrics *m, const char *rule, size_t files)
{
	RuleMetrics *r = find(m, rule);

	if (r)
		r->unreadable = files;
}

void metrics_target_exit(Metrics *m, const char *rule)
{
	RuleMetrics *r = find(m, rule);

	if (r)
		r->target_exits++;
}

void metrics_rules_loaded(Metrics *m, bool ok)
{
	m->rules_ok = ok;
	if (ok)
		m->rules_ok_ts = wall_now();
}

void metrics_watch_error(Metrics *m, WatchError reason)
{
	m->watch_errors[reason]++;
}

/* The count of code, made on first use; past HTTP_CODES_MAX codes, "other"'s. */
static HttpCount *http_code(HttpMetrics *h, long code)
{
	for (size_t i = 0; i < h->n_codes; i++)
		if (h->codes[i].code == code)
			return &h->codes[i];
	if (h->n_codes >= HTTP_CODES_MAX && code != HTTP_CODE_OTHER)
		return http_code(h, HTTP_CODE_OTHER);
	h->codes[h->n_codes] = (HttpCount){ .code = code };
	return &h->codes[h->n_codes++];
}

void metrics_http_request(Metrics *m, const char *rule, long status, double seconds)
{
	RuleMetrics *r = find(m, rule);
	HttpMetrics *h = r ? r->http : NULL;
	size_t i = 0;

	if (!h)
		return;
	http_code(h, status > 0 ? status : HTTP_CODE_ERROR)->n++;
	while (i < HTTP_BUCKETS && seconds > http_buckets[i])
		i++;
	if (i < HTTP_BUCKETS)
		h->buckets[i]++;
	h->count++;
	h->sum += seconds;
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* process_* as the Prometheus client libraries name them. */
static void render_process(FILE *f)
{
	ProcStat st;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	int fds = proc_count_fds(0);

	if (proc_read_self(&st) < 0)
		return;

	header(f, "process_cpu_seconds_total", "counter",
	       "Total user and system CPU time spent in seconds.");
	fprintf(f, "process_cpu_seconds_total %.2f\n",
		(double)(st.utime + st.stime) / (double)tick);
	header(f, "process_open_fds", "gauge", "Number of open file descriptors.");
	fprintf(f, "process_open_fds %d\n", fds > 0 ? fds : 0);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		header(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		fprintf(f, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	header(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	fprintf(f, "process_virtual_memory_bytes %llu\n", st.vsize);
	header(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	fprintf(f, "process_resident_memory_bytes %llu\n", st.rss * (unsigned long long)page);
	header(f, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	fprintf(f, "process_start_time_seconds %.2f\n",
		proc_boot_time() + (double)st.starttime / (double)tick);
}

/* The families are there with no http rule too: a dashboard's query finds them, empty. */
static void render_http(FILE *f, const Metrics *m)
{
	header(
	    f, "sigreload_http_requests_total", "counter",
	    "HTTP requests made (actions and verifications), by status code (error: no answer).");
	for (size_t i = 0; i < m->n; i++)
		for (size_t c = 0; m->v[i].http && c < m->v[i].http->n_codes; c++) {
			const HttpCount *hc = &m->v[i].http->codes[c];
			char code[24];
			snprintf(code, sizeof(code), "%ld", hc->code);
			fprintf(f, "sigreload_http_requests_total{rule=\"%s\",code=\"%s\"} %llu\n",
				m->v[i].name,
				hc->code == HTTP_CODE_ERROR   ? "error"
				: hc->code == HTTP_CODE_OTHER ? "other"
							      : code,
				(unsigned long long)hc->n);
		}
	header(f, "sigreload_http_request_duration_seconds", "histogram",
	       "How long HTTP requests took, answered or not.");
	for (size_t i = 0; i < m->n; i++) {
		const HttpMetrics *h = m->v[i].http;
		uint64_t below = 0;
		if (!h)
			continue;
		for (size_t b = 0; b < HTTP_BUCKETS; b++)
			fprintf(
			    f,
			    "sigreload_http_request_duration_seconds_bucket{rule=\"%s\",le=\"%g\"} "
			    "%llu\n",
			    m->v[i].name, http_buckets[b],
			    (unsigned long long)(below += h->buckets[b]));
		fprintf(
		    f,
		    "sigreload_http_request_duration_seconds_bucket{rule=\"%s\",le=\"+Inf\"} %llu\n"
		    "sigreload_http_request_duration_seconds_sum{rule=\"%s\"} %.6f\n"
		    "sigreload_http_request_duration_seconds_count{rule=\"%s\"} %llu\n",
		    m->v[i].name, (unsigned long long)h->count, m->v[i].name, h->sum, m->v[i].name,
		    (unsigned long long)h->count);
	}
}

/* The rules' targets, summed per rule so that label sets do not churn with pids. */
static void render_targets(FILE *f, const Metrics *m, const TargetFigures *t)
{
	header(f, "sigreload_targets", "gauge",
	       "Processes the rule would signal now (leaders only), from a /proc scan.");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_targets{rule=\"%s\"} %zu\n", m->v[i].name, t[i].targets);
	header(f, "sigreload_target_resident_memory_bytes", "gauge",
	       "Resident memory of the rule's targets, summed.");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_target_resident_memory_bytes{rule=\"%s\"} %llu\n",
			m->v[i].name, (unsigned long long)t[i].resident_bytes);
	header(f, "sigreload_target_cpu_seconds_total", "counter",
	       "CPU time of the rule's current targets, summed (it drops when one restarts).");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_target_cpu_seconds_total{rule=\"%s\"} %.2f\n", m->v[i].name,
			t[i].cpu_seconds);
	header(f, "sigreload_target_threads", "gauge", "Threads of the rule's targets, summed.");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_target_threads{rule=\"%s\"} %llu\n", m->v[i].name,
			(unsigned long long)t[i].threads);
	header(f, "sigreload_target_open_fds", "gauge",
	       "Open fds of the rule's targets whose fd table sigreload may read (the same uid, "
	       "or CAP_SYS_PTRACE), summed; absent when it may read none.");
	for (size_t i = 0; i < m->n; i++)
		if (t[i].fds_read)
			fprintf(f, "sigreload_target_open_fds{rule=\"%s\"} %llu\n", m->v[i].name,
				(unsigned long long)t[i].open_fds);
	header(f, "sigreload_target_start_time_seconds", "gauge",
	       "Start of the rule's oldest target, in seconds since the epoch.");
	for (size_t i = 0; i < m->n; i++)
		if (t[i].oldest_start > 0)
			fprintf(f, "sigreload_target_start_time_seconds{rule=\"%s\"} %.2f\n",
				m->v[i].name, t[i].oldest_start);
}

static void render_rules(FILE *f, const Metrics *m, const MetricsLive *live)
{
	char hex[DIGEST_HEX_LEN], sig[SIGNAME_MAX];

	header(f, "sigreload_reloads_total", "counter", "Rule evaluations, by result.");
	for (size_t i = 0; i < m->n; i++)
		for (int r = 0; r < RESULT_N; r++)
			fprintf(f, "sigreload_reloads_total{rule=\"%s\",result=\"%s\"} %llu\n",
				m->v[i].name, result_names[r],
				(unsigned long long)m->v[i].reloads[r]);
	header(f, "sigreload_signals_sent_total", "counter", "Signals sent to targets.");
	for (size_t i = 0; i < m->n; i++)
		for (size_t s = 0; s < m->v[i].n_sent && !m->v[i].http; s++)
			fprintf(f, "sigreload_signals_sent_total{rule=\"%s\",signal=\"%s\"} %llu\n",
				m->v[i].name, signame_format(m->v[i].sent[s].sig, sig),
				(unsigned long long)m->v[i].sent[s].n);
	header(f, "sigreload_signal_errors_total", "counter", "Signals not delivered, by reason.");
	for (size_t i = 0; i < m->n; i++)
		for (int r = 0; r < REASON_N && !m->v[i].http; r++) /* an http rule sends none */
			fprintf(
			    f, "sigreload_signal_errors_total{rule=\"%s\",reason=\"%s\"} %llu\n",
			    m->v[i].name, reason_names[r], (unsigned long long)m->v[i].errors[r]);
	header(f, "sigreload_last_reload_successful", "gauge",
	       "Whether the rule's last reload succeeded (1) or failed (0).");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_last_reload_successful{rule=\"%s\"} %d\n", m->v[i].name,
			m->v[i].last_ok);
	header(f, "sigreload_last_reload_success_timestamp_seconds", "gauge",
	       "When the rule last reloaded its targets successfully (or started).");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_last_reload_success_timestamp_seconds{rule=\"%s\"} %.3f\n",
			m->v[i].name, m->v[i].last_ok_ts);
	header(f, "sigreload_config_hash_info", "gauge",
	       "The SHA-256 digest of the rule's files that its targets last reloaded.");
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].has_hash)
			fprintf(f, "sigreload_config_hash_info{rule=\"%s\",sha256=\"%s\"} 1\n",
				m->v[i].name, digest_hex(m->v[i].sha, hex));
	header(f, "sigreload_unreadable_files", "gauge",
	       "Files of the rule that cannot be read, counted by their identity (inode, ctime, "
	       "size) instead of their content.");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_unreadable_files{rule=\"%s\"} %zu\n", m->v[i].name,
			m->v[i].unreadable);
	header(f, "sigreload_target_exits_total", "counter",
	       "Exits of the rule's targets (leaders), seen as they happen through their pidfds.");
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "sigreload_target_exits_total{rule=\"%s\"} %llu\n", m->v[i].name,
			(unsigned long long)m->v[i].target_exits);
	render_http(f, m);
	if (live->targets)
		render_targets(f, m, live->targets);
}

char *metrics_render(const Metrics *m, const MetricsLive *live, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	header(f, "sigreload_build_info", "gauge", "sigreload's version.");
	fprintf(f, "sigreload_build_info{version=\"%s\"} 1\n", SIGRELOAD_VERSION);
	header(f, "sigreload_rules_last_reload_successful", "gauge",
	       "Whether the rule file's last load succeeded (1) or it was invalid (0).");
	fprintf(f, "sigreload_rules_last_reload_successful %d\n", m->rules_ok);
	header(f, "sigreload_rules_last_reload_success_timestamp_seconds", "gauge",
	       "When the rule file was last loaded successfully.");
	fprintf(f, "sigreload_rules_last_reload_success_timestamp_seconds %.3f\n", m->rules_ok_ts);
	header(f, "sigreload_watches", "gauge", "inotify watches held.");
	fprintf(f, "sigreload_watches %zu\n", live->watches);
	header(f, "sigreload_watch_events_total", "counter", "inotify events read.");
	fprintf(f, "sigreload_watch_events_total %llu\n", (unsigned long long)live->watch_events);
	header(f, "sigreload_watch_errors_total", "counter",
	       "Directories that could not be watched, and queue overflows.");
	for (int r = 0; r < WATCH_ERR_N; r++)
		fprintf(f, "sigreload_watch_errors_total{reason=\"%s\"} %llu\n",
			watch_error_names[r], (unsigned long long)m->watch_errors[r]);
	render_rules(f, m, live);
	render_process(f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
