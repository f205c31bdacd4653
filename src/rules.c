/* rules.c: the rule file, from YAML (libyaml's document API) to a validated Rules, every error
 * reported as FILE:LINE:COL. */
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "addr.h"
#include "cleanup.h"
#include "digest.h"
#include "duration.h"
#include "signame.h"

#define STRING_MAX 4096 /* any single value other than a path */
#define GLOB_MAX   255
#define REGEX_MAX  1024

typedef struct Problem {
	size_t line, col, seq;
	char *msg;
} Problem;

typedef struct Parser {
	const char *file;
	const char *buf;
	size_t len;
	yaml_document_t doc;
	Problem *problems;
	size_t n_problems;
	bool stop; /* too many errors, or out of memory */
	bool truncated; /* more than RULES_MAX_ERRORS problems: the rest were dropped */
	bool inherits_pair; /* a rule sets neither debounce nor max_wait */
} Parser;

static const char *const top_keys[] = { "debounce",	"max_wait",	  "resync",
					"handler_wait", "verify_after",	  "log_format",
					"log_level",	"metrics_listen", "rules" };
enum {
	TOP_DEBOUNCE,
	TOP_MAX_WAIT,
	TOP_RESYNC,
	TOP_HANDLER_WAIT,
	TOP_VERIFY_AFTER,
	TOP_LOG_FORMAT,
	TOP_LOG_LEVEL,
	TOP_METRICS_LISTEN,
	TOP_RULES,
	TOP_N
};

static const char *const rule_keys[] = { "name",	 "paths",	    "match",
					 "leaders_only", "signal",	    "debounce",
					 "max_wait",	 "signal_on_start", "handler_wait",
					 "verify_after" };
enum {
	R_NAME,
	R_PATHS,
	R_MATCH,
	R_LEADERS_ONLY,
	R_SIGNAL,
	R_DEBOUNCE,
	R_MAX_WAIT,
	R_SIGNAL_ON_START,
	R_HANDLER_WAIT,
	R_VERIFY_AFTER,
	R_N
};

static const char *const match_keys[] = { "comm", "cmdline", "exe", "uid" };
enum { M_COMM, M_CMDLINE, M_EXE, M_UID, M_N };

static void add_error(RulesErrors *errs, char *msg)
{
	char **v = msg ? reallocarray(errs->v, errs->n + 1, sizeof(*v)) : NULL;

	if (!v) {
		free(msg);
		return;
	}
	errs->v = v;
	errs->v[errs->n++] = msg;
}

static void perr_at(Parser *p, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void perr_at(Parser *p, size_t line, size_t col, const char *fmt, ...)
{
	Problem *v;
	char *msg;
	va_list ap;

	if (p->stop)
		return;
	if (p->n_problems >= RULES_MAX_ERRORS) {
		p->stop = p->truncated = true;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg || !(v = reallocarray(p->problems, p->n_problems + 1, sizeof(*v)))) {
		free(msg);
		p->stop = true;
		return;
	}
	p->problems = v;
	v[p->n_problems] = (Problem){ .line = line, .col = col, .seq = p->n_problems, .msg = msg };
	p->n_problems++;
}

static int problem_cmp(const void *a, const void *b)
{
	const Problem *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hands the problems over as "FILE:LINE:COL: message" lines in file order. */
static void report_problems(Parser *p, RulesErrors *errs)
{
	char *msg;

	if (p->n_problems > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(p->problems, p->n_problems, sizeof(*p->problems), problem_cmp);
	for (size_t i = 0; i < p->n_problems; i++) {
		Problem *pr = &p->problems[i];
		if (asprintf(&msg, "%s:%zu:%zu: %s", p->file, pr->line + 1, pr->col + 1, pr->msg) <
		    0)
			msg = NULL;
		add_error(errs, msg);
		free(pr->msg);
	}
	if (p->truncated &&
	    asprintf(&msg, "%s: too many errors, stopped after %zu", p->file, p->n_problems) >= 0) {
		add_error(errs, msg);
		errs->truncated = true;
	}
	free(p->problems);
	p->problems = NULL;
}

#define perr(p, node, ...)                                                                         \
	perr_at(p, (node)->start_mark.line, (node)->start_mark.column, __VA_ARGS__)

static yaml_node_t *node_at(Parser *p, int id)
{
	return yaml_document_get_node(&p->doc, id);
}

static bool is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
		if (strcmp((const char *)n->data.scalar.value, nulls[i]) == 0)
			return true;
	return false;
}

static const char *kind(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (is_null(n))
		return "empty";
	return "a single value";
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/* Small edit distance, for "did you mean"; large for anything long. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[33], cur[33];

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(cur));
	}
	return prev[lb];
}

static void unknown_key(Parser *p, const yaml_node_t *key, const char *where,
			const char *const *keys, size_t nkeys)
{
	const char *name = scalar(key), *best = NULL;
	size_t best_d = 3;
	char list[256] = "";

	if (strcmp(name, "<<") == 0) {
		perr(p, key,
		     "merge keys (<<) are not supported %s: write the keys out, or reuse a whole "
		     "value with an alias (match: *m)",
		     where);
		return;
	}
	for (size_t i = 0; i < nkeys; i++) {
		size_t d = edit_distance(name, keys[i]);
		/* "x" is two edits from "exe", but that is no reason to suggest it */
		if (d < best_d && 2 * d <= strlen(name))
			best_d = d, best = keys[i];
		strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
		strncat(list, keys[i], sizeof(list) - strlen(list) - 1);
	}
	if (best)
		perr(p, key, "unknown key \"%s\" %s; did you mean \"%s\"?", name, where, best);
	else
		perr(p, key, "unknown key \"%s\" %s; expected one of: %s", name, where, list);
}

/* Sorts a mapping's pairs into found[] by key, reporting unknown, duplicate and non-string keys.
 * found[i] is the value node of keys[i], or NULL. */
static void map_keys(Parser *p, yaml_node_t *map, const char *where, const char *const *keys,
		     size_t nkeys, yaml_node_t **found)
{
	yaml_node_t *key_nodes[16] = { 0 };

	memset(found, 0, nkeys * sizeof(*found));
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top && !p->stop; pair++) {
		yaml_node_t *k = node_at(p, pair->key), *v = node_at(p, pair->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			perr(p, k, "a key must be a plain name, not %s", kind(k));
			continue;
		}
		size_t i = 0;
		while (i < nkeys && strcmp(scalar(k), keys[i]) != 0)
			i++;
		if (i == nkeys) {
			unknown_key(p, k, where, keys, nkeys);
		} else if (found[i]) {
			perr(p, k, "duplicate key \"%s\" (first at line %zu): keep one", keys[i],
			     key_nodes[i]->start_mark.line + 1);
		} else {
			found[i] = v;
			key_nodes[i] = k;
		}
	}
}

/* A scalar that is not null and holds no NUL byte. */
static const char *get_scalar(Parser *p, yaml_node_t *n, const char *key, const char *what)
{
	if (n->type != YAML_SCALAR_NODE || is_null(n)) {
		perr(p, n, "%s must be %s, not %s", key, what, kind(n));
		return NULL;
	}
	if (strlen(scalar(n)) != n->data.scalar.length) {
		perr(p, n, "%s contains a NUL byte", key);
		return NULL;
	}
	return scalar(n);
}

static const char *get_string(Parser *p, yaml_node_t *n, const char *key, const char *what,
			      size_t max)
{
	const char *s = get_scalar(p, n, key, what);

	if (s && strlen(s) > max) {
		perr(p, n, "%s is too long (%zu bytes; at most %zu)", key, strlen(s), max);
		return NULL;
	}
	return s;
}

static bool get_duration(Parser *p, yaml_node_t *n, const char *key, uint64_t *out)
{
	char max[32];
	const char *s = get_scalar(p, n, key, "a duration such as 200ms or 5s");

	if (!s)
		return false;
	switch (duration_parse(s, out)) {
	case 0:
		return true;
	case -ERANGE:
		perr(p, n, "%s \"%s\" is too long: at most %s (one week)", key, s,
		     duration_format(DURATION_MAX_MS, max, sizeof(max)));
		return false;
	default:
		if (s[strspn(s, "0123456789")] == '\0') {
			perr(p, n, "%s \"%s\" has no unit: write %sms or %ss", key, s, s, s);
			return false;
		}
		perr(p, n,
		     "%s \"%s\" is not a duration: write a whole number and a unit, ms, s, m or h "
		     "(200ms, 5s, 1m), or 0",
		     key, s);
		return false;
	}
}

static bool get_bool(Parser *p, yaml_node_t *n, const char *key, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE" }, *const no[] = { "false",
										     "False",
										     "FALSE" };

	for (size_t i = 0; n->type == YAML_SCALAR_NODE && i < ELEMENTSOF(yes); i++) {
		if (strcmp(scalar(n), yes[i]) != 0 && strcmp(scalar(n), no[i]) != 0)
			continue;
		if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
			perr(p, n,
			     "%s must be true or false, not the string \"%s\": remove the quotes",
			     key, scalar(n));
			return false;
		}
		*out = strcmp(scalar(n), yes[i]) == 0;
		return true;
	}
	if (n->type == YAML_SCALAR_NODE && !is_null(n))
		perr(p, n, "%s must be true or false, not \"%s\"", key, scalar(n));
	else
		perr(p, n, "%s must be true or false, not %s", key, kind(n));
	return false;
}

static bool get_uid(Parser *p, yaml_node_t *n, uid_t *out)
{
	const char *s = get_scalar(p, n, "uid", "a number");
	unsigned long long v = 0;

	if (!s)
		return false;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		perr(p, n, "uid must be a number, not the string \"%s\": remove the quotes", s);
		return false;
	}
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9' || c - s >= 10) {
			perr(p, n, "uid must be a decimal number from 0 to 4294967294, not \"%s\"",
			     s);
			return false;
		}
		v = v * 10 + (unsigned)(*c - '0');
	}
	if (v > 4294967294ULL) {
		perr(p, n, "uid must be a decimal number from 0 to 4294967294, not \"%s\"", s);
		return false;
	}
	*out = (uid_t)v;
	return true;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > RULES_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

/* "//a//b/" → "/a/b"; fails on "." and ".." components. Returns a malloc'd path or NULL. */
static char *normalise_path(const char *s, bool *dots)
{
	char *out = malloc(strlen(s) + 2), *o = out;

	*dots = false;
	if (!out)
		return NULL;
	for (const char *c = s; *c;) {
		while (*c == '/')
			c++;
		if (!*c)
			break;
		size_t n = strcspn(c, "/");
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			*dots = true;
		*o++ = '/';
		memcpy(o, c, n);
		o += n;
		c += n;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	return out;
}

static void rule_done(Rule *r)
{
	free(r->name);
	for (size_t i = 0; i < r->n_paths; i++)
		free(r->paths[i]);
	free(r->paths);
	match_free(r->match);
	*r = (Rule){ 0 };
}

static void parse_paths(Parser *p, yaml_node_t *n, Rule *r)
{
	if (n->type != YAML_SEQUENCE_NODE ||
	    n->data.sequence.items.top == n->data.sequence.items.start) {
		if (n->type == YAML_SCALAR_NODE && !is_null(n))
			perr(p, n, "paths must be a list: write paths: [%s]", scalar(n));
		else
			perr(p, n, "paths must be a list of one or more absolute paths, not %s",
			     n->type == YAML_SEQUENCE_NODE ? "an empty list" : kind(n));
		return;
	}
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > RULES_MAX_PATHS) {
		perr(p, n,
		     "too many paths (%zu; at most %d): watch a common parent directory instead",
		     count, RULES_MAX_PATHS);
		return;
	}
	if (!(r->paths = calloc(count, sizeof(*r->paths)))) {
		p->stop = true;
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
	     it++) {
		yaml_node_t *item = node_at(p, *it);
		const char *s =
		    item ? get_string(p, item, "a path", "an absolute path", PATH_MAX - 1) : NULL;
		bool dots;
		if (!s)
			continue;
		if (s[0] != '/') {
			perr(p, item,
			     "path \"%s\" is relative: paths must be absolute (start with /)", s);
			continue;
		}
		char *norm = normalise_path(s, &dots);
		if (!norm) {
			p->stop = true;
			return;
		}
		if (dots) {
			perr(p, item,
			     "path \"%s\" has a \".\" or \"..\" component: write it without them",
			     s);
			free(norm);
			continue;
		}
		bool dup = false;
		for (size_t i = 0; i < r->n_paths && !dup; i++)
			dup = strcmp(r->paths[i], norm) == 0;
		if (dup) {
			if (strcmp(s, norm) == 0)
				perr(p, item, "duplicate path \"%s\": list it once", s);
			else
				perr(p, item,
				     "duplicate path \"%s\" (the same as \"%s\"): list it once", s,
				     norm);
			free(norm);
			continue;
		}
		r->paths[r->n_paths++] = norm;
	}
}

/* A match string. An empty one is refused: as a regex it would match every process, as a glob
 * none; either way it is a mistake (a template that expanded to nothing). */
static const char *get_pattern(Parser *p, yaml_node_t *n, const char *key, const char *what,
			       size_t max)
{
	const char *s = get_string(p, n, key, what, max);

	if (s && !*s) {
		perr(p, n, "%s is empty: write %s", key, what);
		return NULL;
	}
	return s;
}

/* The fewest characters a glob can match: '*' none, anything else one ("[a-z]" one). */
static size_t glob_min_length(const char *g)
{
	size_t n = 0;

	for (; *g; g++) {
		if (*g == '*')
			continue;
		if (*g == '\\' && g[1])
			g++;
		else if (*g == '[') {
			/* a bracket expression is one character; "[]x]" holds a ']' */
			const char *close = strchr(g + (g[1] == ']' ? 2 : 1), ']');
			if (close)
				g = close;
		}
		n++;
	}
	return n;
}

static void parse_match(Parser *p, yaml_node_t *n, Rule *r)
{
	yaml_node_t *f[M_N];
	const char *comm = NULL, *cmdline = NULL, *exe = NULL;
	uid_t uid;
	bool has_uid = false, ok = true;
	char err[256];

	if (n->type != YAML_MAPPING_NODE ||
	    n->data.mapping.pairs.top == n->data.mapping.pairs.start) {
		perr(p, n,
		     "match must be a mapping with at least one of comm, cmdline, exe or uid, not "
		     "%s",
		     n->type == YAML_MAPPING_NODE ? "an empty mapping" : kind(n));
		return;
	}
	map_keys(p, n, "in match", match_keys, M_N, f);
	if (f[M_COMM])
		ok &= (comm = get_pattern(p, f[M_COMM], "comm", "a glob such as nginx",
					  GLOB_MAX)) != NULL;
	/* the kernel keeps 15 bytes of a process name: a longer pattern matches nothing, ever */
	if (comm && glob_min_length(comm) > 15) {
		perr(p, f[M_COMM],
		     "comm \"%s\" can never match: the kernel keeps only the first 15 bytes of a "
		     "process name; match the first 15, or use cmdline",
		     comm);
		ok = false;
	}
	if (f[M_CMDLINE])
		ok &= (cmdline = get_pattern(p, f[M_CMDLINE], "cmdline", "a regular expression",
					     REGEX_MAX)) != NULL;
	if (f[M_EXE])
		ok &= (exe = get_pattern(p, f[M_EXE], "exe", "a glob such as /usr/sbin/nginx",
					 PATH_MAX - 1)) != NULL;
	if (f[M_UID])
		ok &= (has_uid = get_uid(p, f[M_UID], &uid));
	if (!ok || (!comm && !cmdline && !exe && !has_uid)) {
		comm = exe = NULL; /* still check the regex, on its own */
		has_uid = false;
		if (!cmdline)
			return;
	}
	int res = match_new(comm, cmdline, exe, has_uid ? &uid : NULL, &r->match, err, sizeof(err));
	if (res == 0 && !ok) {
		match_free(r->match);
		r->match = NULL;
	} else if (res == -EINVAL)
		perr(p, f[M_CMDLINE],
		     "cmdline \"%s\" is not a valid POSIX extended regular expression: %s", cmdline,
		     err);
	else if (res < 0)
		p->stop = true;
}

static bool get_signal(Parser *p, yaml_node_t *n, int *out)
{
	const char *s = get_scalar(p, n, "signal", "a signal such as SIGHUP");

	if (!s)
		return false;
	if (signame_parse(s, out) == 0)
		return true;
	if (!*s || s[strspn(s, "0123456789")] != '\0')
		perr(p, n,
		     "unknown signal \"%s\": use a name (SIGHUP or HUP), a number (1), or RTMIN+n",
		     s);
	else if (strlen(s) <= 2 && atoi(s) >= 32 && atoi(s) < SIGRTMIN)
		perr(p, n,
		     "signal %s is reserved by the C library for its threads: use 1 to 31, or "
		     "RTMIN+n (%d to %d)",
		     s, SIGRTMIN, SIGRTMAX);
	else
		perr(p, n, "signal %s does not exist: use 1 to 31, or RTMIN+n (%d to %d)", s,
		     SIGRTMIN, SIGRTMAX);
	return false;
}

/* Rule-level durations fall back to the global settings. */
static void rule_duration(Parser *p, yaml_node_t *n, const char *key, uint64_t global,
			  uint64_t *out)
{
	*out = global;
	if (n)
		get_duration(p, n, key, out);
}

/* Parses rule number index (from 1) into r; *name_node receives its name's node, if any. */
static void parse_rule(Parser *p, yaml_node_t *n, size_t index, const Settings *s, Rule *r,
		       yaml_node_t **name_node)
{
	yaml_node_t *f[R_N];
	char label[RULES_NAME_MAX + 32];

	*r = (Rule){ .leaders_only = true, .signal = SIGHUP };
	if (n->type != YAML_MAPPING_NODE) {
		perr(p, n, "a rule must be a mapping with name, paths and match, not %s", kind(n));
		return;
	}
	map_keys(p, n, "in a rule", rule_keys, R_N, f);
	*name_node = f[R_NAME];
	const char *name =
	    f[R_NAME] ? get_string(p, f[R_NAME], "name", "a name such as nginx", STRING_MAX) : NULL;
	if (name && valid_name(name))
		snprintf(label, sizeof(label), "rule \"%s\"", name);
	else
		snprintf(label, sizeof(label), "rule #%zu", index);
	if (name && !valid_name(name))
		perr(p, f[R_NAME],
		     "rule name \"%s\" is invalid: use 1 to %d letters, digits, '_', '.' or '-'",
		     name, RULES_NAME_MAX);
	else if (name && !(r->name = strdup(name)))
		p->stop = true;
	if (!f[R_NAME])
		perr(p, n, "%s has no name: add name: with a unique name", label);
	if (f[R_PATHS])
		parse_paths(p, f[R_PATHS], r);
	else
		perr(p, n, "%s has no paths: add paths: [/absolute/path]", label);
	if (f[R_MATCH])
		parse_match(p, f[R_MATCH], r);
	else
		perr(p, n, "%s has no match: add match: with comm, cmdline, exe or uid", label);
	if (f[R_LEADERS_ONLY])
		get_bool(p, f[R_LEADERS_ONLY], "leaders_only", &r->leaders_only);
	if (f[R_SIGNAL_ON_START])
		get_bool(p, f[R_SIGNAL_ON_START], "signal_on_start", &r->signal_on_start);
	if (f[R_SIGNAL])
		get_signal(p, f[R_SIGNAL], &r->signal);
	rule_duration(p, f[R_DEBOUNCE], "debounce", s->debounce_ms, &r->debounce_ms);
	rule_duration(p, f[R_MAX_WAIT], "max_wait", s->max_wait_ms, &r->max_wait_ms);
	rule_duration(p, f[R_HANDLER_WAIT], "handler_wait", s->handler_wait_ms,
		      &r->handler_wait_ms);
	rule_duration(p, f[R_VERIFY_AFTER], "verify_after", s->verify_after_ms,
		      &r->verify_after_ms);
	/* a rule that sets neither inherits the pair: checked once, at the top level */
	if (!f[R_DEBOUNCE] && !f[R_MAX_WAIT])
		p->inherits_pair = true;
	else if (r->max_wait_ms < r->debounce_ms) {
		char d[32], m[32];
		perr(p, f[R_MAX_WAIT] ? f[R_MAX_WAIT] : f[R_DEBOUNCE],
		     "max_wait (%s) is shorter than debounce (%s) in %s: set max_wait to at least "
		     "%s",
		     duration_format(r->max_wait_ms, m, sizeof(m)),
		     duration_format(r->debounce_ms, d, sizeof(d)), label, d);
	}
}

/* The value of key in a mapping, or NULL. */
static yaml_node_t *map_get(Parser *p, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = node_at(p, pair->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp(scalar(k), key) == 0)
			return node_at(p, pair->value);
	}
	return NULL;
}

static void parse_rules(Parser *p, yaml_node_t *n, Rules *rules)
{
	if (n->type != YAML_SEQUENCE_NODE ||
	    n->data.sequence.items.top == n->data.sequence.items.start) {
		perr(p, n, "rules must be a list of one or more rules, not %s",
		     n->type == YAML_SEQUENCE_NODE ? "an empty list" : kind(n));
		return;
	}
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > RULES_MAX_RULES) {
		perr(p, n, "too many rules (%zu; at most %d): let one rule watch several paths",
		     count, RULES_MAX_RULES);
		return;
	}
	if (!(rules->v = calloc(count, sizeof(*rules->v)))) {
		p->stop = true;
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top && !p->stop; it++) {
		yaml_node_t *item = node_at(p, *it), *name_node = NULL;
		Rule *r = &rules->v[rules->n++];
		parse_rule(p, item, rules->n, &rules->settings, r, &name_node);
		for (size_t i = 0; r->name && i + 1 < rules->n; i++)
			if (rules->v[i].name && strcmp(rules->v[i].name, r->name) == 0) {
				yaml_node_t *prev = node_at(p, n->data.sequence.items.start[i]);
				yaml_node_t *first = map_get(p, prev, "name");
				perr(p, name_node,
				     "duplicate rule name \"%s\" (first at line %zu): rule names "
				     "must be unique",
				     r->name, first ? first->start_mark.line + 1 : 0);
				break;
			}
	}
}

static void parse_settings(Parser *p, yaml_node_t *const *f, Settings *s)
{
	const char *v;

	if (f[TOP_DEBOUNCE])
		get_duration(p, f[TOP_DEBOUNCE], "debounce", &s->debounce_ms);
	if (f[TOP_MAX_WAIT])
		get_duration(p, f[TOP_MAX_WAIT], "max_wait", &s->max_wait_ms);
	if (f[TOP_HANDLER_WAIT])
		get_duration(p, f[TOP_HANDLER_WAIT], "handler_wait", &s->handler_wait_ms);
	if (f[TOP_VERIFY_AFTER])
		get_duration(p, f[TOP_VERIFY_AFTER], "verify_after", &s->verify_after_ms);
	if (f[TOP_RESYNC] && get_duration(p, f[TOP_RESYNC], "resync", &s->resync_ms) &&
	    s->resync_ms > 0 && s->resync_ms < 1000)
		perr(p, f[TOP_RESYNC], "resync must be 0 (never) or at least 1s");
	if (f[TOP_LOG_FORMAT] &&
	    (v = get_string(p, f[TOP_LOG_FORMAT], "log_format", "logfmt or json", STRING_MAX)) &&
	    log_format_parse(v, &s->log_format) < 0)
		perr(p, f[TOP_LOG_FORMAT], "log_format must be logfmt or json, not \"%s\"", v);
	if (f[TOP_LOG_LEVEL] &&
	    (v = get_string(p, f[TOP_LOG_LEVEL], "log_level", "debug, info, warn or error",
			    STRING_MAX)) &&
	    log_level_parse(v, &s->log_level) < 0)
		perr(p, f[TOP_LOG_LEVEL],
		     "log_level must be debug, info, warn or error, not \"%s\"", v);
	if (f[TOP_METRICS_LISTEN]) {
		yaml_node_t *n = f[TOP_METRICS_LISTEN];
		ListenAddr a;
		/* "" disables the endpoint; a plain empty value is YAML's null, also "off" */
		v = n->type == YAML_SCALAR_NODE && is_null(n)
			? ""
			: get_string(p, n, "metrics_listen", "an address such as \":9533\"", 256);
		if (v && *v && addr_parse(v, &a) < 0)
			perr(p, n,
			     "metrics_listen \"%s\" is not an address: write \":PORT\", "
			     "\"IPV4:PORT\", \"[IPV6]:PORT\" or \"\" to disable",
			     v);
		else if (v && !(s->metrics_listen = strdup(v)))
			p->stop = true;
	}
}

static void parse_root(Parser *p, yaml_node_t *root, Rules *rules)
{
	Settings *s = &rules->settings;
	yaml_node_t *f[TOP_N];

	if (root->type != YAML_MAPPING_NODE) {
		perr(p, root, "the rule file must be a mapping of settings and rules:, not %s",
		     kind(root));
		return;
	}
	map_keys(p, root, "at the top level", top_keys, TOP_N, f);
	parse_settings(p, f, s);
	if (f[TOP_RULES])
		parse_rules(p, f[TOP_RULES], rules);
	else if (!p->stop)
		perr(p, root, "no rules: add rules: with at least one rule");
	/* Once, not once per rule that inherits it; and only if one does: a pair that every
	 * rule overrides is never used. Defaults are consistent, so one of the keys is set. */
	if (p->inherits_pair && s->max_wait_ms < s->debounce_ms) {
		char d[32], m[32];
		perr(p, f[TOP_MAX_WAIT] ? f[TOP_MAX_WAIT] : f[TOP_DEBOUNCE],
		     "max_wait (%s) is shorter than debounce (%s): set max_wait to at least %s",
		     duration_format(s->max_wait_ms, m, sizeof(m)),
		     duration_format(s->debounce_ms, d, sizeof(d)), d);
	}
}

/* libyaml's reader reports a byte offset; turn it into line and column. Columns count
 * characters, as the parser's marks do: UTF-8 continuation bytes are not counted. */
static void offset_to_mark(const char *buf, size_t len, size_t off, size_t *line, size_t *col)
{
	*line = *col = 0;
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n')
			(*line)++, *col = 0;
		else if (((unsigned char)buf[i] & 0xc0) != 0x80)
			(*col)++;
	}
}

/* The byte at a parser mark (line, column in characters), or -1. */
static int byte_at(const Parser *p, size_t line, size_t col)
{
	size_t i = 0;

	for (; i < p->len && line > 0; i++)
		if (p->buf[i] == '\n')
			line--;
	for (; i < p->len && p->buf[i] != '\n'; i++)
		if (((unsigned char)p->buf[i] & 0xc0) != 0x80 && col-- == 0)
			return (unsigned char)p->buf[i];
	return -1;
}

static void yaml_error(Parser *p, const yaml_parser_t *y)
{
	size_t line, col;

	if (y->error == YAML_MEMORY_ERROR) {
		perr_at(p, 0, 0, "out of memory while reading YAML");
	} else if (y->error == YAML_READER_ERROR) {
		size_t off = y->problem_offset < p->len ? y->problem_offset : p->len;
		bool control = strstr(y->problem, "control characters") && y->problem_value >= 0;
		/* libyaml points at the byte that fails to continue a sequence: go back to the
		 * byte that started it, the one the user has to fix (a Latin-1 é, say) */
		if (strstr(y->problem, "trailing") && off > 0)
			while (--off > 0 && ((unsigned char)p->buf[off] & 0xc0) == 0x80)
				;
		offset_to_mark(p->buf, p->len, off, &line, &col);
		if (control)
			perr_at(p, line, col,
				"control character U+%04X is not allowed in a YAML file: remove it",
				(unsigned)y->problem_value);
		else if (off < p->len)
			perr_at(p, line, col,
				"not valid UTF-8 text (byte 0x%02X): save the file as UTF-8",
				(unsigned char)p->buf[off]);
		else
			perr_at(p, line, col, "not valid UTF-8 text (%s): save the file as UTF-8",
				y->problem);
	} else if (byte_at(p, y->problem_mark.line, y->problem_mark.column) == '\t') {
		/* libyaml says "found character that cannot start any token" */
		perr_at(p, y->problem_mark.line, y->problem_mark.column,
			"YAML syntax error: a tab in the indentation: indent with spaces, YAML "
			"does not allow tabs there");
	} else if (y->context) {
		perr_at(p, y->problem_mark.line, y->problem_mark.column,
			"YAML syntax error: %s (%s that starts at line %zu, column %zu)",
			y->problem, y->context, y->context_mark.line + 1,
			y->context_mark.column + 1);
	} else {
		perr_at(p, y->problem_mark.line, y->problem_mark.column, "YAML syntax error: %s",
			y->problem ? y->problem : "unknown");
	}
}

static void parser_done(yaml_parser_t **y)
{
	if (*y) {
		yaml_parser_delete(*y);
		free(*y);
	}
}

int rules_parse(const char *file, const char *buf, size_t len, Rules **out, RulesErrors *errs)
{
	_cleanup_(parser_done) yaml_parser_t *y = calloc(1, sizeof(*y));
	Parser p = { .file = file, .buf = buf, .len = len };
	Rules *rules = calloc(1, sizeof(*rules));
	yaml_document_t extra;

	*errs = (RulesErrors){ .read = true };
	digest_buf(buf, len, errs->sha256);
	if (!y || !rules || !(rules->file = strdup(file)) || !yaml_parser_initialize(y)) {
		free(y);
		y = NULL;
		rules_free(rules);
		return -ENOMEM;
	}
	memcpy(rules->sha256, errs->sha256, sizeof(rules->sha256));
	rules->settings = (Settings){ .debounce_ms = 200,
				      .max_wait_ms = 5000,
				      .handler_wait_ms = 10000,
				      .verify_after_ms = 1000,
				      .log_format = LOG_LOGFMT,
				      .log_level = LEVEL_INFO };
	yaml_parser_set_input_string(y, (const unsigned char *)buf, len);
	if (!yaml_parser_load(y, &p.doc)) {
		yaml_error(&p, y);
	} else {
		yaml_node_t *root = yaml_document_get_root_node(&p.doc);
		if (!root)
			perr_at(&p, 0, 0, "the file %s: it needs at least rules: with one rule",
				len == 0 ? "is empty" : "holds only comments and blank lines");
		else if (!yaml_parser_load(y, &extra))
			yaml_error(&p, y);
		else {
			if (yaml_document_get_root_node(&extra))
				perr_at(&p, extra.start_mark.line, extra.start_mark.column,
					"a second YAML document: keep one document (remove the "
					"\"---\")");
			else
				parse_root(&p, root, rules);
			yaml_document_delete(&extra);
		}
		yaml_document_delete(&p.doc);
	}
	if (!rules->settings.metrics_listen && !(rules->settings.metrics_listen = strdup(":9533")))
		p.stop = true;
	report_problems(&p, errs);
	if (errs->n > 0 || p.stop) {
		rules_free(rules);
		return errs->n > 0 ? -EINVAL : -ENOMEM;
	}
	*out = rules;
	return 0;
}

int rules_load(const char *file, Rules **out, RulesErrors *errs)
{
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct stat st;
	char *msg;
	int r = 0;

	*errs = (RulesErrors){ 0 };
	if (fd < 0 || fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EINVAL;
	else if (!(buf = malloc(RULES_MAX_FILE_BYTES + 1)))
		r = -ENOMEM;
	while (r == 0) {
		ssize_t n = read(fd, buf + len, RULES_MAX_FILE_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		else if (n == 0)
			break;
		else if ((len += (size_t)n) > RULES_MAX_FILE_BYTES)
			r = -EFBIG;
	}
	if (r == 0)
		return rules_parse(file, buf, len, out, errs);
	if (r == -EINVAL)
		r = asprintf(&msg, "%s: cannot read the rule file: not a regular file", file) < 0
			? -ENOMEM
			: -EINVAL;
	else if (r == -EFBIG)
		r = asprintf(&msg, "%s: the rule file is larger than %d bytes", file,
			     RULES_MAX_FILE_BYTES) < 0
			? -ENOMEM
			: -EFBIG;
	else if (asprintf(&msg, "%s: cannot read the rule file: %s", file, strerror(-r)) < 0)
		r = -ENOMEM;
	if (r != -ENOMEM)
		add_error(errs, msg);
	return r;
}

void rules_free(Rules *rules)
{
	if (!rules)
		return;
	for (size_t i = 0; i < rules->n; i++)
		rule_done(&rules->v[i]);
	free(rules->v);
	free(rules->settings.metrics_listen);
	free(rules->file);
	free(rules);
}

void rules_errors_done(RulesErrors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->v[i]);
	free(errs->v);
	*errs = (RulesErrors){ 0 };
}

const Rule *rules_find(const Rules *rules, const char *name)
{
	for (size_t i = 0; i < rules->n; i++)
		if (strcmp(rules->v[i].name, name) == 0)
			return &rules->v[i];
	return NULL;
}

bool rules_same_paths(const Rule *a, const Rule *b)
{
	if (a->n_paths != b->n_paths)
		return false;
	for (size_t i = 0; i < a->n_paths; i++)
		if (strcmp(a->paths[i], b->paths[i]) != 0)
			return false;
	return true;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool rules_same_action(const Rule *a, const Rule *b)
{
	uid_t ua = 0, ub = 0;

	if (!a->match || !b->match)
		return false; /* http actions: compared once the parser fills them */
	return same_str(match_comm(a->match), match_comm(b->match)) &&
	       same_str(match_cmdline(a->match), match_cmdline(b->match)) &&
	       same_str(match_exe(a->match), match_exe(b->match)) &&
	       match_uid(a->match, &ua) == match_uid(b->match, &ub) && ua == ub &&
	       a->leaders_only == b->leaders_only && a->signal == b->signal && !a->verify &&
	       !b->verify;
}

/* Length of the UTF-8 sequence at s and its code point, or 0 if it is not valid UTF-8. */
static size_t utf8_decode(const unsigned char *s, uint32_t *out)
{
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len = 0;

	if (s[0] < 0x80)
		len = 1;
	else if ((s[0] & 0xe0) == 0xc0)
		len = 2;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4;
	uint32_t c = len == 1 ? s[0] : s[0] & (0x7fu >> len);

	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (len == 0 || c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*out = c;
	return len;
}

/* What may stand as itself in a double-quoted scalar: libyaml's reader refuses control
 * characters (C0, DEL, C1), and NEL, LS and PS would be folded as line breaks. */
static bool yaml_plain_char(uint32_t c)
{
	return (c >= 0x20 && c <= 0x7e) ||
	       (c >= 0xa0 && c <= 0xd7ff && c != 0x2028 && c != 0x2029) ||
	       (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

/* s as YAML double-quoted scalar text (quoted) or as comment text, so that any value reads
 * back the same. Bytes that are not UTF-8 can only come from a file name. */
static void print_escaped(FILE *f, const char *s, bool quoted)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t c;

	if (quoted)
		fputc('"', f);
	while (*p) {
		size_t n = utf8_decode(p, &c);
		if (n == 0) {
			fprintf(f, "\\x%02x", *p++);
			continue;
		}
		if (quoted && (c == '"' || c == '\\'))
			fprintf(f, "\\%c", (int)c);
		else if (yaml_plain_char(c))
			fwrite(p, 1, n, f);
		else
			fprintf(f, c < 0x100 ? "\\x%02x" : "\\u%04x", (unsigned)c);
		p += n;
	}
	if (quoted)
		fputc('"', f);
}

static void print_quoted(FILE *f, const char *s)
{
	print_escaped(f, s, true);
}

static void print_duration(FILE *f, const char *indent, const char *key, uint64_t ms)
{
	char buf[32];

	fprintf(f, "%s%s: %s\n", indent, key, duration_format(ms, buf, sizeof(buf)));
}

void rules_print(const Rules *rules, FILE *f)
{
	const Settings *s = &rules->settings;
	char sig[SIGNAME_MAX];
	uid_t uid;

	fputs("# ", f);
	print_escaped(f, rules->file, false); /* a newline in the name would end the comment */
	fprintf(f, ": valid, %zu rule%s (every default written out)\n", rules->n,
		rules->n == 1 ? "" : "s");
	print_duration(f, "", "debounce", s->debounce_ms);
	print_duration(f, "", "max_wait", s->max_wait_ms);
	print_duration(f, "", "resync", s->resync_ms);
	print_duration(f, "", "handler_wait", s->handler_wait_ms);
	print_duration(f, "", "verify_after", s->verify_after_ms);
	fprintf(f,
		"log_format: %s\nlog_level: %s\nmetrics_listen: ", log_format_name(s->log_format),
		log_level_name(s->log_level));
	print_quoted(f, s->metrics_listen);
	fputs("\nrules:\n", f);
	for (size_t i = 0; i < rules->n; i++) {
		const Rule *r = &rules->v[i];
		/* quoted: names such as null, true or - would read back as something else */
		fputs("  - name: ", f);
		print_quoted(f, r->name);
		fputs("\n    paths:\n", f);
		for (size_t j = 0; j < r->n_paths; j++) {
			fputs("      - ", f);
			print_quoted(f, r->paths[j]);
			fputc('\n', f);
		}
		fputs("    match:\n", f);
		const char *keys[] = { "comm", "cmdline", "exe" };
		const char *vals[] = { match_comm(r->match), match_cmdline(r->match),
				       match_exe(r->match) };
		for (size_t k = 0; k < ELEMENTSOF(keys); k++)
			if (vals[k]) {
				fprintf(f, "      %s: ", keys[k]);
				print_quoted(f, vals[k]);
				fputc('\n', f);
			}
		if (match_uid(r->match, &uid))
			fprintf(f, "      uid: %u\n", (unsigned)uid);
		fprintf(f, "    leaders_only: %s\n    signal: %s\n",
			r->leaders_only ? "true" : "false", signame_format(r->signal, sig));
		print_duration(f, "    ", "debounce", r->debounce_ms);
		print_duration(f, "    ", "max_wait", r->max_wait_ms);
		fprintf(f, "    signal_on_start: %s\n", r->signal_on_start ? "true" : "false");
		print_duration(f, "    ", "handler_wait", r->handler_wait_ms);
		print_duration(f, "    ", "verify_after", r->verify_after_ms);
	}
}
