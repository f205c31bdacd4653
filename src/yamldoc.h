/* yamldoc.h: one YAML document read within limits, its nodes read as typed values, and every
 * problem kept with its line and column (the rule file's reader; rules.c holds the schema). */
#ifndef SIGRELOAD_YAMLDOC_H
#define SIGRELOAD_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

/* Checked on libyaml's events before its document loader runs: the loader looks each alias
 * up in a list of every anchor (quadratic: 100,000 anchors in 1 MiB took 24 s), its scanner
 * rescans every open flow level for each token (quadratic in depth: 500,000 '[' took 20
 * minutes), and each node costs about 170 bytes (500,000 took 87 MiB). A valid rule file needs
 * a nesting depth of 7 and, at 256 rules of 64 paths each, about 20,000 nodes. */
#define YAMLDOC_MAX_DEPTH   32
#define YAMLDOC_MAX_NODES   32768
#define YAMLDOC_MAX_ANCHORS 1024
#define YAMLDOC_MAX_ALIASES 4096
#define YAMLDOC_MAX_ERRORS  50

typedef struct YamlProblem {
	size_t line, col, seq;
	char *msg;
} YamlProblem;

typedef struct YamlDoc {
	const char *file;
	const char *buf;
	size_t len;
	yaml_document_t doc;
	bool loaded;
	YamlProblem *problems;
	size_t n_problems;
	bool stop; /* too many errors, or out of memory */
	bool truncated; /* more than YAMLDOC_MAX_ERRORS problems: the rest were dropped */
	bool oom;
} YamlDoc;

/* Reads buf as one YAML document. Returns its root node, or NULL with the reason recorded as a
 * problem (not UTF-8, a syntax error, a limit, no document, a second document). */
yaml_node_t *yamldoc_load(YamlDoc *d, const char *file, const char *buf, size_t len);
void yamldoc_done(YamlDoc *d);

/* Records "what is wrong and what to do" at a 0-based line and column. */
void yamldoc_error_at(YamlDoc *d, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define yamldoc_error(d, node, ...)                                                                \
	yamldoc_error_at(d, (node)->start_mark.line, (node)->start_mark.column, __VA_ARGS__)
void yamldoc_oom(YamlDoc *d);

/* Hands the problems over as "FILE:LINE:COL: message" lines in file order, each escaped so
 * that no input can add a line or a terminal escape; *truncated says a last line was added for
 * the problems left out. Returns how many lines were added to *v (grown as needed). */
size_t yamldoc_report(YamlDoc *d, char ***v, size_t *n, bool *truncated);

yaml_node_t *yamldoc_node(YamlDoc *d, int id);
bool yamldoc_is_null(const yaml_node_t *n);
const char *yamldoc_kind(const yaml_node_t *n); /* "a mapping", "a list", "empty", ... */
const char *yamldoc_text(const yaml_node_t *n); /* a scalar's bytes */
/* The value of key in a mapping, or NULL. */
yaml_node_t *yamldoc_get(YamlDoc *d, yaml_node_t *map, const char *key);
/* Whether a mapping or list has no entries. */
bool yamldoc_empty(const yaml_node_t *n);

/* "unknown key K WHERE; did you mean X?" (or the list of names), or the merge-key message. */
void yamldoc_unknown_key(YamlDoc *d, const yaml_node_t *key, const char *where,
			 const char *const *names, size_t n);

/* Typed values: on a wrong type or value each records the problem (naming key) and returns
 * NULL or false. what says what was expected ("a duration such as 200ms or 5s"). */
const char *yamldoc_scalar(YamlDoc *d, yaml_node_t *n, const char *key, const char *what);
const char *yamldoc_string(YamlDoc *d, yaml_node_t *n, const char *key, const char *what,
			   size_t max);
bool yamldoc_bool(YamlDoc *d, yaml_node_t *n, const char *key, bool *out);
bool yamldoc_duration(YamlDoc *d, yaml_node_t *n, const char *key, uint64_t *out);
/* A plain (unquoted) decimal number from min to max, as a uid or a status is written. */
bool yamldoc_number(YamlDoc *d, yaml_node_t *n, const char *key, uint64_t min, uint64_t max,
		    uint64_t *out);

#endif
