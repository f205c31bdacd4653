/* rules_print.c: the plan `sigreload check` prints: Rules written back as a YAML rule file with
 * every default written out, key by key from the tables the parser reads (rules_keys.c), so
 * that the plan is a rule file that check accepts again. It never prints a password. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "duration.h"
#include "rules.h"
#include "rules_keys.h"
#include "signame.h"
#include "utf8.h"

/* Header values that carry credentials: printed as this. */
#define REDACTED "xxxxx"

typedef struct Printer {
	FILE *f;
	const Rules *rules;
	const Rule *rule; /* the rule being printed, or NULL */
	bool item; /* the next key starts a list item ("- ") */
} Printer;

static void print_section(Printer *pr, RulesSection s, const void *base, int indent);

/* s as YAML double-quoted scalar text (quoted) or as comment text, so that any value reads
 * back the same. Bytes that are not UTF-8 can only come from a file name. */
static void print_escaped(FILE *f, const char *s, bool quoted)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);
	uint32_t c;

	if (quoted)
		fputc('"', f);
	while (left > 0) {
		size_t n = utf8_decode(p, left, &c);
		if (n == 0) {
			fprintf(f, "\\x%02x", *p++);
			left--;
			continue;
		}
		if (quoted && (c == '"' || c == '\\'))
			fprintf(f, "\\%c", (int)c);
		else if (utf8_printable(c))
			fwrite(p, 1, n, f);
		else
			fprintf(f, c < 0x100 ? "\\x%02x" : "\\u%04x", (unsigned)c);
		p += n;
		left -= n;
	}
	if (quoted)
		fputc('"', f);
}

static void print_quoted(FILE *f, const char *s)
{
	print_escaped(f, s, true);
}

static const void *field_of(const void *base, const RulesKey *k)
{
	return (const char *)base + k->offset;
}

static bool section_present(const Printer *pr, RulesSection s, const void *base);

/* Whether key k has anything to print: absent optional values and the keys that do not apply
 * to the rule's action are left out. */
static bool present(const Printer *pr, const RulesKey *k, const void *base)
{
	const void *field = field_of(base, k);
	const HttpRequest *req = field;

	if (pr->rule && pr->rule->http && (k->flags & RK_SIGNAL_ONLY))
		return false;
	switch (k->type) {
	case RT_NAME:
	case RT_GLOB:
	case RT_REGEX:
	case RT_METHOD:
	case RT_FILE:
	case RT_STRING:
	case RT_MATCH:
		return *(const void *const *)field != NULL;
	case RT_UID:
		return ((const OptionalUid *)field)->set;
	case RT_STATUS:
		return req->n_expect_status > 0;
	case RT_HEADERS:
		return req->n_headers > 0;
	case RT_SECTION:
		if (k->flags & RK_EMBEDDED)
			return section_present(pr, k->sub, field);
		return *(const void *const *)field != NULL;
	default:
		return true;
	}
}

/* An embedded mapping is printed when its required keys are set, or (with none) any of its
 * keys (a boolean: true). basic_auth shares its username with the URL's userinfo: without its
 * password_file, the user name came from the URL. */
static bool section_present(const Printer *pr, RulesSection s, const void *base)
{
	const RulesSectionInfo *sec = &rules_sections[s];
	bool any = false, required = true;

	for (size_t i = 0; i < sec->n_keys; i++) {
		const RulesKey *k = &sec->keys[i];
		bool set =
		    k->type == RT_BOOL ? *(const bool *)field_of(base, k) : present(pr, k, base);
		any |= set;
		if (k->flags & RK_REQUIRED)
			required &= set;
	}
	return any && required;
}

static void print_url(FILE *f, const HttpRequest *req)
{
	_cleanup_free_ char *url = rules_url_redacted(req);

	print_quoted(f, url ? url : req->url);
	if (req->password)
		fputs(" # the password is not shown", f);
}

static void print_headers(FILE *f, const HttpRequest *req, int indent)
{
	static const char *const secret[] = { "Authorization", "Proxy-Authorization", "Cookie" };

	for (size_t i = 0; i < req->n_headers; i++) {
		const char *h = req->headers[i], *value = strchr(h, ':') + 2;
		_cleanup_free_ char *name = strndup(h, (size_t)(value - 2 - h));
		bool hide = false;
		for (size_t j = 0; name && j < ELEMENTSOF(secret); j++)
			hide |= strcasecmp(name, secret[j]) == 0;
		fprintf(f, "%*s", indent, "");
		print_quoted(f, name ? name : "?");
		fputs(": ", f);
		print_quoted(f, hide ? REDACTED : value);
		fputc('\n', f);
	}
}

static void print_statuses(FILE *f, const HttpRequest *req)
{
	for (size_t i = 0; i < req->n_expect_status; i++)
		fprintf(f, "%s%d", i ? ", " : "[", req->expect_status[i]);
	fputc(']', f);
}

static void print_match(Printer *pr, const Matcher *m, int indent)
{
	MatchSpec v = { .comm = (char *)match_comm(m),
			.cmdline = (char *)match_cmdline(m),
			.exe = (char *)match_exe(m) };

	v.uid.set = match_uid(m, &v.uid.uid);
	print_section(pr, RS_MATCH, &v, indent);
}

static void print_rules(Printer *pr)
{
	for (size_t i = 0; i < pr->rules->n; i++) {
		pr->rule = &pr->rules->v[i];
		pr->item = true;
		print_section(pr, RS_RULE, pr->rule, 4);
	}
	pr->rule = NULL;
}

/* A value that takes lines of its own, after "key:\n". */
static void print_block(Printer *pr, const RulesKey *k, const void *field, int indent)
{
	fputc('\n', pr->f);
	switch (k->type) {
	case RT_RULES:
		print_rules(pr);
		break;
	case RT_PATHS:
		for (size_t j = 0; j < pr->rule->n_paths; j++) {
			fprintf(pr->f, "%*s- ", indent + 2, "");
			print_quoted(pr->f, pr->rule->paths[j]);
			fputc('\n', pr->f);
		}
		break;
	case RT_MATCH:
		print_match(pr, *(Matcher *const *)field, indent + 2);
		break;
	case RT_HEADERS:
		print_headers(pr->f, field, indent + 2);
		break;
	default: /* RT_SECTION */
		print_section(pr, k->sub,
			      k->flags & RK_EMBEDDED ? field : *(const void *const *)field,
			      indent + 2);
		break;
	}
}

static void print_value(Printer *pr, const RulesKey *k, const void *base, int indent)
{
	const void *field = field_of(base, k);
	char buf[32];

	if (pr->item)
		fprintf(pr->f, "%*s- %s:", indent - 2, "", k->name);
	else
		fprintf(pr->f, "%*s%s:", indent, "", k->name);
	pr->item = false;
	if (k->type == RT_RULES || k->type == RT_PATHS || k->type == RT_MATCH ||
	    k->type == RT_HEADERS || k->type == RT_SECTION) {
		print_block(pr, k, field, indent);
		return;
	}
	fputc(' ', pr->f);
	switch (k->type) {
	case RT_DURATION:
		fputs(duration_format(*(const uint64_t *)field, buf, sizeof(buf)), pr->f);
		break;
	case RT_BOOL:
		fputs(*(const bool *)field ? "true" : "false", pr->f);
		break;
	case RT_LOG_FORMAT:
		fputs(log_format_name(*(const LogFormat *)field), pr->f);
		break;
	case RT_LOG_LEVEL:
		fputs(log_level_name(*(const LogLevel *)field), pr->f);
		break;
	case RT_SIGNAL:
		fputs(signame_format(*(const int *)field, buf), pr->f);
		break;
	case RT_UID:
		fprintf(pr->f, "%u", (unsigned)((const OptionalUid *)field)->uid);
		break;
	case RT_COUNT:
		fprintf(pr->f, "%u", *(const unsigned *)field);
		break;
	case RT_URL:
		print_url(pr->f, field);
		break;
	case RT_STATUS:
		print_statuses(pr->f, field);
		break;
	default: /* strings, quoted: names such as null, true or - would read back as others */
		print_quoted(pr->f, *(const char *const *)field);
		break;
	}
	fputc('\n', pr->f);
}

static void print_section(Printer *pr, RulesSection s, const void *base, int indent)
{
	const RulesSectionInfo *sec = &rules_sections[s];

	for (size_t i = 0; i < sec->n_keys; i++)
		if (present(pr, &sec->keys[i], base))
			print_value(pr, &sec->keys[i], base, indent);
}

void rules_print(const Rules *rules, FILE *f)
{
	Printer pr = { .f = f, .rules = rules };

	fputs("# ", f);
	print_escaped(f, rules->file, false); /* a newline in the name would end the comment */
	fprintf(f, ": valid, %zu rule%s (every default written out)\n", rules->n,
		rules->n == 1 ? "" : "s");
	print_section(&pr, RS_TOP, &rules->settings, 0);
}
