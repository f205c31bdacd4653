/* rules_http.c: the values of http: and verify: in a rule file. A URL's userinfo becomes basic
 * auth and leaves the URL, so that nothing that prints a URL can print a password; every value
 * that ends up in a request is checked for what would let it forge one (CR, LF, NUL). */
#include "rules_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "match.h"

#define REDACTED "xxxxx"

static bool set_string(YamlDoc *d, char **field, const char *s, size_t len)
{
	free(*field);
	if (!(*field = strndup(s, len)))
		yamldoc_oom(d);
	return *field != NULL;
}

/* RFC 9110's tchar: what a method or a header name is made of. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

/* A control character other than a tab: what would end a header line or a request. */
static bool has_control(const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return true;
	return false;
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..len) into a malloc'd string: -EINVAL for a bad escape or one that
 * decodes to a control character, -ENOMEM. */
static int percent_decode(const char *s, size_t len, char **out)
{
	char *o = malloc(len + 1), *p = o;

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			*p++ = s[i];
			continue;
		}
		int hi = i + 2 < len ? hex(s[i + 1]) : -1, lo = hi >= 0 ? hex(s[i + 2]) : -1;
		if (lo < 0 || (hi << 4 | lo) < 0x20 || (hi << 4 | lo) == 0x7f) {
			free(o);
			return -EINVAL;
		}
		*p++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*p = '\0';
	*out = o;
	return 0;
}

typedef struct UrlParts {
	size_t scheme, auth, host, end; /* offsets: "://" at scheme, authority, host, its end */
	const char *at; /* the '@' ending the userinfo, or NULL */
} UrlParts;

/* NULL, or what is wrong with url (its parts in *u). */
static const char *split_url(const char *s, UrlParts *u)
{
	const char *sep = strstr(s, "://");

	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return "has a space, a control character or a byte that is not ASCII: "
			       "percent-encode it";
	if (!sep || sep == s)
		return "is not a URL: write http://HOST[:PORT]/PATH or https://...";
	u->scheme = (size_t)(sep - s);
	if (!((u->scheme == 4 && strncasecmp(s, "http", 4) == 0) ||
	      (u->scheme == 5 && strncasecmp(s, "https", 5) == 0)))
		return "has a scheme other than http and https: use http:// or https://";
	u->auth = u->scheme + 3;
	u->end = u->auth + strcspn(s + u->auth, "/?#");
	u->at = memrchr(s + u->auth, '@', u->end - u->auth);
	u->host = u->at ? (size_t)(u->at - s) + 1 : u->auth;
	const char *host = s + u->host, *end = s + u->end, *port = NULL;
	if (host == end || *host == ':')
		return "has no host: write http://HOST[:PORT]/PATH";
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));
		if (!close || (close + 1 < end && close[1] != ':'))
			return "has a bad IPv6 address: write it as [::1]";
		port = close + 1 < end ? close + 1 : NULL;
	} else {
		port = memchr(host, ':', (size_t)(end - host));
	}
	if (port) {
		unsigned v = 0;
		size_t n = (size_t)(end - port - 1);
		if (n == 0 || n > 5 || strspn(port + 1, "0123456789") < n)
			return "has a bad port: use a number from 1 to 65535";
		for (const char *c = port + 1; c < end; c++)
			v = v * 10 + (unsigned)(*c - '0');
		if (v < 1 || v > 65535)
			return "has a bad port: use a number from 1 to 65535";
	}
	return NULL;
}

static bool has_userinfo(const char *s)
{
	UrlParts u;

	return !split_url(s, &u) && u.at;
}

/* s with its password, if it has one, written as REDACTED: what a message may quote. */
static char *redact(const char *s)
{
	UrlParts u;
	const char *colon;
	char *out;

	if (split_url(s, &u) || !u.at || !(colon = memchr(s + u.auth, ':', u.at - (s + u.auth))))
		return strdup(s);
	if (asprintf(&out, "%.*s:" REDACTED "%s", (int)(colon - s), s, u.at) < 0)
		return NULL;
	return out;
}

static bool url_error(YamlDoc *d, yaml_node_t *n, const RulesKey *k, const char *url,
		      const char *why)
{
	_cleanup_free_ char *shown = redact(url);

	if (!shown)
		yamldoc_oom(d);
	else
		yamldoc_error(d, n, "%s \"%s\" %s", k->name, shown, why);
	return false;
}

/* The userinfo of a URL: user name and password, percent-decoded. */
static bool parse_userinfo(YamlDoc *d, yaml_node_t *n, const RulesKey *k, const char *s,
			   const UrlParts *u, HttpRequest *req)
{
	const char *user = s + u->auth, *colon = memchr(user, ':', (size_t)(u->at - user));
	size_t user_len = (size_t)((colon ? colon : u->at) - user);
	_cleanup_free_ char *name = NULL, *password = NULL;
	int r = percent_decode(user, user_len, &name);

	if (r == 0 && colon)
		r = percent_decode(colon + 1, (size_t)(u->at - colon - 1), &password);
	if (r == -ENOMEM) {
		yamldoc_oom(d);
		return false;
	}
	if (r < 0 || strchr(name, ':'))
		return url_error(d, n, k, s,
				 "has a user name or password that is not valid: write %XX, two "
				 "hex digits, for a byte other than a control character, and no "
				 "colon in the user name");
	free(req->username);
	free(req->password);
	req->username = TAKE_PTR(name);
	req->password = TAKE_PTR(password);
	return true;
}

static bool parse_url(YamlDoc *d, yaml_node_t *n, const RulesKey *k, HttpRequest *req)
{
	const char *s = yamldoc_string(d, n, k->name, k->what, k->max), *why;
	_cleanup_free_ char *url = NULL;
	UrlParts u;

	if (!s)
		return false;
	if ((why = split_url(s, &u)))
		return url_error(d, n, k, s, why);
	if (u.at && !parse_userinfo(d, n, k, s, &u, req))
		return false;
	if (asprintf(&url, "%.*s%s", (int)u.auth, s, s + u.host) < 0) {
		yamldoc_oom(d);
		return false;
	}
	free(req->url);
	req->url = TAKE_PTR(url);
	return true;
}

static bool parse_status(YamlDoc *d, yaml_node_t *n, const RulesKey *k, HttpRequest *req)
{
	yaml_node_item_t one[1] = { 0 }, *start = one, *top = one + 1;
	size_t count = 1;
	uint64_t v;

	if (n->type == YAML_SEQUENCE_NODE && !yamldoc_empty(n)) {
		start = n->data.sequence.items.start;
		top = n->data.sequence.items.top;
		count = (size_t)(top - start);
	} else if (n->type != YAML_SCALAR_NODE || yamldoc_is_null(n)) {
		yamldoc_error(d, n, "%s must be a status such as 200, or a list of them, not %s",
			      k->name,
			      n->type == YAML_SEQUENCE_NODE ? "an empty list" : yamldoc_kind(n));
		return false;
	}
	if (count > k->max) {
		yamldoc_error(d, n, "too many statuses (%zu; at most %zu)", count, k->max);
		return false;
	}
	free(req->expect_status);
	req->n_expect_status = 0;
	if (!(req->expect_status = calloc(count, sizeof(*req->expect_status)))) {
		yamldoc_oom(d);
		return false;
	}
	bool ok = true;
	for (yaml_node_item_t *it = start; it < top; it++) {
		yaml_node_t *item = start == one ? n : yamldoc_node(d, *it);
		if (item && yamldoc_number(d, item, k->name, 100, 599, &v))
			req->expect_status[req->n_expect_status++] = (int)v;
		else
			ok = false;
	}
	return ok;
}

/* One header: its name a token, given once; its value without control characters. */
static bool parse_header(YamlDoc *d, yaml_node_t *key, yaml_node_t *val, HttpRequest *req)
{
	const char *name = yamldoc_string(d, key, "a header name", "a name such as X-Reload", 256);
	const char *value = yamldoc_string(d, val, "a header's value", "a string", 4096);
	char *line;

	if (!name || !value)
		return false;
	if (!is_token(name)) {
		yamldoc_error(d, key,
			      "header name \"%s\" is not valid: use letters, digits and "
			      "!#$%%&'*+-.^_`|~",
			      name);
		return false;
	}
	if (has_control(value)) {
		yamldoc_error(d, val, "header %s's value has a control character: remove it", name);
		return false;
	}
	for (size_t i = 0; i < req->n_headers; i++) {
		size_t len = strcspn(req->headers[i], ":");
		if (len == strlen(name) && strncasecmp(req->headers[i], name, len) == 0) {
			yamldoc_error(d, key, "header %s is given twice: keep one", name);
			return false;
		}
	}
	if (asprintf(&line, "%s: %s", name, value) < 0) {
		yamldoc_oom(d);
		return false;
	}
	req->headers[req->n_headers++] = line;
	return true;
}

static bool parse_headers(YamlDoc *d, yaml_node_t *n, const RulesKey *k, HttpRequest *req)
{
	size_t count = 0;
	bool ok = true;

	if (n->type == YAML_MAPPING_NODE)
		count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (count == 0) {
		yamldoc_error(d, n, "%s must be %s, not %s", k->name, k->what,
			      n->type == YAML_MAPPING_NODE ? "an empty mapping" : yamldoc_kind(n));
		return false;
	}
	if (count > k->max) {
		yamldoc_error(d, n, "too many headers (%zu; at most %zu)", count, k->max);
		return false;
	}
	if (!(req->headers = calloc(count, sizeof(*req->headers)))) {
		yamldoc_oom(d);
		return false;
	}
	for (yaml_node_pair_t *pair = n->data.mapping.pairs.start;
	     pair < n->data.mapping.pairs.top && !d->stop; pair++) {
		yaml_node_t *key = yamldoc_node(d, pair->key), *val = yamldoc_node(d, pair->value);
		if (!key || !val || !parse_header(d, key, val, req))
			ok = false;
	}
	return ok;
}

bool rules_http_value(YamlDoc *d, yaml_node_t *n, const RulesKey *k, void *field)
{
	const char *s;

	switch (k->type) {
	case RT_URL:
		return parse_url(d, n, k, field);
	case RT_STATUS:
		return parse_status(d, n, k, field);
	case RT_HEADERS:
		return parse_headers(d, n, k, field);
	case RT_METHOD:
		if (!(s = yamldoc_string(d, n, k->name, k->what, k->max)))
			return false;
		if (!is_token(s)) {
			yamldoc_error(
			    d, n,
			    "method \"%s\" is not an HTTP method: write one such as POST, "
			    "PUT or GET",
			    s);
			return false;
		}
		return set_string(d, field, s, strlen(s));
	case RT_FILE:
		if (!(s = yamldoc_string(d, n, k->name, k->what, k->max)))
			return false;
		if (s[0] != '/') {
			yamldoc_error(
			    d, n, "%s \"%s\" is relative: write an absolute path (start with /)",
			    k->name, s);
			return false;
		}
		return set_string(d, field, s, strlen(s));
	default: /* RT_STRING */
		if (!(s = yamldoc_string(d, n, k->name, k->what, k->max)))
			return false;
		if (!*s || has_control(s)) {
			yamldoc_error(d, n, "%s must be %s, without control characters", k->name,
				      k->what);
			return false;
		}
		return set_string(d, field, s, strlen(s));
	}
}

/* The value node of section s's key name in found. */
static yaml_node_t *found_key(RulesSection s, yaml_node_t *const *found, const char *name)
{
	return found[rules_key(s, name) - rules_sections[s].keys];
}

static bool finish_verify(YamlDoc *d, Verify *v, yaml_node_t *const *found)
{
	char err[256];

	if (!v->req.method && !(v->req.method = strdup("GET"))) {
		yamldoc_oom(d);
		return false;
	}
	if (!v->expect_body)
		return true;
	int r = match_regex_compile(v->expect_body, &v->body_re, err, sizeof(err));
	if (r == -EINVAL)
		yamldoc_error(
		    d, found_key(RS_VERIFY, found, "expect_body"),
		    "expect_body \"%s\" is not a valid POSIX extended regular expression: "
		    "%s",
		    v->expect_body, err);
	else if (r < 0)
		yamldoc_oom(d);
	if (r < 0) {
		free(v->expect_body);
		v->expect_body = NULL;
	}
	return r == 0;
}

bool rules_http_finish(YamlDoc *d, yaml_node_t *n, RulesSection s, void *base,
		       yaml_node_t *const *found)
{
	HttpRequest *req = base;
	yaml_node_t *url, *cert, *key;

	switch (s) {
	case RS_HTTP:
		url = found_key(s, found, "url");
		if (url && found_key(s, found, "basic_auth") && url->type == YAML_SCALAR_NODE &&
		    has_userinfo(yamldoc_text(url))) {
			yamldoc_error(d, url,
				      "url has a user name and basic_auth is set too: keep "
				      "one");
			return false;
		}
		return true;
	case RS_BASIC_AUTH:
		if (req->username && strchr(req->username, ':')) {
			yamldoc_error(d, found_key(s, found, "username"),
				      "username \"%s\" has a colon: basic authentication cannot "
				      "carry one",
				      req->username);
			return false;
		}
		return true;
	case RS_TLS:
		cert = found_key(s, found, "cert_file");
		key = found_key(s, found, "key_file");
		if (!cert != !key) {
			yamldoc_error(d, n,
				      "tls has %s but no %s: a client certificate needs both "
				      "cert_file and key_file",
				      cert ? "cert_file" : "key_file",
				      cert ? "key_file" : "cert_file");
			return false;
		}
		return true;
	case RS_VERIFY:
		return finish_verify(d, base, found);
	default:
		return true;
	}
}

char *rules_url_redacted(const HttpRequest *req)
{
	const char *rest = strstr(req->url, "://");
	FILE *f;
	char *out = NULL;
	size_t size;

	/* with a password_file, the user name is basic_auth's: the URL had none */
	if (!req->username || req->password_file || !rest)
		return strdup(req->url);
	if (!(f = open_memstream(&out, &size)))
		return NULL;
	fprintf(f, "%.*s://", (int)(rest - req->url), req->url);
	/* the user name as it would be written: percent-encoded where the URL syntax needs */
	for (const unsigned char *c = (const unsigned char *)req->username; *c; c++)
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("-._~!$&'()*+,;=", *c))
			fputc(*c, f);
		else
			fprintf(f, "%%%02X", *c);
	fprintf(f, "%s@%s", req->password ? ":" REDACTED : "", rest + 3);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

void rules_http_request_done(HttpRequest *r)
{
	free(r->url);
	free(r->method);
	free(r->expect_status);
	for (size_t i = 0; i < r->n_headers; i++)
		free(r->headers[i]);
	free(r->headers);
	free(r->bearer_token_file);
	free(r->username);
	free(r->password);
	free(r->password_file);
	free(r->ca_file);
	free(r->cert_file);
	free(r->key_file);
	free(r->server_name);
	*r = (HttpRequest){ 0 };
}

void rules_verify_free(Verify *v)
{
	if (!v)
		return;
	rules_http_request_done(&v->req);
	if (v->expect_body)
		regfree(&v->body_re);
	free(v->expect_body);
	free(v);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_request(const HttpRequest *a, const HttpRequest *b)
{
	if (a->n_expect_status != b->n_expect_status || a->n_headers != b->n_headers ||
	    a->timeout_ms != b->timeout_ms || a->insecure_skip_verify != b->insecure_skip_verify)
		return false;
	for (size_t i = 0; i < a->n_expect_status; i++)
		if (a->expect_status[i] != b->expect_status[i])
			return false;
	for (size_t i = 0; i < a->n_headers; i++)
		if (strcmp(a->headers[i], b->headers[i]) != 0)
			return false;
	return same_str(a->url, b->url) && same_str(a->method, b->method) &&
	       same_str(a->bearer_token_file, b->bearer_token_file) &&
	       same_str(a->username, b->username) && same_str(a->password, b->password) &&
	       same_str(a->password_file, b->password_file) && same_str(a->ca_file, b->ca_file) &&
	       same_str(a->cert_file, b->cert_file) && same_str(a->key_file, b->key_file) &&
	       same_str(a->server_name, b->server_name);
}

bool rules_http_same_action(const HttpAction *a, const HttpAction *b)
{
	if (!a || !b)
		return !a && !b;
	return a->retries == b->retries && same_request(&a->req, &b->req);
}

bool rules_http_same_verify(const Verify *a, const Verify *b)
{
	if (!a || !b)
		return !a && !b;
	return same_str(a->expect_body, b->expect_body) && same_request(&a->req, &b->req);
}
