/* http.c: libmicrohttpd in external-epoll mode: its epoll fd sits in sigreload's epoll set and
 * it runs only when that fd is ready or a connection times out, so an idle endpoint costs no
 * wakeups, and no client, however slow or malicious, holds up the loop. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "cleanup.h"
#include "log.h"
#include "timer.h"

/* A client connection: when it must have sent its next request's headers. */
typedef struct Conn {
	struct Conn *prev, *next; /* oldest first */
	int fd;
	uint64_t deadline; /* CLOCK_MONOTONIC ns; 0 while a request is being answered */
} Conn;

struct Http {
	Source src; /* MHD's epoll fd */
	struct MHD_Daemon *daemon;
	HttpHandlers h;
	char address[64];
	Conn *oldest, *newest;
	size_t n_conns;
};

static uint64_t request_deadline(void)
{
	return timer_now() + (uint64_t)HTTP_REQUEST_DEADLINE_S * NSEC_PER_SEC;
}

/* Ends a connection from outside libmicrohttpd: it reads the end of the stream and closes the
 * connection as if the client had. */
static void evict(Conn *c)
{
	shutdown(c->fd, SHUT_RDWR);
	c->deadline = 0;
}

static void conn_unlink(Http *h, Conn *c)
{
	*(c->prev ? &c->prev->next : &h->oldest) = c->next;
	*(c->next ? &c->next->prev : &h->newest) = c->prev;
	h->n_conns--;
}

/* Keeps the probe's way in open: a new connection past the spare slots closes the oldest one
 * still waiting for its request (a slow client's), never one being answered. */
static void make_room(Http *h, const Conn *fresh)
{
	if (h->n_conns <= HTTP_MAX_CONNECTIONS - HTTP_SPARE_CONNECTIONS)
		return;
	for (Conn *c = h->oldest; c && c != fresh; c = c->next)
		if (c->deadline) {
			log_debug("http connection closed", LF_STR("reason", "slots full"));
			evict(c);
			return;
		}
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **context,
			  enum MHD_ConnectionNotificationCode what)
{
	Http *h = cls;
	Conn *c = *context;

	if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (c) {
			conn_unlink(h, c);
			free(c);
		}
		return;
	}
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!info || !(c = calloc(1, sizeof(*c))))
		return; /* out of memory: the connection goes without a deadline */
	*c = (Conn){ .prev = h->newest, .fd = info->connect_fd, .deadline = request_deadline() };
	*(h->newest ? &h->newest->next : &h->oldest) = c;
	h->newest = c;
	h->n_conns++;
	*context = c;
	make_room(h, c);
}

static Conn *conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? info->socket_context : NULL;
}

/* The request is answered: the next one on this connection has its own deadline. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **state,
			 enum MHD_RequestTerminationCode why)
{
	Conn *c = conn_of(mc);

	(void)cls, (void)state, (void)why;
	if (c)
		c->deadline = request_deadline();
}

/* Closes every connection whose request has not arrived by its deadline. */
static void enforce_deadlines(Http *h)
{
	uint64_t now = timer_now();

	for (Conn *c = h->oldest; c; c = c->next)
		if (c->deadline && c->deadline <= now) {
			log_debug("http connection closed", LF_STR("reason", "request deadline"));
			evict(c);
		}
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http", LF_STR("detail", msg));
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
			       char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *s)
{
	return respond(c, status, "text/plain; charset=utf-8", (char *)s, strlen(s),
		       MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	Http *h = cls;
	char buf[256];
	const char *why = NULL;

	Conn *conn = conn_of(c);

	(void)version;
	(void)upload;
	(void)state;
	if (conn)
		conn->deadline = 0; /* its headers are in: it is being answered */
	*upload_size = 0; /* a body is never read */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n");
	if (strcmp(url, "/metrics") == 0) {
		size_t len;
		char *body = h->h.metrics(h->h.userdata, &len);
		if (!body)
			return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body,
			       len, MHD_RESPMEM_MUST_FREE);
	}
	if (strcmp(url, "/healthz") == 0)
		return text(c, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0) {
		if (h->h.ready(h->h.userdata, &why))
			return text(c, MHD_HTTP_OK, "ready\n");
		snprintf(buf, sizeof(buf), "not ready: %s\n", why ? why : "starting");
		return respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", buf,
			       strlen(buf), MHD_RESPMEM_MUST_COPY);
	}
	return text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

/* Our own listening socket: bind errors are ours to explain, and ":0" reports its port. */
static int listen_on(const ListenAddr *a, char *address, size_t size)
{
	struct sockaddr_storage ss = a->ss;
	socklen_t len = a->len;
	int one = 1, zero = 0, fd;

	if (a->ss.ss_family == AF_UNSPEC) {
		/* every interface: IPv6 and IPv4 on one socket where the kernel has IPv6 */
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		*in6 = (struct sockaddr_in6){ .sin6_family = AF_INET6,
					      .sin6_addr = in6addr_any,
					      .sin6_port = htons((uint16_t)a->port) };
		len = sizeof(*in6);
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 && errno == EAFNOSUPPORT) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			*in = (struct sockaddr_in){ .sin_family = AF_INET,
						    .sin_addr.s_addr = htonl(INADDR_ANY),
						    .sin_port = htons((uint16_t)a->port) };
			len = sizeof(*in);
		} else if (fd >= 0) {
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		}
		if (fd < 0)
			fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	} else {
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(address, size, "[%s]:%u", host, port);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(address, size, "%s:%u", host, port);
	}
	return fd;
}

DEFINE_CLEANUP_FUNC(Http, http_free)

int http_new(const char *addr, const HttpHandlers *handlers, Http **out, char *err, size_t errsize)
{
	ListenAddr a;

	if (addr_parse(addr, &a) < 0) {
		snprintf(err, errsize, "\"%s\" is not an address such as :9533", addr);
		return -EINVAL;
	}
	_cleanup_(http_freep) Http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->h = *handlers;
	_cleanup_close_ int fd = listen_on(&a, h->address, sizeof(h->address));
	if (fd < 0) {
		snprintf(err, errsize, "cannot listen on %s: %s", addr, strerror(-fd));
		return fd;
	}
	h->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_USE_TURBO, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET,
	    fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_MAX_PER_IP,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MEMORY_PER_CONNECTION,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_NOTIFY_COMPLETED,
	    on_completed, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (h->daemon)
		TAKE_FD(fd); /* the daemon's now: http_free closes it */
	const union MHD_DaemonInfo *info =
	    h->daemon ? MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info) {
		snprintf(err, errsize, "cannot start the HTTP server on %s", addr);
		return -EIO;
	}
	h->src = (Source){ .type = SOURCE_HTTP, .fd = info->epoll_fd };
	*out = TAKE_PTR(h);
	return 0;
}

void http_free(Http *h)
{
	if (!h)
		return;
	/* MHD does not close a listening socket it was given */
	const union MHD_DaemonInfo *info =
	    h->daemon ? MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_LISTEN_FD) : NULL;
	int fd = info ? info->listen_fd : -1;
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	if (fd >= 0)
		close(fd);
	while (h->oldest) { /* in case MHD closed them without telling */
		Conn *c = h->oldest;
		conn_unlink(h, c);
		free(c);
	}
	free(h);
}

Source *http_source(Http *h)
{
	return &h->src;
}

const char *http_address(const Http *h)
{
	return h->address;
}

void http_dispatch(Http *h)
{
	MHD_run(h->daemon);
	enforce_deadlines(h);
}

uint64_t http_deadline(Http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;
	uint64_t at = 0;

	if (MHD_get_timeout(h->daemon, &ms) == MHD_YES)
		at = timer_now() + (uint64_t)ms * NSEC_PER_MSEC;
	for (Conn *c = h->oldest; c; c = c->next)
		if (c->deadline && (!at || c->deadline < at))
			at = c->deadline;
	return at;
}
