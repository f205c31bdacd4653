/* match.h: a rule's process matcher (comm glob, cmdline ERE, exe glob, uid) and leaders-only. */
#ifndef SIGRELOAD_MATCH_H
#define SIGRELOAD_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proc.h"

typedef struct Matcher Matcher;

/* NULL strings and a NULL uid leave that key out; at least one must be given. The regex is
 * compiled here, once. On -EINVAL, err holds why (regerror's text). */
int match_new(const char *comm, const char *cmdline, const char *exe, const uid_t *uid,
	      Matcher **out, char *err, size_t errsize);
void match_free(Matcher *m);

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
	size_t exe_denied; /* processes whose exe could not be read (another uid, no ptrace) */
	ProcScanInfo scan;
} TargetList;

/* Scans /proc for processes matching m, sorted by pid, each marked leader or not. With details,
 * uid and cmdline are read for each match. Returns 0 or -errno; out is reset first. */
int match_find(const Matcher *m, bool leaders_only, bool details, TargetList *out);

/* The same for n matchers in one scan of /proc: out[i] for m[i]. */
int match_find_many(const Matcher *const *m, const bool *leaders_only, size_t n, bool details,
		    TargetList *out);
void target_list_done(TargetList *l);

/* Whether the process pid, started at starttime, still matches m (re-read now: a process may
 * exec another program under the same pid). Leaders-only cannot be told without a scan. */
bool match_pid(const Matcher *m, pid_t pid, unsigned long long starttime);

#endif
