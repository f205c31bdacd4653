/* match.h: a rule's process matcher (comm glob, cmdline ERE, exe glob, uid) and leaders-only. */
#ifndef SIGRELOAD_MATCH_H
#define SIGRELOAD_MATCH_H

#include <stdbool.h>
#include <regex.h>
#include <stddef.h>
#include <sys/types.h>

#include "proc.h"

typedef struct Matcher Matcher;

/* NULL strings and a NULL uid leave that key out; at least one must be given. The regex is
 * compiled here, once. On -EINVAL, err holds why (regerror's text). */
int match_new(const char *comm, const char *cmdline, const char *exe, const uid_t *uid,
	      Matcher **out, char *err, size_t errsize);
void match_free(Matcher *m);

/* Refuses a POSIX ERE whose compiling could take more than a few MiB or seconds (a repetition
 * of a repetition, a back-reference, repetitions that expand too far): 0, or -EINVAL with err
 * saying why. */
int match_regex_check(const char *re, char *err, size_t errsize);

/* match_regex_check, then regcomp(REG_EXTENDED | REG_NOSUB) into *out: 0, -EINVAL with err
 * saying why (regerror's text), or -ENOMEM. */
int match_regex_compile(const char *re, regex_t *out, char *err, size_t errsize);

/* The keys as given (NULL where absent); has_uid tells whether uid is set. */
const char *match_comm(const Matcher *m);
const char *match_cmdline(const Matcher *m);
const char *match_exe(const Matcher *m);
bool match_uid(const Matcher *m, uid_t *out);

typedef struct Target {
	pid_t pid, ppid;
	unsigned long long starttime;
	uid_t uid;
	bool uid_known;
	bool leader; /* would be signaled: leaders-only let it through */
	char comm[PROC_COMM_MAX];
	char *cmdline; /* only when details were asked for; else NULL */
} Target;

typedef struct TargetList {
	Target *v;
	size_t n, cap;
	/* processes every other key lets through whose exe could not be read (another uid, no
	 * ptrace) */
	size_t exe_denied;
	ProcScanInfo scan;
} TargetList;

/* Scans /proc for processes matching m, sorted by pid, each marked leader or not (a NULL m, an
 * http rule's, matches none). With details,
 * uid and cmdline are read for each match. Returns 0 or -errno; out is reset first. */
int match_find(const Matcher *m, bool leaders_only, bool details, TargetList *out);

/* The same for n matchers in one scan of /proc: out[i] for m[i]. */
int match_find_many(const Matcher *const *m, const bool *leaders_only, size_t n, bool details,
		    TargetList *out);
void target_list_done(TargetList *l);

/* Whether the process pid, started at starttime, still matches m (re-read now: a process may
 * exec another program under the same pid). Leaders-only cannot be told without a scan. */
bool match_pid(const Matcher *m, pid_t pid, unsigned long long starttime);

/* ---- when a rule matches nothing: the nearest processes, and why each is not a match ---- */

/* The keys a process fails, as bits; 0: it matches. */
enum {
	MATCH_FAILS_COMM = 1 << 0,
	MATCH_FAILS_CMDLINE = 1 << 1,
	MATCH_FAILS_EXE = 1 << 2,
	MATCH_FAILS_EXE_UNREADABLE = 1 << 3, /* another uid's exe, and no CAP_SYS_PTRACE */
	MATCH_FAILS_UID = 1 << 4,
	MATCH_FAILS_WORKER = 1 << 5, /* every key matches, but so does its parent (leaders_only) */
};

/* What is known of one process. NULL strings were not read or could not be. */
typedef struct MatchFacts {
	const char *comm, *cmdline, *exe;
	bool exe_denied; /* exe: EACCES */
	bool uid_known;
	uid_t uid;
} MatchFacts;

/* How near the process comes to matching m: 0 when it has nothing to do with the rule (its
 * comm shares no prefix with the rule's, its cmdline does not name it, ...), higher when
 * nearer. *fails gets the keys it fails. Pure: no /proc. */
unsigned match_nearness(const Matcher *m, const MatchFacts *f, unsigned *fails);

typedef struct Candidate {
	Target t; /* with uid and cmdline */
	unsigned fails, nearness;
} Candidate;

typedef struct CandidateList {
	Candidate *v;
	size_t n, cap;
} CandidateList;

/* Scans /proc for the processes nearest to matching m, nearest first, at most max. Returns 0
 * or -errno; out is reset first. */
int match_nearest(const Matcher *m, bool leaders_only, size_t max, CandidateList *out);
void candidate_list_done(CandidateList *l);

/* The bits of fails joined with ",": as column tokens ("comm,exe-unreadable") or, with
 * phrases, as words for a sentence ("comm, exe unreadable (...)"). Returns buf. */
const char *match_fails_format(unsigned fails, bool phrases, char *buf, size_t size);

/* A one-line hint for a rule that found no target: the nearest few processes and the keys
 * they fail, or that none comes near. Always fills buf (NUL-terminated, cut to size). */
void match_hint(const Matcher *m, bool leaders_only, char *buf, size_t size);

#endif
