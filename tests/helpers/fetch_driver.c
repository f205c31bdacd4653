/* fetch_driver: sigreload's HTTP client (src/fetch.c) on sigreload's own loop and timer, driven
 * by commands on stdin, for the system tests.
 *
 * Prints "ready <pid> resolver=<fetch_resolver()> seccomp=<on|off>", then answers each line:
 *   fetch ID<TAB>KEY=VALUE...  start a request; KEY is url, method, timeout_ms, max_body, header
 *                              (repeatable, "Name: value"), bearer_token_file, username,
 *                              password, password_file, ca_file, cert_file, key_file,
 *                              server_name, insecure (1); prints "started ID" (or "failed ID
 *                              <errno name>" when fetch_start refuses)
 *   cancel ID                  fetch_cancel; prints "cancelled ID"
 *   ping TEXT                  prints "pong TEXT" at once, whatever is in flight
 *   metrics                    prints the exposition in which every request counts (as the
 *                              HTTP rule "driver": a 2xx is a reload requested, else failed),
 *                              then "end metrics"
 * and prints, when a request ends,
 *   done ID status=N err=<errno name|0> truncated=0|1 body_len=N seconds=S body=B error=E
 * with B and E escaped as the tests' escaped() does (tests/system/conftest.py).
 * --seccomp applies sigreload's seccomp filter once the client is made. EOF on stdin ends it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "fetch.h"
#include "loop.h"
#include "metrics.h"
#include "sandbox.h"
#include "timer.h"

#define MAX_FETCHES    4096
#define MAX_HEADERS    64
#define LINE_MAX_BYTES 65536

typedef struct Driver {
	Loop *loop;
	Timer *timer;
	Fetcher *fetcher;
	Metrics *metrics;
	Source input; /* stdin: tagged SOURCE_SIGNAL, a tag the driver uses for nothing else */
	char buf[LINE_MAX_BYTES];
	size_t len;
	Fetch *fetches[MAX_FETCHES];
	unsigned ids[MAX_FETCHES];
} Driver;

typedef struct Slot {
	Driver *d;
	size_t i;
} Slot;

static Slot slots[MAX_FETCHES];

static void escaped(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 0x21 || c >= 0x7f || c == '\\')
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void on_done(const FetchResult *r, void *userdata)
{
	Slot *s = userdata;
	const char *err = r->err ? strerrorname_np(-r->err) : "0";

	printf("done %u status=%ld err=%s truncated=%d body_len=%zu seconds=%.3f body=",
	       s->d->ids[s->i], r->status, err ? err : "?", r->truncated, r->body_len, r->seconds);
	escaped(r->body, r->body_len);
	fputs(" error=", stdout);
	if (r->error)
		escaped(r->error, strlen(r->error));
	putchar('\n');
	fflush(stdout);
	s->d->fetches[s->i] = NULL;
	/* what the delivery code counts for an HTTP rule's attempt */
	metrics_http_request(s->d->metrics, "driver", r->status, r->seconds);
	metrics_reload(s->d->metrics, "driver",
		       r->status >= 200 && r->status < 300 ? RESULT_REQUESTED : RESULT_FAILED);
}

static int set_field(HttpRequest *req, size_t *max_body, char *key, char *value)
{
	static char *headers[MAX_HEADERS];
	char **str[] = { &req->url,	   &req->method,    &req->bearer_token_file,
			 &req->username,   &req->password,  &req->password_file,
			 &req->ca_file,	   &req->cert_file, &req->key_file,
			 &req->server_name };
	const char *names[] = { "url",	    "method",	     "bearer_token_file", "username",
				"password", "password_file", "ca_file",		  "cert_file",
				"key_file", "server_name" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(key, names[i]) == 0) {
			*str[i] = value;
			return 0;
		}
	if (strcmp(key, "timeout_ms") == 0)
		req->timeout_ms = strtoull(value, NULL, 10);
	else if (strcmp(key, "max_body") == 0)
		*max_body = strtoull(value, NULL, 10);
	else if (strcmp(key, "insecure") == 0)
		req->insecure_skip_verify = strcmp(value, "1") == 0;
	else if (strcmp(key, "header") == 0 && req->n_headers < MAX_HEADERS) {
		headers[req->n_headers++] = value;
		req->headers = headers;
	} else
		return -EINVAL;
	return 0;
}

/* "fetch ID\tkey=value\t...": the request lives in line only until fetch_start returns. */
static void cmd_fetch(Driver *d, unsigned id, char *fields)
{
	HttpRequest req = { .timeout_ms = 5000 };
	size_t max_body = 4096, i;
	char *save = NULL;

	for (char *f = strtok_r(fields, "\t", &save); f; f = strtok_r(NULL, "\t", &save)) {
		char *eq = strchr(f, '=');
		if (!eq || (*eq = '\0', set_field(&req, &max_body, f, eq + 1) < 0)) {
			printf("failed %u bad field %s\n", id, f);
			return;
		}
	}
	for (i = 0; i < MAX_FETCHES && d->fetches[i]; i++)
		;
	if (i == MAX_FETCHES) {
		printf("failed %u too many\n", id);
		return;
	}
	slots[i] = (Slot){ .d = d, .i = i };
	d->ids[i] = id;
	int r = fetch_start(d->fetcher, &req, max_body, on_done, &slots[i], &d->fetches[i]);
	if (r < 0)
		printf("failed %u %s\n", id, strerrorname_np(-r));
	else
		printf("started %u\n", id);
}

static void cmd_cancel(Driver *d, unsigned id)
{
	for (size_t i = 0; i < MAX_FETCHES; i++)
		if (d->fetches[i] && d->ids[i] == id) {
			fetch_cancel(d->fetches[i]);
			d->fetches[i] = NULL;
		}
	printf("cancelled %u\n", id);
}

static void print_metrics(Driver *d)
{
	MetricsLive live = { 0 };
	size_t len;
	char *text = metrics_render(d->metrics, &live, &len);

	if (text)
		fwrite(text, 1, len, stdout);
	free(text);
	puts("end metrics");
}

static void command(Driver *d, char *line)
{
	unsigned id;
	int n = 0;

	if (strncmp(line, "ping ", 5) == 0)
		printf("pong %s\n", line + 5);
	else if (strcmp(line, "metrics") == 0)
		print_metrics(d);
	else if (sscanf(line, "fetch %u%n", &id, &n) == 1 && (line[n] == '\t' || !line[n]))
		cmd_fetch(d, id, line + n);
	else if (sscanf(line, "cancel %u", &id) == 1)
		cmd_cancel(d, id);
	else
		printf("unknown %s\n", line);
	fflush(stdout);
}

/* Returns 1 at EOF. */
static int read_input(Driver *d)
{
	ssize_t n = read(d->input.fd, d->buf + d->len, sizeof(d->buf) - 1 - d->len);
	char *nl;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return 1;
	d->len += (size_t)n;
	d->buf[d->len] = '\0';
	while ((nl = memchr(d->buf, '\n', d->len))) {
		*nl = '\0';
		command(d, d->buf);
		d->len -= (size_t)(nl + 1 - d->buf);
		memmove(d->buf, nl + 1, d->len);
	}
	return d->len == sizeof(d->buf) - 1 ? -E2BIG : 0;
}

static int dispatch(Source *src, uint32_t events, void *userdata)
{
	Driver *d = userdata;
	int r = 0;

	switch (src->type) {
	case SOURCE_FETCH:
		fetcher_dispatch(d->fetcher, src, events);
		break;
	case SOURCE_TIMER:
		timer_ack(d->timer);
		fetcher_run_due(d->fetcher);
		break;
	case SOURCE_SIGNAL:
		r = read_input(d);
		break;
	default:
		break;
	}
	if (r != 0)
		return r;
	uint64_t due = fetcher_deadline(d->fetcher);
	return timer_arm(d->timer, due ? due : TIMER_NEVER);
}

int main(int argc, char **argv)
{
	static Driver d = { .input = { .type = SOURCE_SIGNAL, .fd = STDIN_FILENO } };
	char *rule = "driver";
	int no_signal = 0; /* an http rule */
	bool seccomp = argc > 1 && strcmp(argv[1], "--seccomp") == 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fcntl(STDIN_FILENO, F_SETFL, O_NONBLOCK) < 0 || loop_new(&d.loop) < 0 ||
	    timer_new(&d.timer) < 0 || fetcher_new(d.loop, &d.fetcher) < 0 ||
	    loop_add(d.loop, timer_source(d.timer), EPOLLIN) < 0 ||
	    loop_add(d.loop, &d.input, EPOLLIN) < 0 || metrics_new(&d.metrics) < 0 ||
	    metrics_set_rules(d.metrics, &rule, &no_signal, 1) < 0) {
		perror("fetch_driver: setup");
		return 1;
	}
	seccomp = seccomp && sandbox_supported();
	if (seccomp && sandbox_apply() < 0) {
		perror("fetch_driver: seccomp");
		return 1;
	}
	printf("ready %d resolver=%s seccomp=%s\n", (int)getpid(), fetch_resolver(),
	       seccomp ? "on" : "off");
	int r = loop_run(d.loop, dispatch, &d);
	fetcher_free(d.fetcher);
	metrics_free(d.metrics);
	timer_free(d.timer);
	loop_free(d.loop);
	return r == 1 ? 0 : 1;
}
