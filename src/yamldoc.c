/* yamldoc.c: a YAML document from libyaml, within limits checked before its loader runs, with
 * typed readers for its nodes and every problem reported as FILE:LINE:COL. */
#include "yamldoc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "duration.h"
#include "utf8.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

void yamldoc_oom(YamlDoc *d)
{
	d->stop = d->oom = true;
}

void yamldoc_error_at(YamlDoc *d, size_t line, size_t col, const char *fmt, ...)
{
	YamlProblem *v;
	char *msg;
	va_list ap;

	if (d->stop)
		return;
	if (d->n_problems >= YAMLDOC_MAX_ERRORS) {
		d->stop = d->truncated = true;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (!msg || !(v = reallocarray(d->problems, d->n_problems + 1, sizeof(*v)))) {
		free(msg);
		yamldoc_oom(d);
		return;
	}
	d->problems = v;
	v[d->n_problems] =
	    (YamlProblem){ .line = line, .col = col, .seq = d->n_problems, .msg = msg };
	d->n_problems++;
}

static int problem_cmp(const void *a, const void *b)
{
	const YamlProblem *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Appends an escaped copy of line to *v; frees line. */
static void add_line(YamlDoc *d, char ***v, size_t *n, char *line)
{
	_cleanup_free_ char *raw = line;
	char *esc = raw ? utf8_escape(raw) : NULL;
	char **grown = esc ? reallocarray(*v, *n + 1, sizeof(**v)) : NULL;

	if (!grown) {
		free(esc);
		yamldoc_oom(d);
		return;
	}
	*v = grown;
	(*v)[(*n)++] = esc;
}

size_t yamldoc_report(YamlDoc *d, char ***v, size_t *n, bool *truncated)
{
	size_t before = *n;
	char *line;

	if (d->n_problems > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(d->problems, d->n_problems, sizeof(*d->problems), problem_cmp);
	for (size_t i = 0; i < d->n_problems; i++) {
		YamlProblem *pr = &d->problems[i];
		if (asprintf(&line, "%s:%zu:%zu: %s", d->file, pr->line + 1, pr->col + 1, pr->msg) <
		    0)
			line = NULL;
		add_line(d, v, n, line);
	}
	if (d->truncated) {
		if (asprintf(&line, "%s: too many errors, stopped after %zu", d->file,
			     d->n_problems) < 0)
			line = NULL;
		add_line(d, v, n, line);
		*truncated = true;
	}
	return *n - before;
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
static int byte_at(const YamlDoc *d, size_t line, size_t col)
{
	size_t i = 0;

	for (; i < d->len && line > 0; i++)
		if (d->buf[i] == '\n')
			line--;
	for (; i < d->len && d->buf[i] != '\n'; i++)
		if (((unsigned char)d->buf[i] & 0xc0) != 0x80 && col-- == 0)
			return (unsigned char)d->buf[i];
	return -1;
}

static void reader_error(YamlDoc *d, const yaml_parser_t *y)
{
	size_t off = y->problem_offset < d->len ? y->problem_offset : d->len, line, col;
	bool control = strstr(y->problem, "control characters") && y->problem_value >= 0;

	/* libyaml points at the byte that fails to continue a sequence: go back to the byte that
	 * started it, the one the user has to fix (a Latin-1 é, say) */
	if (strstr(y->problem, "trailing") && off > 0)
		while (--off > 0 && ((unsigned char)d->buf[off] & 0xc0) == 0x80)
			;
	offset_to_mark(d->buf, d->len, off, &line, &col);
	if (control)
		yamldoc_error_at(
		    d, line, col,
		    "control character U+%04X is not allowed in a YAML file: remove it",
		    (unsigned)y->problem_value);
	else if (off < d->len)
		yamldoc_error_at(d, line, col,
				 "not valid UTF-8 text (byte 0x%02X): save the file as UTF-8",
				 (unsigned char)d->buf[off]);
	else
		yamldoc_error_at(d, line, col, "not valid UTF-8 text (%s): save the file as UTF-8",
				 y->problem);
}

static void yaml_error(YamlDoc *d, const yaml_parser_t *y)
{
	const yaml_mark_t *m = &y->problem_mark;

	if (y->error == YAML_MEMORY_ERROR)
		yamldoc_oom(d);
	else if (y->error == YAML_READER_ERROR)
		reader_error(d, y);
	else if (byte_at(d, m->line, m->column) == '\t')
		/* libyaml says "found character that cannot start any token" */
		yamldoc_error_at(d, m->line, m->column,
				 "YAML syntax error: a tab in the indentation: indent with spaces, "
				 "YAML does not allow tabs there");
	else if (y->context)
		yamldoc_error_at(d, m->line, m->column,
				 "YAML syntax error: %s (%s that starts at line %zu, column %zu)",
				 y->problem, y->context, y->context_mark.line + 1,
				 y->context_mark.column + 1);
	else
		yamldoc_error_at(d, m->line, m->column, "YAML syntax error: %s",
				 y->problem ? y->problem : "unknown");
}

/* UTF-16 and UTF-32, which libyaml would read (UTF-16 with a byte order mark) or misread, as the
 * YAML specification tells them apart: by a byte order mark, or by the NULs of an ASCII first
 * character. NULL for anything else. */
static const char *other_encoding(const unsigned char *b, size_t n)
{
	if (n >= 4 && b[0] == 0 && b[1] == 0 && (b[2] == 0xfe || b[2] == 0) && b[3])
		return "UTF-32"; /* big-endian */
	if (n >= 4 && b[0] && (b[1] == 0 || (b[0] == 0xff && b[1] == 0xfe)) && b[2] == 0 &&
	    b[3] == 0)
		return "UTF-32";
	if (n >= 2 && ((b[0] == 0xfe && b[1] == 0xff) || (b[0] == 0xff && b[1] == 0xfe) ||
		       (b[0] == 0 && b[1]) || (b[0] && b[1] == 0)))
		return "UTF-16";
	return NULL;
}

typedef struct Counts {
	size_t depth, nodes, anchors, aliases;
} Counts;

/* The limit one event passes, or NULL. */
static const char *count_event(Counts *c, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL;

	switch (ev->type) {
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		if (++c->depth > YAMLDOC_MAX_DEPTH)
			return "nested more than " STRINGIFY(
			    YAMLDOC_MAX_DEPTH) " levels deep: a "
					       "rule file needs 7 at most";
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		if (++c->depth > YAMLDOC_MAX_DEPTH)
			return "nested more than " STRINGIFY(
			    YAMLDOC_MAX_DEPTH) " levels deep: a "
					       "rule file needs 7 at most";
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		c->depth--;
		return NULL;
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_ALIAS_EVENT:
		if (++c->aliases > YAMLDOC_MAX_ALIASES)
			return "more than " STRINGIFY(
			    YAMLDOC_MAX_ALIASES) " aliases (*name): "
						 "write the values out, or share fewer";
		break;
	default:
		return NULL;
	}
	if (anchor && ++c->anchors > YAMLDOC_MAX_ANCHORS)
		return "more than " STRINGIFY(YAMLDOC_MAX_ANCHORS) " anchors (&name): name "
								   "fewer values";
	if (++c->nodes > YAMLDOC_MAX_NODES)
		return "more than " STRINGIFY(
		    YAMLDOC_MAX_NODES) " values (keys, list items and "
				       "their values): 256 rules of 64 paths need about 20000";
	return NULL;
}

/* One pass over libyaml's events, which costs time linear in the input and memory for one
 * event: the limits are enforced here, before the loader could do quadratic work. Stops at the
 * first problem and records it. */
static bool prescan(YamlDoc *d)
{
	yaml_parser_t y;
	yaml_event_t ev;
	Counts c = { 0 };
	bool ok = true, end = false;

	if (!yaml_parser_initialize(&y)) {
		yamldoc_oom(d);
		return false;
	}
	yaml_parser_set_input_string(&y, (const unsigned char *)d->buf, d->len);
	while (ok && !end) {
		if (!yaml_parser_parse(&y, &ev)) {
			yaml_error(d, &y);
			ok = false;
			break;
		}
		const char *limit = count_event(&c, &ev);
		if (limit) {
			yamldoc_error_at(d, ev.start_mark.line, ev.start_mark.column, "%s", limit);
			ok = false;
		}
		end = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&y);
	return ok;
}

static void parser_done(yaml_parser_t **y)
{
	if (*y) {
		yaml_parser_delete(*y);
		free(*y);
	}
}

/* The second document, if any, is an error; so is none. */
static yaml_node_t *load_one(YamlDoc *d, yaml_parser_t *y)
{
	yaml_document_t extra;
	yaml_node_t *root;

	if (!yaml_parser_load(y, &d->doc)) {
		yaml_error(d, y);
		return NULL;
	}
	d->loaded = true;
	if (!(root = yaml_document_get_root_node(&d->doc))) {
		yamldoc_error_at(d, 0, 0, "the file %s: it needs at least rules: with one rule",
				 d->len == 0 ? "is empty" : "holds only comments and blank lines");
		return NULL;
	}
	if (!yaml_parser_load(y, &extra)) {
		yaml_error(d, y);
		return NULL;
	}
	if (yaml_document_get_root_node(&extra)) {
		yamldoc_error_at(d, extra.start_mark.line, extra.start_mark.column,
				 "a second YAML document: keep one document (remove the \"---\")");
		root = NULL;
	}
	yaml_document_delete(&extra);
	return root;
}

yaml_node_t *yamldoc_load(YamlDoc *d, const char *file, const char *buf, size_t len)
{
	_cleanup_(parser_done) yaml_parser_t *y = NULL;
	const char *enc = other_encoding((const unsigned char *)buf, len);

	*d = (YamlDoc){ .file = file, .buf = buf, .len = len };
	if (enc) {
		yamldoc_error_at(d, 0, 0, "the file is %s: save it as UTF-8", enc);
		return NULL;
	}
	if (!prescan(d))
		return NULL;
	if (!(y = calloc(1, sizeof(*y))) || !yaml_parser_initialize(y)) {
		free(y);
		y = NULL;
		yamldoc_oom(d);
		return NULL;
	}
	yaml_parser_set_input_string(y, (const unsigned char *)buf, len);
	return load_one(d, y);
}

void yamldoc_done(YamlDoc *d)
{
	for (size_t i = 0; i < d->n_problems; i++)
		free(d->problems[i].msg);
	free(d->problems);
	d->problems = NULL;
	d->n_problems = 0;
	if (d->loaded)
		yaml_document_delete(&d->doc);
	d->loaded = false;
}

yaml_node_t *yamldoc_node(YamlDoc *d, int id)
{
	return yaml_document_get_node(&d->doc, id);
}

bool yamldoc_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < ELEMENTSOF(nulls); i++)
		if (strcmp((const char *)n->data.scalar.value, nulls[i]) == 0)
			return true;
	return false;
}

const char *yamldoc_kind(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (yamldoc_is_null(n))
		return "empty";
	return "a single value";
}

const char *yamldoc_text(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

bool yamldoc_empty(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return n->data.mapping.pairs.top == n->data.mapping.pairs.start;
	return n->type == YAML_SEQUENCE_NODE &&
	       n->data.sequence.items.top == n->data.sequence.items.start;
}

yaml_node_t *yamldoc_get(YamlDoc *d, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yamldoc_node(d, pair->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp(yamldoc_text(k), key) == 0)
			return yamldoc_node(d, pair->value);
	}
	return NULL;
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

void yamldoc_unknown_key(YamlDoc *d, const yaml_node_t *key, const char *where,
			 const char *const *names, size_t n)
{
	const char *name = yamldoc_text(key), *best = NULL;
	size_t best_d = 3;
	char list[512] = "";

	if (strcmp(name, "<<") == 0) {
		yamldoc_error(d, key,
			      "merge keys (<<) are not supported %s: write the keys out, or reuse "
			      "a whole value with an alias (match: *m)",
			      where);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t dist = edit_distance(name, names[i]);
		/* "x" is two edits from "exe", but that is no reason to suggest it */
		if (dist < best_d && 2 * dist <= strlen(name))
			best_d = dist, best = names[i];
		strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
		strncat(list, names[i], sizeof(list) - strlen(list) - 1);
	}
	if (best)
		yamldoc_error(d, key, "unknown key \"%s\" %s; did you mean \"%s\"?", name, where,
			      best);
	else
		yamldoc_error(d, key, "unknown key \"%s\" %s; expected one of: %s", name, where,
			      list);
}

const char *yamldoc_scalar(YamlDoc *d, yaml_node_t *n, const char *key, const char *what)
{
	if (n->type != YAML_SCALAR_NODE || yamldoc_is_null(n)) {
		yamldoc_error(d, n, "%s must be %s, not %s", key, what, yamldoc_kind(n));
		return NULL;
	}
	if (strlen(yamldoc_text(n)) != n->data.scalar.length) {
		yamldoc_error(d, n, "%s contains a NUL byte", key);
		return NULL;
	}
	return yamldoc_text(n);
}

const char *yamldoc_string(YamlDoc *d, yaml_node_t *n, const char *key, const char *what,
			   size_t max)
{
	const char *s = yamldoc_scalar(d, n, key, what);

	if (s && strlen(s) > max) {
		yamldoc_error(d, n, "%s is too long (%zu bytes; at most %zu)", key, strlen(s), max);
		return NULL;
	}
	return s;
}

bool yamldoc_duration(YamlDoc *d, yaml_node_t *n, const char *key, uint64_t *out)
{
	char max[32];
	const char *s = yamldoc_scalar(d, n, key, "a duration such as 200ms or 5s");

	if (!s)
		return false;
	switch (duration_parse(s, out)) {
	case 0:
		return true;
	case -ERANGE:
		yamldoc_error(d, n, "%s \"%s\" is too long: at most %s (one week)", key, s,
			      duration_format(DURATION_MAX_MS, max, sizeof(max)));
		return false;
	default:
		if (s[strspn(s, "0123456789")] == '\0')
			yamldoc_error(d, n, "%s \"%s\" has no unit: write %sms or %ss", key, s, s,
				      s);
		else
			yamldoc_error(d, n,
				      "%s \"%s\" is not a duration: write a whole number and a "
				      "unit, ms, s, m or h (200ms, 5s, 1m), or 0",
				      key, s);
		return false;
	}
}

bool yamldoc_bool(YamlDoc *d, yaml_node_t *n, const char *key, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };

	for (size_t i = 0; n->type == YAML_SCALAR_NODE && i < ELEMENTSOF(yes); i++) {
		const char *s = yamldoc_text(n);
		if (strcmp(s, yes[i]) != 0 && strcmp(s, no[i]) != 0)
			continue;
		if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
			yamldoc_error(d, n,
				      "%s must be true or false, not the string \"%s\": remove "
				      "the quotes",
				      key, s);
			return false;
		}
		*out = strcmp(s, yes[i]) == 0;
		return true;
	}
	if (n->type == YAML_SCALAR_NODE && !yamldoc_is_null(n))
		yamldoc_error(d, n, "%s must be true or false, not \"%s\"", key, yamldoc_text(n));
	else
		yamldoc_error(d, n, "%s must be true or false, not %s", key, yamldoc_kind(n));
	return false;
}

bool yamldoc_number(YamlDoc *d, yaml_node_t *n, const char *key, uint64_t min, uint64_t max,
		    uint64_t *out)
{
	const char *s = yamldoc_scalar(d, n, key, "a number");
	uint64_t v = 0;
	bool ok = s && *s;

	if (!s)
		return false;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		yamldoc_error(d, n, "%s must be a number, not the string \"%s\": remove the quotes",
			      key, s);
		return false;
	}
	for (const char *c = s; *c && ok; c++) {
		ok = *c >= '0' && *c <= '9' && c - s < 19;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	if (!ok || v < min || v > max) {
		yamldoc_error(d, n, "%s must be a decimal number from %llu to %llu, not \"%s\"",
			      key, (unsigned long long)min, (unsigned long long)max, s);
		return false;
	}
	*out = v;
	return true;
}
