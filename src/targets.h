/* targets.h: a rule's targets between reloads: the leaders its last /proc scan found, pinned by
 * pidfd, so that an exit is an event on the loop (never a poll), a delivery can start from them
 * before any scan, and /metrics can count them without a scan per scrape. */
#ifndef SIGRELOAD_TARGETS_H
#define SIGRELOAD_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop.h"
#include "match.h"
#include "metrics.h"

/* Leaders pinned per rule: past this (a rule with leaders_only false over a big pool), the set
 * is partial, and a delivery scans first. Each pin is an fd. */
#define TARGETS_MAX_PINNED 64

typedef struct TargetSet TargetSet;

/* rule is the rule's name, borrowed: targetset_rename when the rule is reloaded. */
int targetset_new(Loop *loop, Metrics *m, const char *rule, TargetSet **out);
void targetset_free(TargetSet *t);
void targetset_rename(TargetSet *t, const char *rule);

/* What a scan found now (l: the rule's matches, leaders marked): the new leaders are pinned
 * (and logged as started, after the set's first scan), those gone are let go (logged as exited
 * if they did). */
void targetset_update(TargetSet *t, const TargetList *l);

/* Whether the set has seen a scan and pinned every leader it found. */
bool targetset_complete(const TargetSet *t);
size_t targetset_count(const TargetSet *t);

/* Calls fn for each pinned leader still alive that m still matches (read again now). */
void targetset_each(TargetSet *t, const Matcher *m,
		    void (*fn)(pid_t pid, unsigned long long starttime, void *userdata),
		    void *userdata);

/* Reads the pinned leaders' figures from /proc now (stat, and the fd table where it may): for
 * /metrics, at most as often as it scans. */
void targetset_read_figures(TargetSet *t);
/* The figures last read, and whether a leader was pinned or unpinned since. */
const TargetFigures *targetset_figures(const TargetSet *t);
bool targetset_figures_stale(const TargetSet *t);

/* The loop's dispatch for a pin's pidfd: its process exited (logged and counted). */
void targetset_dispatch(Source *src);

#endif
