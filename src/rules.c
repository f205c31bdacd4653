/* rules.c: the rule file's schema: each mapping read by its table of keys (rules_keys.c) into a
 * validated Rules, every problem reported as FILE:LINE:COL (yamldoc.c reads the YAML). */
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "cleanup.h"
#include "digest.h"
#include "duration.h"
#include "rules_http.h"
#include "rules_keys.h"
#include "signame.h"
#include "utf8.h"
#include "yamldoc.h"

_Static_assert(RULES_MAX_ERRORS == YAMLDOC_MAX_ERRORS, "one limit of errors, told in rules.h");

typedef struct Parser {
	YamlDoc d;
	Rules *rules;
	bool inherits_pair; /* a rule sets neither debounce nor max_wait */
} Parser;

/* The nodes of one mapping, by the index of their key in its section. */
typedef struct Found {
	yaml_node_t *value[RULES_SECTION_MAX_KEYS], *key[RULES_SECTION_MAX_KEYS];
} Found;

static bool parse_section(Parser *p, yaml_node_t *n, RulesSection s, void *base, Found *f);

static void *field_of(void *base, const RulesKey *k)
{
	return (char *)base + k->offset;
}

/* The value given for section s's key name, or NULL. */
static yaml_node_t *found(const Found *f, RulesSection s, const char *name)
{
	return f->value[rules_key(s, name) - rules_sections[s].keys];
}

/* Sorts a mapping's pairs into f by key, reporting unknown, duplicate and non-string keys. */
static void map_keys(Parser *p, yaml_node_t *map, RulesSection s, Found *f)
{
	const RulesSectionInfo *sec = &rules_sections[s];
	const char *names[RULES_SECTION_MAX_KEYS];

	*f = (Found){ 0 };
	for (size_t i = 0; i < sec->n_keys; i++)
		names[i] = sec->keys[i].name;
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top && !p->d.stop; pair++) {
		yaml_node_t *k = yamldoc_node(&p->d, pair->key),
			    *v = yamldoc_node(&p->d, pair->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			yamldoc_error(&p->d, k, "a key must be a plain name, not %s",
				      yamldoc_kind(k));
			continue;
		}
		size_t i = 0;
		while (i < sec->n_keys && strcmp(yamldoc_text(k), names[i]) != 0)
			i++;
		if (i == sec->n_keys) {
			yamldoc_unknown_key(&p->d, k, sec->where, names, sec->n_keys);
		} else if (f->value[i]) {
			yamldoc_error(&p->d, k,
				      "duplicate key \"%s\" (first at line %zu): keep one",
				      names[i], f->key[i]->start_mark.line + 1);
		} else {
			f->value[i] = v;
			f->key[i] = k;
		}
	}
}

static bool set_string(Parser *p, char **field, const char *s)
{
	free(*field);
	if (!(*field = strdup(s)))
		yamldoc_oom(&p->d);
	return *field != NULL;
}

/* A string that is not empty. An empty pattern is refused: as a regex it would match every
 * process, as a glob none; either way it is a mistake (a template that expanded to nothing). */
static const char *get_nonempty(Parser *p, yaml_node_t *n, const RulesKey *k)
{
	const char *s = yamldoc_string(&p->d, n, k->name, k->what, k->max);

	if (s && !*s) {
		yamldoc_error(&p->d, n, "%s is empty: write %s", k->name, k->what);
		return NULL;
	}
	return s;
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

/* One item of paths: its normalised form, or NULL (reported, or out of memory). */
static char *parse_path(Parser *p, yaml_node_t *item, const Rule *r)
{
	const char *s = yamldoc_string(&p->d, item, "a path", "an absolute path", PATH_MAX - 1);
	bool dots, dup = false;

	if (!s)
		return NULL;
	if (s[0] != '/') {
		yamldoc_error(&p->d, item,
			      "path \"%s\" is relative: paths must be absolute (start with /)", s);
		return NULL;
	}
	char *norm = normalise_path(s, &dots);
	if (!norm) {
		yamldoc_oom(&p->d);
		return NULL;
	}
	for (size_t i = 0; i < r->n_paths && !dup; i++)
		dup = strcmp(r->paths[i], norm) == 0;
	if (dots)
		yamldoc_error(&p->d, item,
			      "path \"%s\" has a \".\" or \"..\" component: write it without them",
			      s);
	else if (dup && strcmp(s, norm) == 0)
		yamldoc_error(&p->d, item, "duplicate path \"%s\": list it once", s);
	else if (dup)
		yamldoc_error(&p->d, item,
			      "duplicate path \"%s\" (the same as \"%s\"): list it once", s, norm);
	if (dots || dup) {
		free(norm);
		return NULL;
	}
	return norm;
}

static bool parse_paths(Parser *p, yaml_node_t *n, Rule *r)
{
	if (n->type != YAML_SEQUENCE_NODE || yamldoc_empty(n)) {
		if (n->type == YAML_SCALAR_NODE && !yamldoc_is_null(n))
			yamldoc_error(&p->d, n, "paths must be a list: write paths: [%s]",
				      yamldoc_text(n));
		else
			yamldoc_error(
			    &p->d, n, "paths must be a list of one or more absolute paths, not %s",
			    n->type == YAML_SEQUENCE_NODE ? "an empty list" : yamldoc_kind(n));
		return false;
	}
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > RULES_MAX_PATHS) {
		yamldoc_error(&p->d, n,
			      "too many paths (%zu; at most %d): watch a common parent directory "
			      "instead",
			      count, RULES_MAX_PATHS);
		return false;
	}
	if (!(r->paths = calloc(count, sizeof(*r->paths)))) {
		yamldoc_oom(&p->d);
		return false;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top && !p->d.stop; it++) {
		yaml_node_t *item = yamldoc_node(&p->d, *it);
		char *norm = item ? parse_path(p, item, r) : NULL;
		if (norm)
			r->paths[r->n_paths++] = norm;
	}
	return true;
}

static bool get_signal(Parser *p, yaml_node_t *n, const RulesKey *k, int *out)
{
	const char *s = yamldoc_scalar(&p->d, n, k->name, k->what);

	if (!s)
		return false;
	if (signame_parse(s, out) == 0)
		return true;
	if (!*s || s[strspn(s, "0123456789")] != '\0')
		yamldoc_error(&p->d, n,
			      "unknown signal \"%s\": use a name (SIGHUP or HUP), a number (1), or "
			      "RTMIN+n",
			      s);
	else if (strlen(s) <= 2 && atoi(s) >= 32 && atoi(s) < SIGNAME_RTMIN)
		yamldoc_error(&p->d, n,
			      "signal %s is reserved by the C library for its threads: use 1 to "
			      "31, or RTMIN+n (%d to %d)",
			      s, SIGNAME_RTMIN, SIGNAME_RTMAX);
	else
		yamldoc_error(&p->d, n,
			      "signal %s does not exist: use 1 to 31, or RTMIN+n (%d to %d)", s,
			      SIGNAME_RTMIN, SIGNAME_RTMAX);
	return false;
}

static bool parse_listen(Parser *p, yaml_node_t *n, const RulesKey *k, char **field)
{
	ListenAddr a;
	/* "" disables the endpoint; a plain empty value is YAML's null, also "off" */
	const char *v = n->type == YAML_SCALAR_NODE && yamldoc_is_null(n)
			    ? ""
			    : yamldoc_string(&p->d, n, k->name, k->what, k->max);

	if (v && *v && addr_parse(v, &a) < 0) {
		yamldoc_error(&p->d, n,
			      "%s \"%s\" is not an address: write \":PORT\", \"IPV4:PORT\", "
			      "\"[IPV6]:PORT\" or \"\" to disable",
			      k->name, v);
		return false;
	}
	return v && set_string(p, field, v);
}

/* log_format and log_level: one of a few names. */
static bool parse_enum(Parser *p, yaml_node_t *n, const RulesKey *k, void *field)
{
	const char *v = yamldoc_string(&p->d, n, k->name, k->what, k->max);
	int r;

	if (!v)
		return false;
	r = k->type == RT_LOG_FORMAT ? log_format_parse(v, field) : log_level_parse(v, field);
	if (r < 0)
		yamldoc_error(&p->d, n, "%s must be %s, not \"%s\"", k->name, k->what, v);
	return r >= 0;
}

static bool parse_duration(Parser *p, yaml_node_t *n, const RulesKey *k, uint64_t *field)
{
	if (!yamldoc_duration(&p->d, n, k->name, field))
		return false;
	if ((k->flags & RK_POSITIVE) && *field == 0) {
		yamldoc_error(&p->d, n, "%s must be longer than 0", k->name);
		return false;
	}
	return true;
}

static bool parse_rules(Parser *p, yaml_node_t *n);
static bool parse_match(Parser *p, yaml_node_t *n, Matcher **out);

/* A sub-mapping: its own struct (allocated here, owned by the field) or one embedded. */
static bool parse_subsection(Parser *p, yaml_node_t *n, const RulesKey *k, void *field)
{
	const RulesSectionInfo *sec = &rules_sections[k->sub];
	void *base = field;
	Found f;

	if (!(k->flags & RK_EMBEDDED)) {
		if (!(base = calloc(1, sec->size))) {
			yamldoc_oom(&p->d);
			return false;
		}
		*(void **)field = base;
	}
	return parse_section(p, n, k->sub, base, &f);
}

static bool parse_value(Parser *p, yaml_node_t *n, const RulesKey *k, void *base)
{
	void *field = field_of(base, k);
	const char *s;
	uint64_t v;

	switch (k->type) {
	case RT_DURATION:
		return parse_duration(p, n, k, field);
	case RT_BOOL:
		return yamldoc_bool(&p->d, n, k->name, field);
	case RT_LOG_FORMAT:
	case RT_LOG_LEVEL:
		return parse_enum(p, n, k, field);
	case RT_LISTEN:
		return parse_listen(p, n, k, field);
	case RT_RULES:
		return parse_rules(p, n);
	case RT_NAME:
		if (!(s = yamldoc_string(&p->d, n, k->name, k->what, k->max)))
			return false;
		if (!valid_name(s)) {
			yamldoc_error(&p->d, n,
				      "rule name \"%s\" is invalid: use 1 to %d letters, digits, "
				      "'_', '.' or '-'",
				      s, RULES_NAME_MAX);
			return false;
		}
		return set_string(p, field, s);
	case RT_PATHS:
		return parse_paths(p, n, base);
	case RT_MATCH:
		return parse_match(p, n, field);
	case RT_SIGNAL:
		return get_signal(p, n, k, field);
	case RT_GLOB:
	case RT_REGEX:
		return (s = get_nonempty(p, n, k)) && set_string(p, field, s);
	case RT_UID:
		if (!yamldoc_number(&p->d, n, k->name, 0, k->max, &v))
			return false;
		*(OptionalUid *)field = (OptionalUid){ .set = true, .uid = (uid_t)v };
		return true;
	case RT_COUNT:
		if (!yamldoc_number(&p->d, n, k->name, 0, k->max, &v))
			return false;
		*(unsigned *)field = (unsigned)v;
		return true;
	case RT_URL:
	case RT_METHOD:
	case RT_STATUS:
	case RT_HEADERS:
	case RT_FILE:
	case RT_STRING:
		return rules_http_value(&p->d, n, k, field);
	case RT_SECTION:
		return parse_subsection(p, n, k, field);
	}
	return false;
}

/* Writes a key's default (its text, read as a value would be) into base. */
static void set_default(Parser *p, const RulesKey *k, void *base)
{
	void *field = field_of(base, k);

	switch (k->type) {
	case RT_DURATION:
		duration_parse(k->def, field);
		break;
	case RT_BOOL:
		*(bool *)field = strcmp(k->def, "true") == 0;
		break;
	case RT_LOG_FORMAT:
		log_format_parse(k->def, field);
		break;
	case RT_LOG_LEVEL:
		log_level_parse(k->def, field);
		break;
	case RT_SIGNAL:
		signame_parse(k->def, field);
		break;
	case RT_COUNT:
		*(unsigned *)field = (unsigned)strtoul(k->def, NULL, 10);
		break;
	default: /* strings */
		set_string(p, field, k->def);
		break;
	}
}

/* The section's checks across keys, once its keys are read. */
static bool finish_section(Parser *p, yaml_node_t *n, RulesSection s, void *base, const Found *f)
{
	switch (s) {
	case RS_TOP: {
		const Settings *set = base;
		yaml_node_t *resync = found(f, RS_TOP, "resync");
		if (resync && set->resync_ms > 0 && set->resync_ms < 1000) {
			yamldoc_error(&p->d, resync, "resync must be 0 (never) or at least 1s");
			return false;
		}
		return true;
	}
	case RS_HTTP:
	case RS_BASIC_AUTH:
	case RS_TLS:
	case RS_VERIFY:
		return rules_http_finish(&p->d, n, s, base, f->value);
	default:
		return true;
	}
}

/* "LABEL has no KEY: HINT" (or "no KEY: HINT") for each required key that is missing. */
static bool check_required(Parser *p, yaml_node_t *n, RulesSection s, const Found *f,
			   const char *label)
{
	const RulesSectionInfo *sec = &rules_sections[s];
	bool ok = true;

	for (size_t i = 0; i < sec->n_keys && !p->d.stop; i++) {
		const RulesKey *k = &sec->keys[i];
		if (!(k->flags & RK_REQUIRED) || f->value[i])
			continue;
		if (label)
			yamldoc_error(&p->d, n, "%s has no %s: %s", label, k->name, k->hint);
		else
			yamldoc_error(&p->d, n, "no %s: %s", k->name, k->hint);
		ok = false;
	}
	return ok;
}

/* Reads mapping n into base by the keys of section s: defaults first, then each key given, then
 * the checks across keys. Returns whether every value was valid (f tells which were given). */
static bool parse_section(Parser *p, yaml_node_t *n, RulesSection s, void *base, Found *f)
{
	const RulesSectionInfo *sec = &rules_sections[s];
	bool ok = true;

	*f = (Found){ 0 };
	for (size_t i = 0; i < sec->n_keys; i++)
		if (sec->keys[i].def)
			set_default(p, &sec->keys[i], base);
	if (n->type != YAML_MAPPING_NODE || (sec->nonempty && yamldoc_empty(n))) {
		yamldoc_error(&p->d, n, "%s must be %s, not %s", sec->noun, sec->must,
			      n->type == YAML_MAPPING_NODE ? "an empty mapping" : yamldoc_kind(n));
		return false;
	}
	map_keys(p, n, s, f);
	for (size_t i = 0; i < sec->n_keys && !p->d.stop; i++)
		if (f->value[i] && !parse_value(p, f->value[i], &sec->keys[i], base))
			ok = false;
	/* a rule names itself ("rule \"x\" has no paths"): it checks its own */
	if (s != RS_RULE && !check_required(p, n, s, f, s == RS_TOP ? NULL : sec->noun))
		ok = false;
	return finish_section(p, n, s, base, f) && ok;
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

static void match_spec_done(MatchSpec *m)
{
	free(m->comm);
	free(m->cmdline);
	free(m->exe);
}

static bool parse_match(Parser *p, yaml_node_t *n, Matcher **out)
{
	_cleanup_(match_spec_done) MatchSpec m = { 0 };
	char err[256];
	Found f;

	bool ok = parse_section(p, n, RS_MATCH, &m, &f);
	/* the kernel keeps 15 bytes of a process name: a longer pattern matches nothing, ever */
	if (m.comm && glob_min_length(m.comm) > 15) {
		yamldoc_error(&p->d, found(&f, RS_MATCH, "comm"),
			      "comm \"%s\" can never match: the kernel keeps only the first 15 "
			      "bytes of a process name; match the first 15, or use cmdline",
			      m.comm);
		ok = false;
	}
	if (!m.comm && !m.cmdline && !m.exe && !m.uid.set)
		ok = false;
	if (!ok && !m.cmdline)
		return false;
	/* with another key wrong, still check the regex, on its own */
	int r = ok ? match_new(m.comm, m.cmdline, m.exe, m.uid.set ? &m.uid.uid : NULL, out, err,
			       sizeof(err))
		   : match_new(NULL, m.cmdline, NULL, NULL, out, err, sizeof(err));
	if (r == -EINVAL)
		yamldoc_error(&p->d, found(&f, RS_MATCH, "cmdline"),
			      "cmdline \"%s\" is not a valid POSIX extended regular expression: %s",
			      m.cmdline, err);
	else if (r < 0)
		yamldoc_oom(&p->d);
	if (r == 0 && !ok) {
		match_free(*out);
		*out = NULL;
	}
	return r == 0 && ok;
}

/* The rule-level durations start as the top-level ones of the same name. */
static void inherit(Rule *r, const Settings *s)
{
	const RulesSectionInfo *sec = &rules_sections[RS_RULE];

	for (size_t i = 0; i < sec->n_keys; i++) {
		const RulesKey *k = &sec->keys[i], *top = rules_key(RS_TOP, k->name);
		if ((k->flags & RK_INHERITS) && top)
			memcpy(field_of(r, k), field_of((void *)s, top), sizeof(uint64_t));
	}
}

/* A rule has one action: match (its processes) or http; the keys about processes need match. */
static void check_action(Parser *p, yaml_node_t *n, const Found *f, const char *label)
{
	const RulesSectionInfo *sec = &rules_sections[RS_RULE];
	bool has_match = found(f, RS_RULE, "match"), has_http = found(f, RS_RULE, "http");

	if (has_match && has_http)
		yamldoc_error(&p->d, n, "%s has both match and http: keep one", label);
	else if (!has_match && !has_http)
		yamldoc_error(&p->d, n,
			      "%s has no match: add match: with comm, cmdline, exe or uid (or "
			      "http: with a url)",
			      label);
	for (size_t i = 0; i < sec->n_keys && has_http && !has_match; i++)
		if ((sec->keys[i].flags & RK_SIGNAL_ONLY) && f->value[i])
			yamldoc_error(&p->d, f->key[i],
				      "%s concerns processes: an http rule has none; remove it",
				      sec->keys[i].name);
}

/* Parses rule number index (from 1) into r; *name_node receives its name's node, if any. */
static void parse_rule(Parser *p, yaml_node_t *n, size_t index, Rule *r, yaml_node_t **name_node)
{
	const Settings *s = &p->rules->settings;
	char label[RULES_NAME_MAX + 32];
	Found f;

	*r = (Rule){ 0 };
	inherit(r, s);
	if (!parse_section(p, n, RS_RULE, r, &f) && n->type != YAML_MAPPING_NODE)
		return;
	*name_node = found(&f, RS_RULE, "name");
	if (r->name)
		snprintf(label, sizeof(label), "rule \"%s\"", r->name);
	else
		snprintf(label, sizeof(label), "rule #%zu", index);
	check_required(p, n, RS_RULE, &f, label);
	check_action(p, n, &f, label);
	yaml_node_t *dn = found(&f, RS_RULE, "debounce"), *mn = found(&f, RS_RULE, "max_wait");
	/* a rule that sets neither inherits the pair: checked once, at the top level */
	if (!dn && !mn)
		p->inherits_pair = true;
	else if (r->max_wait_ms < r->debounce_ms) {
		char d[32], m[32];
		yamldoc_error(&p->d, mn ? mn : dn,
			      "max_wait (%s) is shorter than debounce (%s) in %s: set max_wait to "
			      "at least %s",
			      duration_format(r->max_wait_ms, m, sizeof(m)),
			      duration_format(r->debounce_ms, d, sizeof(d)), label, d);
	}
}

static bool parse_rules(Parser *p, yaml_node_t *n)
{
	Rules *rules = p->rules;

	if (n->type != YAML_SEQUENCE_NODE || yamldoc_empty(n)) {
		yamldoc_error(&p->d, n, "rules must be a list of one or more rules, not %s",
			      n->type == YAML_SEQUENCE_NODE ? "an empty list" : yamldoc_kind(n));
		return false;
	}
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > RULES_MAX_RULES) {
		yamldoc_error(&p->d, n,
			      "too many rules (%zu; at most %d): let one rule watch several paths",
			      count, RULES_MAX_RULES);
		return false;
	}
	if (!(rules->v = calloc(count, sizeof(*rules->v)))) {
		yamldoc_oom(&p->d);
		return false;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top && !p->d.stop; it++) {
		yaml_node_t *item = yamldoc_node(&p->d, *it), *name_node = NULL;
		Rule *r = &rules->v[rules->n++];
		if (item)
			parse_rule(p, item, rules->n, r, &name_node);
		for (size_t i = 0; r->name && i + 1 < rules->n; i++) {
			if (!rules->v[i].name || strcmp(rules->v[i].name, r->name) != 0)
				continue;
			yaml_node_t *prev = yamldoc_node(&p->d, n->data.sequence.items.start[i]);
			yaml_node_t *first = yamldoc_get(&p->d, prev, "name");
			yamldoc_error(&p->d, name_node,
				      "duplicate rule name \"%s\" (first at line %zu): rule names "
				      "must be unique",
				      r->name, first ? first->start_mark.line + 1 : 0);
			break;
		}
	}
	return true;
}

static void parse_root(Parser *p, yaml_node_t *root)
{
	Settings *s = &p->rules->settings;
	Found f;

	parse_section(p, root, RS_TOP, s, &f);
	/* Once, not once per rule that inherits it; and only if one does: a pair that every
	 * rule overrides is never used. Defaults are consistent, so one of the keys is set. */
	if (p->inherits_pair && s->max_wait_ms < s->debounce_ms) {
		char d[32], m[32];
		yaml_node_t *mn = found(&f, RS_TOP, "max_wait"),
			    *dn = found(&f, RS_TOP, "debounce");
		yamldoc_error(&p->d, mn ? mn : dn,
			      "max_wait (%s) is shorter than debounce (%s): set max_wait to at "
			      "least %s",
			      duration_format(s->max_wait_ms, m, sizeof(m)),
			      duration_format(s->debounce_ms, d, sizeof(d)), d);
	}
}

int rules_parse(const char *file, const char *buf, size_t len, Rules **out, RulesErrors *errs)
{
	Parser p = { 0 };
	Rules *rules = calloc(1, sizeof(*rules));

	*errs = (RulesErrors){ .read = true };
	digest_buf(buf, len, errs->sha256);
	if (!rules || !(rules->file = strdup(file))) {
		rules_free(rules);
		return -ENOMEM;
	}
	p.rules = rules;
	memcpy(rules->sha256, errs->sha256, sizeof(rules->sha256));
	yaml_node_t *root = yamldoc_load(&p.d, file, buf, len);
	if (root)
		parse_root(&p, root);
	yamldoc_report(&p.d, &errs->v, &errs->n, &errs->truncated);
	bool oom = p.d.oom;
	yamldoc_done(&p.d);
	if (errs->n > 0 || oom || !root) {
		rules_free(rules);
		return errs->n > 0 && !oom ? -EINVAL : -ENOMEM;
	}
	*out = rules;
	return 0;
}

static int add_error(RulesErrors *errs, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int add_error(RulesErrors *errs, int r, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	char **v;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	char *esc = msg ? utf8_escape(msg) : NULL;
	if (!esc || !(v = reallocarray(errs->v, errs->n + 1, sizeof(*v)))) {
		free(esc);
		return -ENOMEM;
	}
	errs->v = v;
	errs->v[errs->n++] = esc;
	return r;
}

int rules_load(const char *file, Rules **out, RulesErrors *errs)
{
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct stat st;
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
		return add_error(errs, r, "%s: cannot read the rule file: not a regular file",
				 file);
	if (r == -EFBIG)
		return add_error(errs, r, "%s: the rule file is larger than %d bytes", file,
				 RULES_MAX_FILE_BYTES);
	if (r == -ENOMEM)
		return r;
	return add_error(errs, r, "%s: cannot read the rule file: %s", file, strerror(-r));
}

static void rule_done(Rule *r)
{
	free(r->name);
	for (size_t i = 0; i < r->n_paths; i++)
		free(r->paths[i]);
	free(r->paths);
	match_free(r->match);
	if (r->http)
		rules_http_request_done(&r->http->req);
	free(r->http);
	rules_verify_free(r->verify);
	*r = (Rule){ 0 };
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

bool rules_same_path_set(const Rule *a, const Rule *b)
{
	if (a->n_paths != b->n_paths)
		return false;
	for (size_t i = 0; i < a->n_paths; i++) {
		size_t j = 0;
		while (j < b->n_paths && strcmp(a->paths[i], b->paths[j]) != 0)
			j++;
		if (j == b->n_paths)
			return false;
	}
	return true;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_match(const Matcher *a, const Matcher *b)
{
	uid_t ua = 0, ub = 0;

	if (!a || !b)
		return !a && !b;
	return same_str(match_comm(a), match_comm(b)) &&
	       same_str(match_cmdline(a), match_cmdline(b)) &&
	       same_str(match_exe(a), match_exe(b)) && match_uid(a, &ua) == match_uid(b, &ub) &&
	       ua == ub;
}

bool rules_same_action(const Rule *a, const Rule *b)
{
	return same_match(a->match, b->match) && a->leaders_only == b->leaders_only &&
	       a->signal == b->signal && rules_http_same_action(a->http, b->http) &&
	       rules_http_same_verify(a->verify, b->verify);
}
