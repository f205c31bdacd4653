/* rules_keys.h: every key of the rule file, once: where it may stand, its type, its default.
 * The parser (rules.c), the plan printer (rules_print.c) and the check of the man page's key
 * reference (tests/unit/test_rules.c) walk these tables; nothing else spells a key. */
#ifndef SIGRELOAD_RULES_KEYS_H
#define SIGRELOAD_RULES_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The mappings of a rule file; each key belongs to one. */
typedef enum RulesSection {
	RS_TOP, /* Settings (and Rules.v) */
	RS_RULE, /* Rule */
	RS_MATCH, /* MatchSpec, turned into the rule's Matcher */
	RS_HTTP, /* HttpAction */
	RS_BASIC_AUTH, /* HttpRequest */
	RS_TLS, /* HttpRequest */
	RS_VERIFY, /* Verify */
	RS_N
} RulesSection;

/* What a key's value is, and what the field at its offset holds. */
typedef enum RulesType {
	RT_DURATION, /* uint64_t milliseconds */
	RT_BOOL, /* bool */
	RT_LOG_FORMAT, /* LogFormat */
	RT_LOG_LEVEL, /* LogLevel */
	RT_LISTEN, /* char *: an address, "" for none (an empty value too) */
	RT_RULES, /* the list of rules (Rules.v, Rules.n) */
	RT_NAME, /* char *: a rule's name */
	RT_PATHS, /* Rule.paths, Rule.n_paths */
	RT_MATCH, /* Matcher *, from the keys of RS_MATCH */
	RT_SIGNAL, /* int */
	RT_GLOB, /* char *: an fnmatch(3) pattern */
	RT_REGEX, /* char *: a POSIX ERE, compiled by the mapping that holds it */
	RT_UID, /* OptionalUid */
	RT_URL, /* HttpRequest: url, and username and password from its userinfo */
	RT_METHOD, /* char *: an HTTP method (a token) */
	RT_STATUS, /* HttpRequest: expect_status, n_expect_status */
	RT_COUNT, /* unsigned, from 0 to the key's max */
	RT_HEADERS, /* HttpRequest: headers, n_headers */
	RT_FILE, /* char *: an absolute path */
	RT_STRING, /* char * */
	RT_SECTION, /* a mapping of the keys of sub: a pointer to its own struct, or RK_EMBEDDED */
} RulesType;

enum {
	RK_REQUIRED = 1 << 0, /* the mapping must have it (the hint says how) */
	RK_INHERITS = 1 << 1, /* a rule's key whose default is the top-level key of its name */
	RK_SIGNAL_ONLY = 1 << 2, /* concerns processes: an error in a rule with http */
	RK_EMBEDDED = 1 << 3, /* RT_SECTION: the struct is at the offset, not pointed to */
	RK_POSITIVE = 1 << 4, /* RT_DURATION: 0 is an error */
};

typedef struct RulesKey {
	const char *name;
	RulesType type;
	unsigned flags;
	size_t offset; /* of the field in the mapping's struct */
	const char *def; /* the default as a rule file writes it (parsed as a value), or NULL */
	const char *what; /* what the value must be, for messages */
	size_t max; /* the longest string, the most entries, the largest count */
	RulesSection sub; /* RT_SECTION */
	const char *hint; /* RK_REQUIRED: how to add it */
} RulesKey;

typedef struct RulesSectionInfo {
	const char *noun; /* "a rule", "match": what "must be a mapping ..." */
	const char *where; /* "in a rule", for an unknown key */
	const char *must; /* "a mapping with ..." */
	bool nonempty; /* an empty mapping is an error too */
	size_t size; /* of the struct a non-embedded RT_SECTION allocates */
	const RulesKey *keys;
	size_t n_keys;
} RulesSectionInfo;

extern const RulesSectionInfo rules_sections[RS_N];

/* The most keys one mapping has. */
#define RULES_SECTION_MAX_KEYS 16

/* A uid that may be absent. */
typedef struct OptionalUid {
	bool set;
	uid_t uid;
} OptionalUid;

/* The keys of match: before match_new, or read back from a Matcher to print. */
typedef struct MatchSpec {
	char *comm, *cmdline, *exe;
	OptionalUid uid;
} MatchSpec;

/* The key of section s called name, or NULL. */
const RulesKey *rules_key(RulesSection s, const char *name);

#endif
