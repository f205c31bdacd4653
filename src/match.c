/* match.c: matching processes against a rule, then keeping the leaders. */
#include "match.h"

#include <errno.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "cleanup.h"

struct Matcher {
	char *comm, *cmdline, *exe;
	bool has_uid, has_re;
	uid_t uid;
	regex_t re;
};

/* The regex compiler expands bounded repetitions: "(a{1,255}){1,255}" is 65,025 copies of a,
 * and repeated repetitions ("a+*+*+*+*+*") send glibc's regcomp into minutes. What is refused
 * before regcomp: a repetition of a repetition, a back-reference (exponential to match), and
 * more than REGEX_MAX_COPIES atoms once every {m,n} is expanded. */
#define REGEX_MAX_COPIES 4096
#define REGEX_MAX_DEPTH	 32

static int regex_cost(const char *re, char *err, size_t errsize)
{
	/* per open group: its cost so far, and the cost of its last atom (for a repetition) */
	unsigned long total[REGEX_MAX_DEPTH + 1] = { 0 }, last[REGEX_MAX_DEPTH + 1] = { 0 };
	size_t depth = 0;
	bool repeated = false; /* the last thing seen was a repetition */

	for (const char *p = re; *p; p++) {
		unsigned long atom = 1, factor = 0;
		switch (*p) {
		case '\\':
			if (p[1] >= '1' && p[1] <= '9') {
				snprintf(err, errsize,
					 "back-references such as \\%c are not supported", p[1]);
				return -EINVAL;
			}
			if (p[1])
				p++;
			break;
		case '[': /* a bracket expression is one atom: skip to its ']' */
			p += p[1] == '^' ? 2 : 1;
			if (*p == ']')
				p++;
			while (*p && *p != ']')
				p += (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=') &&
				      strchr(p + 2, ']'))
					 ? (size_t)(strchr(p + 2, ']') - p) + 1
					 : 1;
			if (!*p)
				return 0; /* unbalanced: regcomp says so */
			break;
		case '(':
			if (depth == REGEX_MAX_DEPTH) {
				snprintf(err, errsize, "more than %d nested groups",
					 REGEX_MAX_DEPTH);
				return -EINVAL;
			}
			depth++;
			total[depth] = last[depth] = 0;
			repeated = false;
			continue;
		case ')':
			if (depth == 0)
				break;
			atom = total[depth] ? total[depth] : 1;
			depth--;
			break;
		case '|':
			repeated = false;
			continue;
		case '*':
		case '+':
		case '?':
			factor = *p == '+' ? 2 : 1;
			break;
		case '{': {
			char *end;
			unsigned long lo = strtoul(p + 1, &end, 10), hi = lo;
			if (*end == ',')
				hi = end[1] == '}' ? lo + 1 : strtoul(end + 1, &end, 10);
			else
				end--;
			factor = (lo > hi ? lo : hi) + 1;
			p = strchr(p, '}') ? strchr(p, '}') : p;
			break;
		}
		default:
			break;
		}
		if (factor) {
			if (repeated) {
				snprintf(err, errsize,
					 "a repetition of a repetition (such as +* or }{): "
					 "write it once");
				return -EINVAL;
			}
			repeated = true;
			total[depth] += last[depth] * (factor - 1);
			last[depth] *= factor;
		} else {
			repeated = false;
			total[depth] += atom;
			last[depth] = atom;
		}
		if (total[depth] > REGEX_MAX_COPIES) {
			snprintf(err, errsize,
				 "its repetitions expand to more than %d copies: bound "
				 "them lower",
				 REGEX_MAX_COPIES);
			return -EINVAL;
		}
	}
	return 0;
}

int match_new(const char *comm, const char *cmdline, const char *exe, const uid_t *uid,
	      Matcher **out, char *err, size_t errsize)
{
	Matcher *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	if ((comm && !(m->comm = strdup(comm))) || (cmdline && !(m->cmdline = strdup(cmdline))) ||
	    (exe && !(m->exe = strdup(exe)))) {
		match_free(m);
		return -ENOMEM;
	}
	if (uid) {
		m->has_uid = true;
		m->uid = *uid;
	}
	if (cmdline) {
		if (regex_cost(cmdline, err, errsize) < 0) {
			match_free(m);
			return -EINVAL;
		}
		int r = regcomp(&m->re, cmdline, REG_EXTENDED | REG_NOSUB);
		if (r != 0) {
			regerror(r, &m->re, err, errsize);
			match_free(m);
			return -EINVAL;
		}
		m->has_re = true;
	}
	*out = m;
	return 0;
}

void match_free(Matcher *m)
{
	if (!m)
		return;
	if (m->has_re)
		regfree(&m->re);
	free(m->comm);
	free(m->cmdline);
	free(m->exe);
	free(m);
}

const char *match_comm(const Matcher *m)
{
	return m->comm;
}

const char *match_cmdline(const Matcher *m)
{
	return m->cmdline;
}

const char *match_exe(const Matcher *m)
{
	return m->exe;
}

bool match_uid(const Matcher *m, uid_t *out)
{
	if (m->has_uid)
		*out = m->uid;
	return m->has_uid;
}

/* 1 if the process matches every key, 0 if not (or it vanished, or its exe is unreadable). */
static int match_process(const Matcher *m, ProcEntry *e)
{
	const char *s;
	uid_t uid;

	/* cheapest first: comm is one short file; stat (52 fields) only for candidates */
	if (m->comm && (proc_entry_comm(e, &s) < 0 || fnmatch(m->comm, s, 0) != 0))
		return 0;
	if (!proc_entry_stat(e))
		return 0; /* vanished, a zombie, or a kernel thread */
	if (m->has_uid && (proc_entry_uid(e, &uid) < 0 || uid != m->uid))
		return 0;
	if (m->has_re && (proc_entry_cmdline(e, &s) < 0 || regexec(&m->re, s, 0, NULL, 0) != 0))
		return 0;
	if (m->exe && (proc_entry_exe(e, &s) < 0 || fnmatch(m->exe, s, 0) != 0))
		return 0;
	return 1;
}

typedef struct FindCtx {
	const Matcher *const *m;
	size_t n;
	bool details;
	TargetList *out;
} FindCtx;

static int add_target(TargetList *l, ProcEntry *e, bool details)
{
	const ProcStat *st = proc_entry_stat(e); /* read by match_process */
	const char *s;

	if (!st)
		return 0;
	if (ARRAY_RESERVE(l->v, l->cap, l->n) < 0)
		return -ENOMEM;
	Target *t = &l->v[l->n];
	*t = (Target){ .pid = st->pid, .ppid = st->ppid, .starttime = st->starttime };
	memcpy(t->comm, st->comm, sizeof(t->comm));
	if (details) {
		t->uid_known = proc_entry_uid(e, &t->uid) == 0;
		if (proc_entry_cmdline(e, &s) < 0)
			s = "";
		if (!(t->cmdline = strdup(s)))
			return -ENOMEM;
	}
	l->n++;
	return 0;
}

static int find_visit(ProcEntry *e, void *userdata)
{
	FindCtx *ctx = userdata;
	const char *s;

	for (size_t i = 0; i < ctx->n; i++) {
		TargetList *l = &ctx->out[i];
		int r = 0;
		if (match_process(ctx->m[i], e))
			r = add_target(l, e, ctx->details);
		else if (ctx->m[i]->exe && proc_entry_exe(e, &s) == -EACCES)
			l->exe_denied++;
		if (r < 0)
			return r;
	}
	return 0;
}

static int target_cmp(const void *a, const void *b)
{
	pid_t x = ((const Target *)a)->pid, y = ((const Target *)b)->pid;
	return (x > y) - (x < y);
}

static void mark_leaders(TargetList *l, bool leaders_only)
{
	if (l->n > 1) /* qsort(NULL, 0, ...) is undefined */
		qsort(l->v, l->n, sizeof(*l->v), target_cmp);
	for (size_t i = 0; i < l->n; i++) {
		Target key = { .pid = l->v[i].ppid };
		/* A match whose parent matches too is a worker of that parent. */
		l->v[i].leader =
		    !leaders_only || !bsearch(&key, l->v, l->n, sizeof(*l->v), target_cmp);
	}
}

int match_find_many(const Matcher *const *m, const bool *leaders_only, size_t n, bool details,
		    TargetList *out)
{
	FindCtx ctx = { .m = m, .n = n, .details = details, .out = out };
	ProcScanInfo scan;

	for (size_t i = 0; i < n; i++)
		target_list_done(&out[i]);
	int r = proc_scan(find_visit, &ctx, &scan);
	for (size_t i = 0; i < n; i++) {
		if (r < 0) {
			target_list_done(&out[i]);
			continue;
		}
		out[i].scan = scan;
		mark_leaders(&out[i], leaders_only[i]);
	}
	return r;
}

int match_find(const Matcher *m, bool leaders_only, bool details, TargetList *out)
{
	return match_find_many(&m, &leaders_only, 1, details, out);
}

void target_list_done(TargetList *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].cmdline);
	free(l->v);
	*l = (TargetList){ 0 };
}

typedef struct PidCtx {
	const Matcher *m;
	unsigned long long starttime;
} PidCtx;

static int pid_visit(ProcEntry *e, void *userdata)
{
	const PidCtx *c = userdata;
	const ProcStat *st;

	if (!match_process(c->m, e) || !(st = proc_entry_stat(e)))
		return 0;
	return st->starttime == c->starttime;
}

bool match_pid(const Matcher *m, pid_t pid, unsigned long long starttime)
{
	PidCtx c = { .m = m, .starttime = starttime };

	return proc_visit(pid, pid_visit, &c) == 1;
}
