/* The HTTP metrics: status codes (bounded), the duration histogram, and the series an http rule
 * has and a signal rule has not. */
#include "unit.h"

#include <signal.h>

#include "metrics.h"

static char *render(Metrics *m)
{
	MetricsLive live = { 0 };
	size_t len;
	char *text = metrics_render(m, &live, &len);

	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

static void has(const char *text, const char *line)
{
	char *want = xasprintf("\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("no line \"%s\" in:\n%s", line, text);
	free(want);
}

static void lacks(const char *text, const char *part)
{
	if (strstr(text, part))
		fail_msg("\"%s\" should not be in:\n%s", part, text);
}

static void test_http_rule(void **state)
{
	char *names[] = { "web", "sig" };
	int signals[] = { 0, SIGHUP }; /* web is an http rule */
	Metrics *m;
	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_set_rules(m, names, signals, 2), 0);
	char *text = render(m);
	/* before any request: the histogram at 0, no status yet */
	has(text, "sigreload_http_request_duration_seconds_count{rule=\"web\"} 0");
	lacks(text, "sigreload_http_requests_total{");
	free(text);

	metrics_http_request(m, "web", 200, 0.003);
	metrics_http_request(m, "web", 200, 0.2);
	metrics_http_request(m, "web", 503, 0.2);
	metrics_http_request(m, "web", 0, 20.0); /* no answer: a timeout */
	metrics_http_request(m, "sig", 200, 1.0); /* not an http rule: not counted */
	metrics_reload(m, "web", RESULT_FAILED);
	metrics_reload(m, "web", RESULT_REQUESTED);
	text = render(m);
	has(text, "sigreload_http_requests_total{rule=\"web\",code=\"200\"} 2");
	has(text, "sigreload_http_requests_total{rule=\"web\",code=\"503\"} 1");
	has(text, "sigreload_http_requests_total{rule=\"web\",code=\"error\"} 1");
	has(text, "sigreload_http_request_duration_seconds_bucket{rule=\"web\",le=\"0.005\"} 1");
	has(text, "sigreload_http_request_duration_seconds_bucket{rule=\"web\",le=\"0.1\"} 1");
	has(text, "sigreload_http_request_duration_seconds_bucket{rule=\"web\",le=\"0.25\"} 3");
	has(text, "sigreload_http_request_duration_seconds_bucket{rule=\"web\",le=\"10\"} 3");
	has(text, "sigreload_http_request_duration_seconds_bucket{rule=\"web\",le=\"+Inf\"} 4");
	has(text, "sigreload_http_request_duration_seconds_sum{rule=\"web\"} 20.403000");
	has(text, "sigreload_http_request_duration_seconds_count{rule=\"web\"} 4");
	has(text, "sigreload_reloads_total{rule=\"web\",result=\"requested\"} 1");
	has(text, "sigreload_reloads_total{rule=\"web\",result=\"failed\"} 1");
	has(text, "sigreload_last_reload_successful{rule=\"web\"} 1");
	has(text, "sigreload_reloads_total{rule=\"sig\",result=\"requested\"} 0");
	/* each rule has its own kind of series only */
	lacks(text, "rule=\"sig\",code=");
	lacks(text, "duration_seconds_count{rule=\"sig\"}");
	lacks(text, "sigreload_signals_sent_total{rule=\"web\"");
	lacks(text, "sigreload_signal_errors_total{rule=\"web\"");
	has(text, "sigreload_signals_sent_total{rule=\"sig\",signal=\"SIGHUP\"} 0");
	free(text);

	/* a rule-file reload keeps the series of the rules still there */
	assert_int_equal(metrics_set_rules(m, names, signals, 1), 0);
	text = render(m);
	has(text, "sigreload_http_requests_total{rule=\"web\",code=\"200\"} 2");
	lacks(text, "rule=\"sig\"");
	free(text);
	metrics_free(m);
}

/* An endpoint answering ever new codes cannot grow the exposition without bound. */
static void test_codes_bounded(void **state)
{
	char *names[] = { "web" };
	int signals[] = { 0 };
	Metrics *m;
	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_set_rules(m, names, signals, 1), 0);
	for (long code = 100; code < 600; code++)
		metrics_http_request(m, "web", code, 0.001);
	metrics_http_request(m, "web", 100, 0.001);
	char *text = render(m);
	size_t series = 0;
	for (const char *p = text; (p = strstr(p, "sigreload_http_requests_total{")); p++)
		series++;
	assert_int_equal(series, 17); /* 16 codes and "other" */
	has(text, "sigreload_http_requests_total{rule=\"web\",code=\"100\"} 2");
	has(text, "sigreload_http_requests_total{rule=\"web\",code=\"115\"} 1");
	has(text, "sigreload_http_requests_total{rule=\"web\",code=\"other\"} 484");
	has(text, "sigreload_http_request_duration_seconds_count{rule=\"web\"} 501");
	free(text);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_rule),
		cmocka_unit_test(test_codes_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
