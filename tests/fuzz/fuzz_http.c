/* fuzz_http: the HTTP request path, end to end, the honest way: the real Http of src/http.c
 * (libmicrohttpd in external epoll mode, with sigreload's own limits) listens on 127.0.0.1:0 in
 * this process; each input is sent as raw bytes on a new TCP connection, half-closed, and
 * http_dispatch() runs, as sigreload's loop runs it when MHD's epoll fd is ready, until the
 *
 * server has answered and closed, or a short deadline passes (a request that is not complete yet
 * gets no answer: MHD keeps such a connection, even half-closed, until its 10 s timeout); the
 * client then resets the connection, as a client that gives up does, and MHD frees it.
 *
 * Invariants: whatever comes back is an HTTP/1.x response, and every 64 inputs a fresh
 * GET /healthz still gets "200 OK" at once: no input has disturbed the server for the next client
 * (connections leaked up to the limit, a wedged state, a crash).
 *
 * libmicrohttpd itself is Debian's, not instrumented: coverage guidance sees src/http.c and the
 * handlers; ASan and UBSan still see every byte of ours that MHD hands over, and a crash or
 * corruption anywhere in the process. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "http.h"
#include "log.h"

/* An answer on loopback takes well under a millisecond; a request not yet complete gets none,
 * and MHD then holds the connection, even half-closed, until its timeout (HTTP_TIMEOUT_S). So:
 * once everything is sent, IDLE_ROUNDS rounds of dispatch with nothing for the client mean "no
 * answer"; DEADLINE_MS bounds the whole exchange. */
#define DEADLINE_MS 1000
#define IDLE_ROUNDS 4

static Http *http;
static struct sockaddr_in addr;
static unsigned long inputs;

static char *metrics(void *userdata, size_t *len)
{
	static const char body[] = "# TYPE sigreload_build_info gauge\nsigreload_build_info{version=\"fuzz\"} 1\n";
	char *s = strdup(body);

	(void)userdata;
	if (!s)
		return NULL;
	*len = strlen(s);
	return s;
}

static bool ready(void *userdata, const char **why)
{
	(void)userdata;
	*why = "fuzzing";
	return inputs % 2 == 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	HttpHandlers h = { .metrics = metrics, .ready = ready };
	char err[256];
	unsigned port;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN); /* as sigreload's main() does */
	log_setup(LOG_LOGFMT, LEVEL_ERROR);
	FUZZ_CHECK(http_new("127.0.0.1:0", &h, &http, err, sizeof(err)) == 0, "http_new: %s", err);
	FUZZ_CHECK(sscanf(http_address(http), "127.0.0.1:%u", &port) == 1, "address %s",
		   http_address(http));
	addr = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Sends req, half-closes, runs the server until it closes or the deadline passes (then resets
 * the connection); the first bytes of the answer in head. Returns the answer's length, or -1 if
 * the server neither answered nor closed. */
static ssize_t exchange(const uint8_t *req, size_t len, char *head, size_t head_size)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	size_t sent = 0, got = 0;
	bool shut = false, answered = false;
	int idle = 0;
	long long deadline = now_ms() + DEADLINE_MS;
	char buf[65536];

	FUZZ_CHECK(fd >= 0, "socket");
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 || errno == EINPROGRESS,
		   "connect: %s", strerror(errno));
	head[0] = '\0';
	for (;;) {
		if (now_ms() > deadline || idle > IDLE_ROUNDS) {
			struct linger rst = { .l_onoff = 1, .l_linger = 0 };
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
			break;
		}
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN | (shut ? 0 : POLLOUT) },
				       { .fd = http_source(http)->fd, .events = POLLIN } };
		poll(p, 2, shut ? 1 : 10);
		idle += shut && !(p[0].revents & (POLLIN | POLLHUP | POLLERR));
		/* what sigreload's loop does: dispatch when MHD's fd is ready, and on its timer */
		http_dispatch(http);
		if (!shut && (p[0].revents & POLLOUT)) {
			ssize_t n = sent < len ? send(fd, req + sent, len - sent, MSG_NOSIGNAL) : 0;
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				shut = true; /* the server refused the rest: fine */
			if (sent == len && !shut) {
				shutdown(fd, SHUT_WR);
				shut = true;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n > 0) {
				if (got < head_size - 1) {
					size_t k = (size_t)n < head_size - 1 - got ? (size_t)n : head_size - 1 - got;
					memcpy(head + got, buf, k);
					head[got + k] = '\0';
				}
				got += (size_t)n;
			} else if (n == 0 || errno != EAGAIN) {
				answered = true; /* closed (or reset) by the server */
				break;
			}
		}
	}
	close(fd);
	/* the server's side of it: let MHD notice and free the connection now */
	for (int i = 0; i < 3; i++)
		http_dispatch(http);
	return answered || got > 0 ? (ssize_t)got : -1;
}

static void healthz(void)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char head[64];

	ssize_t n = exchange((const uint8_t *)req, sizeof(req) - 1, head, sizeof(head));
	FUZZ_CHECK(n > 0 && strncmp(head, "HTTP/1.1 200 OK\r\n", 17) == 0,
		   "after %lu inputs, GET /healthz gets %zd bytes: \"%.40s\"", inputs, n, head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char head[16];

	inputs++;
	ssize_t n = exchange(data, size, head, sizeof(head));
	FUZZ_CHECK(n <= 0 || (n >= 9 && strncmp(head, "HTTP/1.", 7) == 0),
		   "not an HTTP response: %zd bytes starting \"%s\"", n, head);
	if (inputs % 64 == 0)
		healthz();
	return 0;
}
