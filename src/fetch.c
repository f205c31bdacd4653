/* fetch.c: HTTP requests on libcurl's multi-socket interface: curl says which sockets and which
 * timeout it waits for, sigreload's epoll loop waits for them, and curl is called back when they
 * are ready. No thread, no blocking call, no polling. */
#include "fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "hosts.h"
#include "timer.h"

#define ERROR_MAX 512 /* >= CURL_ERROR_SIZE: curl writes its messages here too */

/* One socket curl waits on: what the loop hands back to fetcher_dispatch. */
typedef struct FetchSocket {
	Source src; /* first: the loop hands it back */
	uint32_t events; /* registered with the loop; 0: not registered */
} FetchSocket;

struct Fetch {
	Fetcher *f;
	Fetch *prev, *next;
	CURL *easy; /* NULL once it failed before reaching curl */
	struct curl_slist *headers, *resolve, *connect_to;
	FetchDone done;
	void *userdata;
	uint64_t start;
	char *body;
	size_t body_len, max_body;
	bool truncated;
	bool finishing; /* its done is running: fetch_cancel must not free it */
	bool due; /* failed before curl, to be told in this round */
	int err; /* of a failure found before curl */
	char *token, *password; /* what the error string must never show */
	char error[ERROR_MAX];
};

struct Fetcher {
	Loop *loop;
	CURLM *multi;
	uint64_t deadline; /* curl's timer; 0: none */
	uint64_t failed_due; /* failures found in fetch_start wait for this; 0: none */
	Fetch *head, *tail; /* in the order started: failures are told in that order */
	bool hosts_only; /* libcurl would resolve in a thread: see fetch_resolver */
	bool curl_global; /* curl_global_init succeeded: curl_global_cleanup is owed */
};

const char *fetch_resolver(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	return v->ares && (v->features & CURL_VERSION_ASYNCHDNS) ? "c-ares" : "hosts-file";
}

/* ---- credentials --------------------------------------------------------------------------- */

static void secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* path's content with surrounding whitespace removed (as Prometheus reads these files); for a
 * header value (in_header) no control byte, for a password no NUL. -errno with x->error set. */
static int read_secret(Fetch *x, const char *key, const char *path, bool in_header, char **out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	char buf[FETCH_MAX_SECRET_BYTES + 1];
	struct stat st;
	ssize_t n = 0;
	int r = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EINVAL;
	else if ((n = read(fd, buf, sizeof(buf))) < 0)
		r = -errno;
	else if ((size_t)n > FETCH_MAX_SECRET_BYTES)
		r = -EMSGSIZE;
	if (r < 0) {
		snprintf(x->error, sizeof(x->error), "%s %s: %s", key, path,
			 r == -EINVAL	  ? "not a regular file"
			 : r == -EMSGSIZE ? "larger than 16384 bytes"
					  : strerror(-r));
		return r;
	}
	size_t len = (size_t)n, from = 0;
	while (len > 0 && space(buf[len - 1]))
		len--;
	while (from < len && space(buf[from]))
		from++;
	for (size_t i = from; i < len; i++)
		if (buf[i] == '\0' ||
		    (in_header && ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)))
			r = -EBADMSG;
	if (r == 0 && in_header && from == len)
		r = -EBADMSG;
	if (r == 0 && !(*out = strndup(buf + from, len - from)))
		r = -ENOMEM;
	if (r == -EBADMSG)
		snprintf(x->error, sizeof(x->error), "%s %s: %s", key, path,
			 from == len ? "empty" : "holds a control character");
	explicit_bzero(buf, sizeof(buf));
	return r;
}

/* Replaces every occurrence of secret in s with "<redacted>". */
static void redact(char *s, size_t size, const char *secret)
{
	static const char mark[] = "<redacted>";
	size_t n = secret ? strlen(secret) : 0;
	char *p;

	if (n == 0)
		return;
	while ((p = strstr(s, secret))) {
		size_t tail = strlen(p + n);
		if ((size_t)(p - s) + sizeof(mark) - 1 + tail >= size)
			tail = size - (size_t)(p - s) - sizeof(mark); /* cut, never overflow */
		memmove(p + sizeof(mark) - 1, p + n, tail);
		p[sizeof(mark) - 1 + tail] = '\0';
		memcpy(p, mark, sizeof(mark) - 1);
	}
}

/* ---- the request --------------------------------------------------------------------------- */

static bool has_header(const HttpRequest *req, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < req->n_headers; i++)
		if (strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
			return true;
	return false;
}

static int add_header(Fetch *x, const char *h)
{
	struct curl_slist *l = curl_slist_append(x->headers, h);

	if (!l)
		return -ENOMEM;
	x->headers = l;
	return 0;
}

/* As Go's client sends them: a POST, PUT or PATCH says Content-Length: 0, and no Content-Type. */
static int set_method(Fetch *x, const HttpRequest *req)
{
	const char *m = req->method ? req->method : "POST";
	CURL *e = x->easy;

	if (strcmp(m, "GET") == 0)
		return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -ENOMEM;
	if (strcmp(m, "HEAD") == 0)
		return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK ? 0 : -ENOMEM;
	if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
		if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L) != CURLE_OK ||
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "") != CURLE_OK)
			return -ENOMEM;
		if (!has_header(req, "Content-Type") && add_header(x, "Content-Type:") < 0)
			return -ENOMEM;
	}
	return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) == CURLE_OK ? 0 : -ENOMEM;
}

static int set_headers(Fetch *x, const HttpRequest *req)
{
	_cleanup_free_ char *auth = NULL;
	int r;

	for (size_t i = 0; i < req->n_headers; i++)
		if ((r = add_header(x, req->headers[i])) < 0)
			return r;
	if (req->bearer_token_file) {
		if ((r = read_secret(x, "bearer_token_file", req->bearer_token_file, true,
				     &x->token)) < 0)
			return r;
		if (asprintf(&auth, "Authorization: Bearer %s", x->token) < 0)
			return -ENOMEM;
		r = add_header(x, auth);
		explicit_bzero(auth, strlen(auth));
		if (r < 0)
			return r;
	}
	if (req->username) {
		const char *pw = req->password ? req->password : "";
		if (req->password_file && (r = read_secret(x, "password_file", req->password_file,
							   false, &x->password)) < 0)
			return r;
		if (!x->password && !(x->password = strdup(pw)))
			return -ENOMEM;
		if (curl_easy_setopt(x->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK ||
		    curl_easy_setopt(x->easy, CURLOPT_USERNAME, req->username) != CURLE_OK ||
		    curl_easy_setopt(x->easy, CURLOPT_PASSWORD, x->password) != CURLE_OK)
			return -ENOMEM;
	}
	return curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers) == CURLE_OK ? 0 : -ENOMEM;
}

/* A TLS file must be readable now: a missing one is named with its errno, not as a handshake
 * failure. */
static int readable(Fetch *x, const char *key, const char *path)
{
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -EBADF;

	if (!path || fd >= 0)
		return 0;
	int r = -errno;
	snprintf(x->error, sizeof(x->error), "tls.%s %s: %s", key, path, strerror(-r));
	return r;
}

static int set_tls(Fetch *x, const HttpRequest *req)
{
	CURL *e = x->easy;
	int r;

	if ((r = readable(x, "ca_file", req->ca_file)) < 0 ||
	    (r = readable(x, "cert_file", req->cert_file)) < 0 ||
	    (r = readable(x, "key_file", req->key_file)) < 0)
		return r;
	/* a ca_file replaces the system's CAs, as in Prometheus' tls_config, and is read again at
	 * every connection */
	if (req->ca_file && (curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file) != CURLE_OK ||
			     curl_easy_setopt(e, CURLOPT_CAPATH, NULL) != CURLE_OK))
		return -ENOMEM;
	if (curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK)
		return -ENOMEM;
	if ((req->cert_file && curl_easy_setopt(e, CURLOPT_SSLCERT, req->cert_file) != CURLE_OK) ||
	    (req->key_file && curl_easy_setopt(e, CURLOPT_SSLKEY, req->key_file) != CURLE_OK))
		return -ENOMEM;
	if (req->insecure_skip_verify && (curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) ||
					  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L)))
		return -ENOMEM;
	return 0;
}

static bool ip_literal(const char *host)
{
	unsigned char bin[sizeof(struct in6_addr)];

	return host[0] == '[' || inet_pton(AF_INET, host, bin) == 1;
}

/* libcurl resolves IP addresses and localhost itself; with a resolver thread it would make for
 * anything else, names are taken from /etc/hosts, and any other is refused. */
static int resolve_without_thread(Fetch *x, const char *host, const char *port)
{
	char addrs[HOSTS_LIST_MAX];
	_cleanup_free_ char *entry = NULL;
	size_t n = strlen(host);

	if (!x->f->hosts_only || ip_literal(host) || strcasecmp(host, "localhost") == 0 ||
	    (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0))
		return 0;
	int r = hosts_lookup(HOSTS_FILE, host, addrs);
	if (r <= 0) {
		snprintf(x->error, sizeof(x->error),
			 "cannot resolve %s: this build resolves names through " HOSTS_FILE
			 " only (its libcurl would use a thread): use an IP address, localhost "
			 "or a name listed there",
			 host);
		return -EHOSTUNREACH;
	}
	if (asprintf(&entry, "%s:%s:%s", host, port, addrs) < 0 ||
	    !(x->resolve = curl_slist_append(NULL, entry)) ||
	    curl_easy_setopt(x->easy, CURLOPT_RESOLVE, x->resolve) != CURLE_OK)
		return -ENOMEM;
	return 0;
}

static void url_done(CURLU **u)
{
	curl_url_cleanup(*u);
}

/* server_name: the TLS name (SNI, verification) differs from the host connected to. The URL
 * names it, curl connects to the real host, and Host: still says the real host, as in Go. */
static int set_server_name(Fetch *x, const HttpRequest *req, CURLU *u, const char *host,
			   const char *port)
{
	_cleanup_free_ char *to = NULL, *hosthdr = NULL;
	char *given = NULL; /* the port as the URL writes it: none when it is the default */

	bool with_port = curl_url_get(u, CURLUPART_PORT, &given, 0) == CURLUE_OK;
	int r =
	    asprintf(&hosthdr, "Host: %s%s%s", host, with_port ? ":" : "", with_port ? given : "");
	curl_free(given);
	if (r < 0 || asprintf(&to, "%s:%s:%s:%s", req->server_name, port, host, port) < 0 ||
	    !(x->connect_to = curl_slist_append(NULL, to)) ||
	    curl_url_set(u, CURLUPART_HOST, req->server_name, 0) != CURLUE_OK)
		return -ENOMEM;
	if (!has_header(req, "Host") && add_header(x, hosthdr) < 0)
		return -ENOMEM;
	return curl_easy_setopt(x->easy, CURLOPT_CONNECT_TO, x->connect_to) == CURLE_OK ? 0
											: -ENOMEM;
}

static int set_target(Fetch *x, const HttpRequest *req)
{
	_cleanup_(url_done) CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *scheme = NULL, *user = NULL, *url = NULL;
	int r = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, req->url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
		snprintf(x->error, sizeof(x->error), "not a URL");
	else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		snprintf(x->error, sizeof(x->error), "not an http:// or https:// URL");
	else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		 curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		snprintf(x->error, sizeof(x->error), "not a URL: no host");
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		snprintf(x->error, sizeof(x->error), "credentials in the URL: use basic_auth");
	else
		r = 0;
	if (r == 0)
		r = resolve_without_thread(x, host, port);
	if (r == 0 && req->server_name && strcmp(scheme, "https") == 0)
		r = set_server_name(x, req, u, host, port);
	if (r == 0 && (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK ||
		       curl_easy_setopt(x->easy, CURLOPT_URL, url) != CURLE_OK))
		r = -ENOMEM;
	curl_free(host);
	curl_free(port);
	curl_free(scheme);
	curl_free(user);
	curl_free(url);
	return r;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
	Fetch *x = userdata;
	size_t len = size * n, room = x->max_body - x->body_len, take = len < room ? len : room;

	if (take > 0) {
		if (!x->body && !(x->body = malloc(x->max_body + 1)))
			return 0;
		memcpy(x->body + x->body_len, data, take);
		x->body_len += take;
	}
	if (take < len) {
		x->truncated = true;
		return 0; /* enough: the transfer stops here */
	}
	return len;
}

/* No proxy, not even from the environment. A libcurl built without proxies (the image's)
 * refuses the option as unknown, and reads no proxy variable either. */
static CURLcode set_no_proxy(CURL *e)
{
	CURLcode c = curl_easy_setopt(e, CURLOPT_PROXY, "");

	return c == CURLE_UNKNOWN_OPTION ? CURLE_OK : c;
}

/* What every request is: HTTP(S) only, no redirect followed, no proxy, a fresh connection each
 * time (nothing held between reloads). */
static int set_common(Fetch *x, const HttpRequest *req)
{
	CURL *e = x->easy;

	if (curl_easy_setopt(e, CURLOPT_PRIVATE, x) ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error) ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ||
	    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) || set_no_proxy(e) ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms) ||
	    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L) ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "sigreload/" SIGRELOAD_VERSION) ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, x))
		return -ENOMEM;
	return 0;
}

/* Everything one attempt needs, files read now. -errno with x->error set (but for ENOMEM). */
static int prepare(Fetch *x, const HttpRequest *req)
{
	int r;

	if (!(x->easy = curl_easy_init()))
		return -ENOMEM;
	if ((r = set_common(x, req)) < 0 || (r = set_target(x, req)) < 0 ||
	    (r = set_method(x, req)) < 0 || (r = set_tls(x, req)) < 0 ||
	    (r = set_headers(x, req)) < 0)
		return r;
	return 0;
}

/* ---- curl's callbacks: its sockets into the loop, its timer into our deadline ---------------- */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userdata, void *socketp)
{
	Fetcher *f = userdata;
	FetchSocket *s = socketp;
	uint32_t events = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? EPOLLIN : 0) |
			  (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? EPOLLOUT : 0);
	int r = 0;

	(void)easy;
	if (!s && what == CURL_POLL_REMOVE)
		return 0;
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			return -1;
		s->src = (Source){ .type = SOURCE_FETCH, .fd = fd };
		curl_multi_assign(f->multi, fd, s);
	}
	/* a socket with no interest leaves the set: epoll would still report its hang-up */
	if (events != s->events)
		r = !s->events ? loop_add(f->loop, &s->src, events)
		    : !events  ? loop_remove(f->loop, &s->src)
			       : loop_modify(f->loop, &s->src, events);
	if (r == 0)
		s->events = events;
	if (what == CURL_POLL_REMOVE) {
		curl_multi_assign(f->multi, fd, NULL);
		free(s);
	}
	return r < 0 ? -1 : 0;
}

/* curl's timer; curl_multi_socket_action must not be called from here. The deadline is kept until
 * curl moves it: cleared by us, a timeout curl found not yet due would never come back. */
static int on_timer(CURLM *multi, long ms, void *userdata)
{
	Fetcher *f = userdata;

	(void)multi;
	f->deadline = ms < 0 ? 0 : timer_now() + (uint64_t)ms * NSEC_PER_MSEC;
	return 0;
}

/* ---- the end of a request ------------------------------------------------------------------ */

static int errno_of(CURLcode code, long os_errno)
{
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_CONTENT_ENCODING:
		return -EPROTO;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static void unlink_fetch(Fetch *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		x->f->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		x->f->tail = x->prev;
	x->prev = x->next = NULL;
}

static void fetch_free(Fetch *x)
{
	if (x->easy) {
		curl_multi_remove_handle(x->f->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->headers);
	curl_slist_free_all(x->resolve);
	curl_slist_free_all(x->connect_to);
	secret_free(x->token);
	secret_free(x->password);
	free(x->body);
	free(x);
}

/* Calls back once, then frees x. code: curl's, when it reached curl. */
static void finish(Fetch *x, CURLcode code)
{
	FetchResult r = { .err = x->err, .body = x->body ? x->body : "", .body_len = x->body_len };
	long os_errno = 0;

	if (x->easy) {
		if (code == CURLE_WRITE_ERROR && x->truncated)
			code = CURLE_OK; /* stopped by on_body at max_body: the answer is there */
		curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
		r.err = code == CURLE_OK ? 0 : errno_of(code, os_errno);
		if (code == CURLE_OK)
			curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
		if (code != CURLE_OK && !x->error[0])
			snprintf(x->error, sizeof(x->error), "%s", curl_easy_strerror(code));
	} else if (!x->error[0]) {
		snprintf(x->error, sizeof(x->error), "%s", strerror(-x->err));
	}
	if (x->body)
		x->body[x->body_len] = '\0';
	redact(x->error, sizeof(x->error), x->token);
	redact(x->error, sizeof(x->error), x->password);
	r.error = r.err ? x->error : NULL;
	r.truncated = x->truncated;
	r.seconds = (double)(timer_now() - x->start) / 1e9;
	unlink_fetch(x);
	x->finishing = true;
	x->done(&r, x->userdata);
	fetch_free(x);
}

/* Whatever curl has finished, and the failures fetch_start found: called back from here only. */
static void deliver(Fetcher *f)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(f->multi, &left))) {
		Fetch *x = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		CURLcode code = m->data.result; /* m is curl's, gone once the handle is removed */
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		finish(x, code);
	}
	if (!f->failed_due)
		return;
	/* the failures found so far; one a callback causes waits for the next round */
	f->failed_due = 0;
	for (Fetch *x = f->head; x; x = x->next)
		x->due = !x->easy;
	for (Fetch *x = f->head; x;) {
		if (!x->due) {
			x = x->next;
			continue;
		}
		finish(x, CURLE_OK);
		x = f->head; /* the callback may have started or cancelled others */
	}
}

/* ---- the interface ------------------------------------------------------------------------- */

DEFINE_CLEANUP_FUNC(Fetcher, fetcher_free)

int fetcher_new(Loop *loop, Fetcher **out)
{
	_cleanup_(fetcher_freep) Fetcher *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	f->curl_global = true;
	f->loop = loop;
	f->hosts_only = strcmp(fetch_resolver(), "hosts-file") == 0;
	if (!(f->multi = curl_multi_init()) ||
	    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f) != CURLM_OK ||
	    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f) != CURLM_OK)
		return -ENOMEM;
	*out = TAKE_PTR(f);
	return 0;
}

void fetcher_free(Fetcher *f)
{
	if (!f)
		return;
	while (f->head)
		fetch_cancel(f->head);
	curl_multi_cleanup(f->multi);
	if (f->curl_global)
		curl_global_cleanup();
	free(f);
}

int fetch_start(Fetcher *f, const HttpRequest *req, size_t max_body, FetchDone done, void *userdata,
		Fetch **out)
{
	Fetch *x;

	if (max_body > FETCH_MAX_BODY || !req->url || req->timeout_ms == 0 ||
	    req->timeout_ms > LONG_MAX)
		return -EINVAL;
	if (!(x = calloc(1, sizeof(*x))))
		return -ENOMEM;
	*x = (Fetch){ .f = f,
		      .done = done,
		      .userdata = userdata,
		      .start = timer_now(),
		      .max_body = max_body,
		      .prev = f->tail };
	int r = prepare(x, req);
	if (r == 0 && curl_multi_add_handle(f->multi, x->easy) != CURLM_OK)
		r = -ENOMEM;
	if (r == -ENOMEM) {
		fetch_free(x);
		return r;
	}
	if (r < 0) {
		/* told from the next fetcher_run_due, never from here: the caller is mid-change */
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		x->err = r;
		f->failed_due = timer_now();
	}
	if (f->tail)
		f->tail->next = x;
	else
		f->head = x;
	f->tail = x;
	*out = x;
	return 0;
}

void fetch_cancel(Fetch *x)
{
	if (!x || x->finishing)
		return;
	unlink_fetch(x);
	fetch_free(x);
}

void fetcher_dispatch(Fetcher *f, Source *src, uint32_t events)
{
	int flags = (events & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
		    (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
		    (events & EPOLLERR ? CURL_CSELECT_ERR : 0);
	int running;

	/* src may be freed from inside: curl closes a socket it is done with */
	curl_multi_socket_action(f->multi, src->fd, flags, &running);
	deliver(f);
}

uint64_t fetcher_deadline(const Fetcher *f)
{
	if (f->failed_due && (!f->deadline || f->failed_due < f->deadline))
		return f->failed_due;
	return f->deadline;
}

void fetcher_run_due(Fetcher *f)
{
	int running;

	if (f->deadline && f->deadline <= timer_now())
		curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	deliver(f);
}

bool fetch_status_expected(const HttpRequest *req, long status)
{
	if (req->n_expect_status == 0)
		return status >= 200 && status <= 299;
	for (size_t i = 0; i < req->n_expect_status; i++)
		if (req->expect_status[i] == status)
			return true;
	return false;
}
