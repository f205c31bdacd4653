/* match.c: matching processes against a rule, then keeping the leaders; for a rule that matches
 * nothing, the processes nearest to it. */
#include "match.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "cleanup.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

struct Matcher {
	char *comm, *cmdline, *exe;
	bool has_uid, has_re;
	uid_t uid;
	regex_t re;
};

/* regcomp expands bounded repetitions ("(a{1,255}){1,255}" is 65,025 copies of a). glibc's
 * then computes for each node of its automaton the nodes it reaches matching nothing: quadratic
 * in the copies of what may match nothing ("(a?){1000}", ".{0,1000}": 8 MiB; "((.*){1,63}){1,63}"
 * passed the old copy count and took 383 MiB); musl's (TRE, the image's) matches in time
 * quadratic in them ("(.?){255}x" over a 4 KiB command line: 0.4 s, against 0.1 s at 128).
 * Repeated repetitions ("a+*+*+*+*") send glibc into minutes, and back-references are
 * exponential to match. So refused before regcomp: a repetition of a repetition, a
 * back-reference, a bound over 255 (POSIX's RE_DUP_MAX, musl's: glibc takes up to 32767, and a
 * rule file means the same in every build), more than REGEX_MAX_DEPTH nested groups, more than
 * REGEX_MAX_COPIES nodes once every repetition is expanded, and more than REGEX_MAX_NULLABLE of
 * them in parts that may match nothing. tests/unit/test_match.c searches pattern families for
 * the worst that pass, and holds each to a few MiB. */
#define REGEX_MAX_BOUND	   255
#define REGEX_MAX_COPIES   4096
#define REGEX_MAX_NULLABLE 128
#define REGEX_MAX_DEPTH	   32

/* What a piece of a pattern costs once expanded: its nodes, those of them in parts that may
 * match nothing, and whether it may match nothing itself. */
typedef struct Cost {
	unsigned long n, z;
	bool nullable;
} Cost;

/* An open group: its alternatives so far, the current one, and its last piece. */
typedef struct Group {
	Cost total, last;
	bool branch_nullable, any_nullable;
} Group;

static void group_open(Group *g)
{
	*g = (Group){ .branch_nullable = true };
}

static void group_add(Group *g, Cost c)
{
	g->total.n += c.n;
	g->total.z += c.z;
	g->branch_nullable &= c.nullable;
	g->last = c;
}

/* The piece a group stands for once closed. */
static Cost group_close(const Group *g)
{
	Cost c = g->total;

	c.nullable = g->any_nullable || g->branch_nullable;
	if (c.n == 0)
		c.n = c.z = 1;
	return c;
}

/* Replaces the group's last piece c by c{lo,hi} (hi 0: unbounded, one looping copy). */
static void group_repeat(Group *g, unsigned long lo, unsigned long hi)
{
	Cost c = g->last, r;
	unsigned long copies = hi ? hi : lo + 1, optional = hi ? hi - lo : 1;

	r.n = copies * c.n;
	r.z = c.nullable ? r.n : lo * c.z + optional * c.n;
	r.nullable = c.nullable || lo == 0;
	g->total.n = g->total.n - c.n + r.n;
	g->total.z = g->total.z - c.z + r.z;
	g->last = r;
}

/* The bounds of "{m}", "{m,}" or "{m,n}" at p; *end points at its '}'. */
static void parse_bounds(const char *p, unsigned long *lo, unsigned long *hi, const char **end)
{
	char *e;

	*lo = strtoul(p + 1, &e, 10);
	*hi = *lo;
	if (*e == ',')
		*hi = e[1] == '}' ? 0 : strtoul(e + 1, &e, 10);
	*end = strchr(p, '}') ? strchr(p, '}') : p;
	if (*hi && *hi < *lo)
		*hi = *lo; /* regcomp refuses it */
	if (*lo > 32768 || *hi > 32768) /* refused: no overflow on the way */
		*lo = *hi = 32768;
}

/* Past a bracket expression starting at p, or NULL when it does not end. */
static const char *skip_bracket(const char *p)
{
	p += p[1] == '^' ? 2 : 1;
	if (*p == ']')
		p++;
	while (*p && *p != ']') {
		/* "[:alpha:]", "[.a.]", "[=a=]" hold a ']' of their own */
		bool class = *p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=');
		const char *close = class ? strchr(p + 2, ']') : NULL;
		p = close ? close + 1 : p + 1;
	}
	return *p ? p : NULL;
}

static int refuse(char *err, size_t errsize, const char *why)
{
	snprintf(err, errsize, "%s", why);
	return -EINVAL;
}

typedef enum Piece { P_ATOM, P_ANCHOR, P_REPEAT, P_OPEN, P_CLOSE, P_ALT, P_BACKREF, P_END } Piece;

/* What the pattern has at *pp, moving *pp to its last byte: a repetition's bounds in lo, hi. */
static Piece next_piece(const char **pp, unsigned long *lo, unsigned long *hi)
{
	const char *p = *pp;

	*lo = *hi = 0;
	switch (*p) {
	case '\\':
		if (p[1] >= '1' && p[1] <= '9')
			return P_BACKREF;
		*pp += p[1] ? 1 : 0;
		return P_ATOM;
	case '[':
		*pp = skip_bracket(p);
		return *pp ? P_ATOM : P_END; /* unbalanced: regcomp says so */
	case '(':
		return P_OPEN;
	case ')':
		return P_CLOSE;
	case '|':
		return P_ALT;
	case '^':
	case '$':
		return P_ANCHOR;
	case '*':
		return P_REPEAT;
	case '+':
		*lo = 1;
		return P_REPEAT;
	case '?':
		*hi = 1;
		return P_REPEAT;
	case '{':
		parse_bounds(p, lo, hi, pp);
		return P_REPEAT;
	default:
		return P_ATOM;
	}
}

int match_regex_check(const char *re, char *err, size_t errsize)
{
	Group g[REGEX_MAX_DEPTH + 1];
	size_t depth = 0;
	Piece prev = P_ATOM;

	group_open(&g[0]);
	for (const char *p = re; *p; p++) {
		unsigned long lo, hi;
		Piece piece = next_piece(&p, &lo, &hi);
		switch (piece) {
		case P_END:
			return 0;
		case P_BACKREF:
			snprintf(err, errsize, "back-references such as \\%c are not supported",
				 p[1]);
			return -EINVAL;
		case P_OPEN:
			if (depth == REGEX_MAX_DEPTH)
				return refuse(
				    err, errsize,
				    "more than " STRINGIFY(REGEX_MAX_DEPTH) " nested groups");
			group_open(&g[++depth]);
			break;
		case P_ALT:
			g[depth].any_nullable |= g[depth].branch_nullable;
			g[depth].branch_nullable = true;
			break;
		case P_REPEAT:
			if (prev == P_REPEAT)
				return refuse(err, errsize,
					      "a repetition of a repetition (such as +* or }{): "
					      "write it once");
			if (lo > REGEX_MAX_BOUND || hi > REGEX_MAX_BOUND)
				return refuse(
				    err, errsize,
				    "a bound over " STRINGIFY(REGEX_MAX_BOUND) " (as in {256})");
			group_repeat(&g[depth], lo, hi);
			break;
		case P_CLOSE: /* with no group open, a literal ')' */
			group_add(&g[depth ? depth - 1 : 0],
				  depth ? group_close(&g[depth]) : (Cost){ 1, 0, false });
			depth -= depth > 0;
			break;
		default: /* an anchor matches nothing */
			group_add(&g[depth], (Cost){ 1, piece == P_ANCHOR, piece == P_ANCHOR });
			break;
		}
		prev = piece;
		if (g[depth].total.n > REGEX_MAX_COPIES)
			return refuse(err, errsize,
				      "its repetitions expand to more than " STRINGIFY(
					  REGEX_MAX_COPIES) " copies: bound them lower");
		if (g[depth].total.z > REGEX_MAX_NULLABLE)
			return refuse(err, errsize,
				      "its optional parts expand to more than " STRINGIFY(
					  REGEX_MAX_NULLABLE) " copies that may match nothing (as "
							      "in (a?){200} or .{0,200}): bound "
							      "them lower");
	}
	return 0;
}

int match_regex_compile(const char *re, regex_t *out, char *err, size_t errsize)
{
	if (match_regex_check(re, err, errsize) < 0)
		return -EINVAL;
	int r = regcomp(out, re, REG_EXTENDED | REG_NOSUB);
	if (r == REG_ESPACE)
		return -ENOMEM;
	if (r != 0) {
		regerror(r, out, err, errsize);
		return -EINVAL;
	}
	return 0;
}

DEFINE_CLEANUP_FUNC(Matcher, match_free)

int match_new(const char *comm, const char *cmdline, const char *exe, const uid_t *uid,
	      Matcher **out, char *err, size_t errsize)
{
	_cleanup_(match_freep) Matcher *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	if ((comm && !(m->comm = strdup(comm))) || (cmdline && !(m->cmdline = strdup(cmdline))) ||
	    (exe && !(m->exe = strdup(exe))))
		return -ENOMEM;
	if (uid) {
		m->has_uid = true;
		m->uid = *uid;
	}
	if (cmdline) {
		int r = match_regex_compile(cmdline, &m->re, err, errsize);
		if (r < 0)
			return r;
		m->has_re = true;
	}
	*out = TAKE_PTR(m);
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

/* 1 if the process matches every key, 0 if not (or it vanished); -EACCES if it matches every
 * key but exe, which it may not read (another uid, and no CAP_SYS_PTRACE). */
static int match_process(const Matcher *m, ProcEntry *e)
{
	const char *s;
	uid_t uid;

	if (!m)
		return 0; /* an http rule's: it has no processes */
	/* cheapest first: comm is one short file; stat (52 fields) only for candidates */
	if (m->comm && (proc_entry_comm(e, &s) < 0 || fnmatch(m->comm, s, 0) != 0))
		return 0;
	if (!proc_entry_stat(e))
		return 0; /* vanished, a zombie, or a kernel thread */
	if (m->has_uid && (proc_entry_uid(e, &uid) < 0 || uid != m->uid))
		return 0;
	if (m->has_re && (proc_entry_cmdline(e, &s) < 0 || regexec(&m->re, s, 0, NULL, 0) != 0))
		return 0;
	if (m->exe) {
		int r = proc_entry_exe(e, &s);
		if (r == -EACCES)
			return r;
		if (r < 0 || fnmatch(m->exe, s, 0) != 0)
			return 0;
	}
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

	for (size_t i = 0; i < ctx->n; i++) {
		TargetList *l = &ctx->out[i];
		/* exe is read only for the processes the other keys let through, as matching
		 * does: a readlink for every process of the scan would say nothing more */
		int r = match_process(ctx->m[i], e);
		if (r > 0 && (r = add_target(l, e, ctx->details)) < 0)
			return r;
		if (r == -EACCES)
			l->exe_denied++;
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

	if (match_process(c->m, e) <= 0 || !(st = proc_entry_stat(e)))
		return 0;
	return st->starttime == c->starttime;
}

bool match_pid(const Matcher *m, pid_t pid, unsigned long long starttime)
{
	PidCtx c = { .m = m, .starttime = starttime };

	return proc_visit(pid, pid_visit, &c) == 1;
}

/* ---- the nearest processes --------------------------------------------------------------- */

/* A key that passes outweighs any likeness in one that fails. */
#define NEAR_KEY	100
#define NEAR_UID	50 /* a shared uid counts for less: most processes of a pod share one */
#define NEAR_PER_CHAR	4 /* for each leading character comm shares with the pattern */
#define NEAR_NAMED	20 /* the cmdline, or the pattern of the other key, names the process */
#define NEAR_MIN_WORD	3 /* shorter shared names are chance, not likeness */
#define NEAR_HINT_SHOWN 3

/* The leading literal characters of a glob, before its first wildcard: "php-fpm" of
 * "php-fpm*". What a process named like the pattern shares with it. */
static size_t glob_word(const char *glob, char *out, size_t size)
{
	size_t n = 0;

	for (const char *p = glob; *p && !strchr("*?[", *p) && n + 1 < size; p++) {
		if (*p == '\\' && p[1])
			p++;
		out[n++] = *p;
	}
	out[n] = '\0';
	return n;
}

/* The leading letters of comm: "python" of "python3", "gunicorn" of "gunicorn: maste". */
static size_t comm_word(const char *comm, char *out, size_t size)
{
	size_t n = 0;

	while (isalpha((unsigned char)comm[n]) && n + 1 < size) {
		out[n] = comm[n];
		n++;
	}
	out[n] = '\0';
	return n;
}

static size_t common_prefix(const char *a, const char *b)
{
	size_t n = 0;

	while (a[n] && b[n] && tolower((unsigned char)a[n]) == tolower((unsigned char)b[n]))
		n++;
	return n;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* Likeness to the comm key: a shared prefix, or a cmdline that names the pattern's word. */
static unsigned near_comm(const char *word, size_t w, const MatchFacts *f)
{
	size_t shared = common_prefix(f->comm, word);
	unsigned near = 0;

	if (w > 0 && shared >= (w < NEAR_MIN_WORD ? w : NEAR_MIN_WORD))
		near += (unsigned)shared * NEAR_PER_CHAR;
	if (w >= NEAR_MIN_WORD && f->cmdline && strcasestr(f->cmdline, word))
		near += NEAR_NAMED;
	return near;
}

unsigned match_nearness(const Matcher *m, const MatchFacts *f, unsigned *fails)
{
	char word[PROC_COMM_MAX];
	unsigned score = 0, likeness = 0, miss = 0;

	if (m->comm && fnmatch(m->comm, f->comm, 0) == 0) {
		score += NEAR_KEY;
	} else if (m->comm) {
		miss |= MATCH_FAILS_COMM;
		likeness += near_comm(word, glob_word(m->comm, word, sizeof(word)), f);
	}
	if (m->has_re && f->cmdline && regexec(&m->re, f->cmdline, 0, NULL, 0) == 0) {
		score += NEAR_KEY;
	} else if (m->has_re) {
		miss |= MATCH_FAILS_CMDLINE;
		/* a cmdline-only rule: does its pattern name the process? */
		if (!m->comm && comm_word(f->comm, word, sizeof(word)) >= NEAR_MIN_WORD &&
		    strcasestr(m->cmdline, word))
			likeness += NEAR_NAMED;
	}
	if (m->exe) {
		const char *base = base_name(m->exe);
		if (f->exe && fnmatch(m->exe, f->exe, 0) == 0) {
			score += NEAR_KEY;
		} else {
			miss |= f->exe_denied ? MATCH_FAILS_EXE_UNREADABLE : MATCH_FAILS_EXE;
			/* named like the executable the rule names, by its comm or its exe */
			if (glob_word(base, word, sizeof(word)) >= NEAR_MIN_WORD &&
			    (fnmatch(base, f->comm, 0) == 0 ||
			     (f->exe && fnmatch(base, base_name(f->exe), 0) == 0)))
				likeness += NEAR_NAMED;
		}
	}
	/* a uid in common is no likeness by itself: most processes of a pod share one */
	bool related = score > 0 || likeness > 0;
	if (m->has_uid && f->uid_known && f->uid == m->uid)
		score += NEAR_UID;
	else if (m->has_uid)
		miss |= MATCH_FAILS_UID;
	*fails = miss;
	return related ? score + likeness : 0;
}

typedef struct NearCtx {
	const Matcher *m;
	size_t max;
	CandidateList *out;
	pid_t *matches; /* every full match, for leaders_only */
	size_t n_matches, cap_matches;
} NearCtx;

static int candidate_fill(Candidate *c, ProcEntry *e, const ProcStat *st, unsigned fails,
			  unsigned nearness)
{
	const char *s;

	*c = (Candidate){ .fails = fails, .nearness = nearness };
	c->t = (Target){ .pid = st->pid, .ppid = st->ppid, .starttime = st->starttime };
	memcpy(c->t.comm, st->comm, sizeof(c->t.comm));
	c->t.uid_known = proc_entry_uid(e, &c->t.uid) == 0;
	if (proc_entry_cmdline(e, &s) < 0)
		s = "";
	return (c->t.cmdline = strdup(s)) ? 0 : -ENOMEM;
}

/* Nearest first; among equals, the lower pid (the older process, usually the parent). */
static int candidate_cmp(const void *a, const void *b)
{
	const Candidate *x = a, *y = b;

	if (x->nearness != y->nearness)
		return x->nearness > y->nearness ? -1 : 1;
	return (x->t.pid > y->t.pid) - (x->t.pid < y->t.pid);
}

/* Keeps at most max: a new candidate takes the place of the farthest when nearer. */
static int candidate_keep(NearCtx *c, ProcEntry *e, const ProcStat *st, unsigned fails,
			  unsigned nearness)
{
	CandidateList *l = c->out;
	Candidate cand;
	size_t at = l->n;

	if (l->n == c->max) {
		at = 0;
		for (size_t i = 1; i < l->n; i++)
			if (candidate_cmp(&l->v[i], &l->v[at]) > 0)
				at = i;
		Candidate probe = { .t.pid = st->pid, .nearness = nearness };
		if (candidate_cmp(&probe, &l->v[at]) > 0)
			return 0;
	} else if (ARRAY_RESERVE(l->v, l->cap, l->n) < 0) {
		return -ENOMEM;
	}
	if (candidate_fill(&cand, e, st, fails, nearness) < 0) {
		free(cand.t.cmdline);
		return -ENOMEM;
	}
	if (at < l->n)
		free(l->v[at].t.cmdline);
	else
		l->n++;
	l->v[at] = cand;
	return 0;
}

static int near_visit(ProcEntry *e, void *userdata)
{
	NearCtx *c = userdata;
	const Matcher *m = c->m;
	MatchFacts f = { 0 };
	const ProcStat *st;
	const char *s;
	unsigned fails;

	if (proc_entry_comm(e, &f.comm) < 0)
		return 0; /* vanished */
	if (proc_entry_cmdline(e, &s) == 0)
		f.cmdline = s;
	if (m->exe) {
		int r = proc_entry_exe(e, &s);
		f.exe = r == 0 ? s : NULL;
		f.exe_denied = r == -EACCES;
	}
	if (m->has_uid)
		f.uid_known = proc_entry_uid(e, &f.uid) == 0;
	unsigned nearness = match_nearness(m, &f, &fails);
	if (nearness == 0 || !(st = proc_entry_stat(e)))
		return 0; /* unrelated; or vanished, a zombie, a kernel thread */
	if (fails == 0) {
		if (ARRAY_RESERVE(c->matches, c->cap_matches, c->n_matches) < 0)
			return -ENOMEM;
		c->matches[c->n_matches++] = st->pid;
	}
	return candidate_keep(c, e, st, fails, nearness);
}

int match_nearest(const Matcher *m, bool leaders_only, size_t max, CandidateList *out)
{
	NearCtx c = { .m = m, .max = max, .out = out };

	candidate_list_done(out);
	if (max == 0 || !m) /* an http rule's matcher: it has no processes, near or not */
		return 0;
	int r = proc_scan(near_visit, &c, NULL);
	for (size_t i = 0; r == 0 && leaders_only && i < out->n; i++)
		for (size_t j = 0; out->v[i].fails == 0 && j < c.n_matches; j++)
			if (c.matches[j] == out->v[i].t.ppid)
				out->v[i].fails = MATCH_FAILS_WORKER;
	free(c.matches);
	if (r < 0) {
		candidate_list_done(out);
		return r;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), candidate_cmp);
	return 0;
}

void candidate_list_done(CandidateList *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].t.cmdline);
	free(l->v);
	*l = (CandidateList){ 0 };
}

const char *match_fails_format(unsigned fails, bool phrases, char *buf, size_t size)
{
	static const struct {
		unsigned bit;
		const char *token, *phrase;
	} names[] = {
		{ MATCH_FAILS_COMM, "comm", "comm" },
		{ MATCH_FAILS_CMDLINE, "cmdline", "cmdline" },
		{ MATCH_FAILS_EXE, "exe", "exe" },
		{ MATCH_FAILS_EXE_UNREADABLE, "exe-unreadable",
		  "exe (unreadable: another uid's, and no CAP_SYS_PTRACE)" },
		{ MATCH_FAILS_UID, "uid", "uid" },
		{ MATCH_FAILS_WORKER, "worker", "nothing, but it is a worker of a match" },
	};
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		if (!(fails & names[i].bit))
			continue;
		int n = snprintf(buf + len, size - len, "%s%s", len ? (phrases ? ", " : ",") : "",
				 phrases ? names[i].phrase : names[i].token);
		if (n < 0 || (size_t)n >= size - len) {
			buf[len] = '\0'; /* cut at a whole name */
			break;
		}
		len += (size_t)n;
	}
	if (!fails)
		snprintf(buf, size, "nothing: it matches now");
	return buf;
}

void match_hint(const Matcher *m, bool leaders_only, char *buf, size_t size)
{
	CandidateList l = { 0 };
	char fails[128];
	size_t len = 0;

	if (match_nearest(m, leaders_only, NEAR_HINT_SHOWN, &l) < 0 || l.n == 0) {
		snprintf(buf, size,
			 "no process comes near the rule; sigreload match -c FILE shows what it "
			 "matches");
		candidate_list_done(&l);
		return;
	}
	for (size_t i = 0; i < l.n && len < size; i++) {
		int n = snprintf(buf + len, size - len, "%spid %d \"%s\" fails %s",
				 i ? "; " : "nearest: ", (int)l.v[i].t.pid, l.v[i].t.comm,
				 match_fails_format(l.v[i].fails, true, fails, sizeof(fails)));
		len += n > 0 ? (size_t)n : 0;
	}
	if (len < size)
		snprintf(buf + len, size - len, "; sigreload match -c FILE lists them");
	candidate_list_done(&l);
}
