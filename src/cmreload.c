/* cmreload.c: configmap-reload's flags as a rule file, parsed by the rule parser like any other,
 * so that the same checks, limits and `check` output apply. */
#include "cmreload.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "cleanup.h"

#define MAX_ATTEMPTS 1000 /* a count beyond any retry limit, small enough to add to */

enum { F_DIR, F_URL, F_METHOD, F_STATUS, F_RETRIES, F_LISTEN, F_TELEMETRY };

static const char *const flag_names[] = { "volume-dir",	       "webhook-url",
					  "webhook-method",    "webhook-status-code",
					  "webhook-retries",   "web.listen-address",
					  "web.telemetry-path" };

static int push(char ***v, size_t *n, char *s)
{
	char **nv = reallocarray(*v, *n + 1, sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[(*n)++] = s;
	return 0;
}

/* The flag arg names ("-name", "--name", "-name=value"), or -1; *value when it has one. */
static int flag_of(char *arg, char **value)
{
	char *name = arg + 1 + (arg[1] == '-');
	size_t len = strcspn(name, "=");

	if (arg[0] != '-' || strcmp(arg, "--") == 0)
		return -1;
	for (size_t i = 0; i < ELEMENTSOF(flag_names); i++)
		if (strlen(flag_names[i]) == len && strncmp(name, flag_names[i], len) == 0) {
			*value = name[len] == '=' ? name + len + 1 : NULL;
			return (int)i;
		}
	return -1;
}

static int set(CmReload *c, int flag, char *value)
{
	const char **one[] = { [F_METHOD] = &c->method,
			       [F_STATUS] = &c->status,
			       [F_RETRIES] = &c->retries,
			       [F_LISTEN] = &c->listen,
			       [F_TELEMETRY] = &c->telemetry };

	if (flag == F_DIR)
		return push(&c->dirs, &c->n_dirs, value);
	if (flag == F_URL)
		return push(&c->urls, &c->n_urls, value);
	*one[flag] = value; /* given twice, the last one counts, as in Go */
	return 0;
}

int cmreload_take(int *argc, char **argv, CmReload *c, char *err, size_t errsize)
{
	int kept = 1, taken = 0, i;

	for (i = 1; i < *argc; i++) {
		char *value = NULL;
		int flag = flag_of(argv[i], &value);
		if (strcmp(argv[i], "--") == 0)
			break; /* the end of the options for getopt too */
		if (flag < 0) {
			argv[kept++] = argv[i];
			continue;
		}
		if (!value && i + 1 == *argc) {
			snprintf(err, errsize, "flag needs an argument: -%s", flag_names[flag]);
			return -EINVAL;
		}
		if (set(c, flag, value ? value : argv[++i]) < 0)
			return -ENOMEM;
		taken++;
	}
	while (i < *argc)
		argv[kept++] = argv[i++];
	argv[kept] = NULL;
	*argc = kept;
	return taken;
}

void cmreload_done(CmReload *c)
{
	free(c->dirs);
	free(c->urls);
	*c = (CmReload){ 0 };
}

/* ---- the rule file ------------------------------------------------------------------------- */

typedef struct Builder {
	FILE *f;
	CmReloadText *t;
	int r;
} Builder;

/* s as a YAML double-quoted scalar, or as a message part (quotes false): control bytes, '"' and
 * '\' escaped, so nothing can end the value or the line early. */
static void quoted(FILE *f, const char *s, bool quotes)
{
	if (quotes)
		fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else if (quotes && (*p == '"' || *p == '\\'))
			fprintf(f, "\\%c", *p);
		else
			fputc(*p, f);
	if (quotes)
		fputc('"', f);
}

/* One line of the rule file: key, then value quoted (if any), from the flag origin names. */
static void line(Builder *b, const char *origin, const char *key, const char *value)
{
	char *o = NULL;

	if (b->r < 0)
		return;
	if (origin && !(o = strdup(origin))) {
		b->r = -ENOMEM;
		return;
	}
	fputs(key, b->f);
	if (value)
		quoted(b->f, value, true);
	fputc('\n', b->f);
	if (push(&b->t->origins, &b->t->n_lines, o) < 0) {
		free(o);
		b->r = -ENOMEM;
	}
}

/* "-flag value" with the value escaped, for a message. */
static char *origin(int flag, const char *value)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return NULL;
	fprintf(f, "-%s", flag_names[flag]);
	if (value) {
		fputc(' ', f);
		quoted(f, value, false);
	}
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Writes line through origin(flag, shown); the value written is value. */
static void line_from(Builder *b, int flag, const char *shown, const char *key, const char *value)
{
	_cleanup_free_ char *o = origin(flag, shown);

	if (!o)
		b->r = -ENOMEM;
	line(b, o, key, value);
}

static bool number(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	if (!s || !*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *out >= min && *out <= max;
}

static int check(const CmReload *c, char *err, size_t errsize)
{
	unsigned long n;
	ListenAddr addr;

	if (c->n_dirs == 0)
		snprintf(err, errsize, "missing -volume-dir: the directory to watch");
	else if (c->n_urls == 0)
		snprintf(err, errsize, "missing -webhook-url: the URL to request when it changes");
	else if (c->status && !number(c->status, 100, 599, &n))
		snprintf(err, errsize, "-webhook-status-code %s: not an HTTP status (100 to 599)",
			 c->status);
	else if (c->retries && !number(c->retries, 1, MAX_ATTEMPTS, &n))
		snprintf(err, errsize,
			 "-webhook-retries %s: not a number of attempts (1 or more, the first one "
			 "included, as configmap-reload counts them)",
			 c->retries);
	else if (c->listen && addr_parse(c->listen, &addr) < 0)
		snprintf(err, errsize, "-web.listen-address %s: not an address such as :9533",
			 c->listen);
	else if (c->telemetry && strcmp(c->telemetry, "/metrics") != 0)
		snprintf(err, errsize,
			 "-web.telemetry-path %s: sigreload serves its metrics at /metrics only",
			 c->telemetry);
	else
		return 0;
	return -EINVAL;
}

static void write_rule(Builder *b, const CmReload *c, size_t u, const char *cwd)
{
	char name[32], shown[32] = "", status[48], retries[48];
	unsigned long attempts = 1;

	snprintf(name, sizeof(name), "webhook");
	if (c->n_urls > 1) { /* one rule a URL, as configmap-reload requests each */
		snprintf(name, sizeof(name), "webhook-%zu", u + 1);
		snprintf(shown, sizeof(shown), "#%zu", u + 1);
	}
	/* configmap-reload counts attempts, the first included, and wants exactly its status */
	if (c->retries)
		number(c->retries, 1, MAX_ATTEMPTS, &attempts);
	/* numbers unquoted: checked to be digits only */
	snprintf(retries, sizeof(retries), "      retries: %lu", attempts - 1);
	snprintf(status, sizeof(status), "      expect_status: %s", c->status ? c->status : "200");
	line_from(b, F_URL, *shown ? shown : NULL, "  - name: ", name);
	line(b, NULL, "    paths:", NULL);
	for (size_t d = 0; d < c->n_dirs; d++) {
		_cleanup_free_ char *abs = NULL;
		const char *dir = c->dirs[d];
		/* configmap-reload watched a relative directory from where it ran */
		if (*dir && *dir != '/' && asprintf(&abs, "%s/%s", cwd, dir) < 0)
			b->r = -ENOMEM;
		line_from(b, F_DIR, dir, "      - ", abs ? abs : dir);
	}
	line(b, NULL, "    http:", NULL);
	line_from(b, F_URL, *shown ? shown : NULL, "      url: ", c->urls[u]);
	line_from(b, F_METHOD, c->method, "      method: ", c->method ? c->method : "POST");
	line_from(b, F_STATUS, c->status, status, NULL);
	line_from(b, F_RETRIES, c->retries, retries, NULL);
}

int cmreload_rules(const CmReload *c, CmReloadText *out, char *err, size_t errsize)
{
	char cwd[PATH_MAX];
	size_t len;
	Builder b = { .t = out };

	*out = (CmReloadText){ 0 };
	if (check(c, err, errsize) < 0)
		return -EINVAL;
	if (!getcwd(cwd, sizeof(cwd))) {
		snprintf(err, errsize, "cannot tell the current directory: %s", strerror(errno));
		return -errno;
	}
	if (!(b.f = open_memstream(&out->text, &len)))
		return -ENOMEM;
	line(&b, NULL, "# " CMRELOAD_SOURCE ", as a rule file", NULL);
	if (c->listen)
		line_from(&b, F_LISTEN, c->listen, "metrics_listen: ", c->listen);
	line(&b, NULL, "rules:", NULL);
	for (size_t u = 0; u < c->n_urls; u++)
		write_rule(&b, c, u, cwd);
	if (fclose(b.f) != 0 && b.r == 0)
		b.r = -ENOMEM;
	if (b.r < 0)
		cmreload_text_done(out);
	return b.r;
}

void cmreload_text_done(CmReloadText *t)
{
	for (size_t i = 0; i < t->n_lines; i++)
		free(t->origins[i]);
	free(t->origins);
	free(t->text);
	*t = (CmReloadText){ 0 };
}

/* "configmap-reload's flags:LINE:COL: what" becomes "FLAG: what" where a flag made the line. */
static void relabel(char **msg, const CmReloadText *t)
{
	const char *p = *msg + strlen(CMRELOAD_SOURCE);
	unsigned long line;
	char *end, *out;

	if (strncmp(*msg, CMRELOAD_SOURCE ":", strlen(CMRELOAD_SOURCE ":")) != 0)
		return;
	line = strtoul(p + 1, &end, 10);
	if (*end != ':' || line == 0 || line > t->n_lines || !t->origins[line - 1])
		return;
	strtoul(end + 1, &end, 10); /* the column: the flag is what to fix */
	if (strncmp(end, ": ", 2) != 0 ||
	    asprintf(&out, "%s: %s", t->origins[line - 1], end + 2) < 0)
		return;
	free(*msg);
	*msg = out;
}

int cmreload_load(const CmReload *c, Rules **out, RulesErrors *errs)
{
	CmReloadText t;
	char err[512], *msg;

	*errs = (RulesErrors){ 0 };
	int r = cmreload_rules(c, &t, err, sizeof(err));
	if (r < 0 && r != -ENOMEM) {
		if (!(msg = strdup(err)) || push(&errs->v, &errs->n, msg) < 0) {
			free(msg);
			return -ENOMEM;
		}
		return -EINVAL;
	}
	if (r < 0)
		return r;
	r = rules_parse(CMRELOAD_SOURCE, t.text, strlen(t.text), out, errs);
	for (size_t i = 0; i < errs->n; i++)
		relabel(&errs->v[i], &t);
	cmreload_text_done(&t);
	return r;
}
