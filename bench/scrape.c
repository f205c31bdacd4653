/* scrape: N scrapers fetching http://127.0.0.1:PORT/metrics back to back for SECONDS (at most
 * MAX each), as many Prometheus servers, or one misconfigured with a tiny interval, would. Each
 * scraper connects from its own loopback address (127.0.0.2, .3, ...), so that a per-address
 * connection limit does not turn them away.
 *
 *   scrape PORT N SECONDS MAX
 *
 * They stop after SECONDS, after MAX scrapes each, or as soon as stdin reaches its end (the
 * harness holds a pipe, and closes it when done). Prints "ready" when the scrapers start and
 * "scraped <answers 200> <other answers or errors>" when the last one ends. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SCRAPERS 200

static unsigned short port;
static double end;
static long max_each;
static atomic_bool stop;

typedef struct Scraper {
	pthread_t thread;
	int index;
	long ok, failed;
} Scraper;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One GET over a fresh connection, read to the end; true on a 200. */
static int scrape_once(int index)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	char buf[16384];
	int ok = 0, first = 1;
	ssize_t n;

	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	src.sin_addr.s_addr = htonl(0x7f000002u + (unsigned)index);
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	dst.sin_port = htons(port);
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 ||
	    write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		close(fd);
		return 0;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (first && n >= 12)
			ok = memcmp(buf + 9, "200", 3) == 0;
		first = 0;
	}
	close(fd);
	return ok && n == 0;
}

static void *run(void *arg)
{
	Scraper *s = arg;

	while (!atomic_load(&stop) && now_s() < end && s->ok + s->failed < max_each) {
		if (scrape_once(s->index))
			s->ok++;
		else
			s->failed++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	Scraper s[MAX_SCRAPERS];
	long ok = 0, failed = 0;
	int n = argc == 5 ? atoi(argv[2]) : 0;

	if (n < 1 || n > MAX_SCRAPERS || atoi(argv[1]) <= 0 || atof(argv[3]) <= 0 ||
	    atol(argv[4]) <= 0) {
		fprintf(stderr, "usage: scrape PORT N SECONDS MAX (N at most %d)\n", MAX_SCRAPERS);
		return 2;
	}
	port = (unsigned short)atoi(argv[1]);
	end = now_s() + atof(argv[3]);
	max_each = atol(argv[4]);
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		s[i] = (Scraper){ .index = i };
		if (pthread_create(&s[i].thread, NULL, run, &s[i]) != 0) {
			perror("scrape: pthread_create");
			return 1;
		}
	}
	/* until stdin ends or the time is up */
	for (double left; (left = end - now_s()) > 0;) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		char b[64];
		if (poll(&pfd, 1, (int)(left * 1000) + 1) > 0 &&
		    read(STDIN_FILENO, b, sizeof(b)) <= 0)
			break;
	}
	atomic_store(&stop, true);
	for (int i = 0; i < n; i++) {
		pthread_join(s[i].thread, NULL);
		ok += s[i].ok;
		failed += s[i].failed;
	}
	printf("scraped %ld %ld\n", ok, failed);
	return 0;
}
