/* rules_keys.c: the tables of the rule file's keys, in the order the plan prints them. The man
 * page, man/sigreload.yaml.5, documents each key with its default; a unit test holds the two
 * together. */
#include "rules_keys.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "cleanup.h"
#include "rules.h"

#define STRING_MAX 4096 /* any single value other than a path */
#define GLOB_MAX   255
#define REGEX_MAX  1024

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

#define DURATION  "a duration such as 200ms or 5s"
#define ABS_PATH  "an absolute path"
#define URL	  "a URL such as http://127.0.0.1:9090/-/reload"
#define REGEX	  "a regular expression"
#define KEY(s, f) .offset = offsetof(s, f)

static const RulesKey top_keys[] = {
	{ "debounce", RT_DURATION, 0, KEY(Settings, debounce_ms), "200ms", DURATION },
	{ "max_wait", RT_DURATION, 0, KEY(Settings, max_wait_ms), "5s", DURATION },
	{ "resync", RT_DURATION, 0, KEY(Settings, resync_ms), "0", DURATION },
	{ "handler_wait", RT_DURATION, 0, KEY(Settings, handler_wait_ms), "10s", DURATION },
	{ "verify_after", RT_DURATION, 0, KEY(Settings, verify_after_ms), "1s", DURATION },
	{ "min_interval", RT_DURATION, 0, KEY(Settings, min_interval_ms), "0", DURATION },
	{ "start_grace", RT_DURATION, 0, KEY(Settings, start_grace_ms),
	  STRINGIFY(RULES_DEFAULT_START_GRACE_MS) "ms", DURATION },
	{ "log_format", RT_LOG_FORMAT, 0, KEY(Settings, log_format), "logfmt", "logfmt or json",
	  STRING_MAX },
	{ "log_level", RT_LOG_LEVEL, 0, KEY(Settings, log_level), "info",
	  "debug, info, warn or error", STRING_MAX },
	{ "metrics_listen", RT_LISTEN, 0, KEY(Settings, metrics_listen), ":9533",
	  "an address such as \":9533\"", 256 },
	{ "rules", RT_RULES, RK_REQUIRED, 0, NULL, "a list of rules", RULES_MAX_RULES,
	  .hint = "add rules: with at least one rule" },
};

static const RulesKey rule_keys[] = {
	{ "name", RT_NAME, RK_REQUIRED, KEY(Rule, name), NULL, "a name such as nginx", STRING_MAX,
	  .hint = "add name: with a unique name" },
	{ "paths", RT_PATHS, RK_REQUIRED, KEY(Rule, paths), NULL, ABS_PATH, RULES_MAX_PATHS,
	  .hint = "add paths: [/absolute/path]" },
	{ "match", RT_MATCH, 0, KEY(Rule, match), NULL, "a mapping", 0, RS_MATCH },
	{ "http", RT_SECTION, 0, KEY(Rule, http), NULL, "a mapping", 0, RS_HTTP },
	{ "leaders_only", RT_BOOL, RK_SIGNAL_ONLY, KEY(Rule, leaders_only), "true" },
	{ "signal", RT_SIGNAL, RK_SIGNAL_ONLY, KEY(Rule, signal), "SIGHUP",
	  "a signal such as SIGHUP" },
	{ "debounce", RT_DURATION, RK_INHERITS, KEY(Rule, debounce_ms), NULL, DURATION },
	{ "max_wait", RT_DURATION, RK_INHERITS, KEY(Rule, max_wait_ms), NULL, DURATION },
	{ "signal_on_start", RT_BOOL, 0, KEY(Rule, signal_on_start), "false" },
	{ "handler_wait", RT_DURATION, RK_INHERITS | RK_SIGNAL_ONLY, KEY(Rule, handler_wait_ms),
	  NULL, DURATION },
	{ "verify_after", RT_DURATION, RK_INHERITS | RK_SIGNAL_ONLY, KEY(Rule, verify_after_ms),
	  NULL, DURATION },
	{ "min_interval", RT_DURATION, RK_INHERITS, KEY(Rule, min_interval_ms), NULL, DURATION },
	{ "start_grace", RT_DURATION, RK_INHERITS, KEY(Rule, start_grace_ms), NULL, DURATION },
	{ "verify", RT_SECTION, 0, KEY(Rule, verify), NULL, "a mapping", 0, RS_VERIFY },
};

static const RulesKey match_keys[] = {
	{ "comm", RT_GLOB, 0, KEY(MatchSpec, comm), NULL, "a glob such as nginx", GLOB_MAX },
	{ "cmdline", RT_REGEX, 0, KEY(MatchSpec, cmdline), NULL, REGEX, REGEX_MAX },
	{ "exe", RT_GLOB, 0, KEY(MatchSpec, exe), NULL, "a glob such as /usr/sbin/nginx",
	  PATH_MAX - 1 },
	{ "uid", RT_UID, 0, KEY(MatchSpec, uid), NULL, "a number", 4294967294u },
};

static const RulesKey http_keys[] = {
	{ "url", RT_URL, RK_REQUIRED, KEY(HttpAction, req), NULL, URL, RULES_URL_MAX,
	  .hint = "add url: http://HOST:PORT/PATH" },
	{ "method", RT_METHOD, 0, KEY(HttpAction, req.method), "POST", "a method such as POST",
	  32 },
	{ "expect_status", RT_STATUS, 0, KEY(HttpAction, req), NULL, "a status such as 200",
	  RULES_MAX_STATUSES },
	{ "timeout", RT_DURATION, RK_POSITIVE, KEY(HttpAction, req.timeout_ms), "5s", DURATION },
	{ "retries", RT_COUNT, 0, KEY(HttpAction, retries), "3", "a number", RULES_MAX_RETRIES },
	{ "headers", RT_HEADERS, 0, KEY(HttpAction, req), NULL, "a mapping of names to values",
	  RULES_MAX_HEADERS },
	{ "bearer_token_file", RT_FILE, 0, KEY(HttpAction, req.bearer_token_file), NULL, ABS_PATH,
	  PATH_MAX - 1 },
	{ "basic_auth", RT_SECTION, RK_EMBEDDED, KEY(HttpAction, req), NULL, "a mapping", 0,
	  RS_BASIC_AUTH },
	{ "tls", RT_SECTION, RK_EMBEDDED, KEY(HttpAction, req), NULL, "a mapping", 0, RS_TLS },
};

static const RulesKey basic_auth_keys[] = {
	{ "username", RT_STRING, RK_REQUIRED, KEY(HttpRequest, username), NULL,
	  "a user name such as admin", 256, .hint = "add username: NAME" },
	{ "password_file", RT_FILE, RK_REQUIRED, KEY(HttpRequest, password_file), NULL, ABS_PATH,
	  PATH_MAX - 1, .hint = "add password_file: /absolute/path" },
};

static const RulesKey tls_keys[] = {
	{ "ca_file", RT_FILE, 0, KEY(HttpRequest, ca_file), NULL, ABS_PATH, PATH_MAX - 1 },
	{ "cert_file", RT_FILE, 0, KEY(HttpRequest, cert_file), NULL, ABS_PATH, PATH_MAX - 1 },
	{ "key_file", RT_FILE, 0, KEY(HttpRequest, key_file), NULL, ABS_PATH, PATH_MAX - 1 },
	{ "server_name", RT_STRING, 0, KEY(HttpRequest, server_name), NULL,
	  "a host name such as prometheus.example", 253 },
	{ "insecure_skip_verify", RT_BOOL, 0, KEY(HttpRequest, insecure_skip_verify), "false" },
};

static const RulesKey verify_keys[] = {
	{ "url", RT_URL, RK_REQUIRED, KEY(Verify, req), NULL, URL, RULES_URL_MAX,
	  .hint = "add url: http://HOST:PORT/PATH" },
	{ "expect_status", RT_STATUS, 0, KEY(Verify, req), NULL, "a status such as 200",
	  RULES_MAX_STATUSES },
	{ "expect_body", RT_REGEX, 0, KEY(Verify, expect_body), NULL, REGEX, REGEX_MAX },
	{ "timeout", RT_DURATION, RK_POSITIVE, KEY(Verify, req.timeout_ms), "10s", DURATION },
};

#define SECTION(k) .keys = k, .n_keys = ELEMENTSOF(k)

const RulesSectionInfo rules_sections[RS_N] = {
	[RS_TOP] = { "the rule file", "at the top level", "a mapping of settings and rules:", false,
		     0, SECTION(top_keys) },
	[RS_RULE] = { "a rule", "in a rule", "a mapping with name, paths, and match or http", false,
		      0, SECTION(rule_keys) },
	[RS_MATCH] = { "match", "in match",
		       "a mapping with at least one of comm, cmdline, exe or uid", true, 0,
		       SECTION(match_keys) },
	[RS_HTTP] = { "http", "in http", "a mapping with url and the request's details", true,
		      sizeof(HttpAction), SECTION(http_keys) },
	[RS_BASIC_AUTH] = { "basic_auth", "in basic_auth",
			    "a mapping with username and password_file", true, 0,
			    SECTION(basic_auth_keys) },
	[RS_TLS] = { "tls", "in tls",
		     "a mapping of ca_file, cert_file, key_file, server_name or "
		     "insecure_skip_verify",
		     true, 0, SECTION(tls_keys) },
	[RS_VERIFY] = { "verify", "in verify", "a mapping with url and what to expect", true,
			sizeof(Verify), SECTION(verify_keys) },
};

const RulesKey *rules_key(RulesSection s, const char *name)
{
	for (size_t i = 0; i < rules_sections[s].n_keys; i++)
		if (strcmp(rules_sections[s].keys[i].name, name) == 0)
			return &rules_sections[s].keys[i];
	return NULL;
}
