/* rulestate.h: one rule at run time: its burst of events, its digest, what its targets were
 * told, its delivery in flight, and the hand-over of all of it across a rule-file reload. */
#ifndef SIGRELOAD_RULESTATE_H
#define SIGRELOAD_RULESTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "fetch.h"
#include "loop.h"
#include "metrics.h"
#include "rules.h"
#include "targets.h"

/* What every rule shares; the engine owns it. */
typedef struct RuleEnv {
	Loop *loop; /* for the pinned targets' pidfds */
	Fetcher *fetcher; /* for http actions and verify */
	Metrics *metrics;
	bool dry_run;
	/* Called every few MiB of a long hash (see DigestHooks.tick). */
	int (*tick)(void *userdata);
	void *userdata;
} RuleEnv;

typedef struct RuleState RuleState;

int rulestate_new(const Rule *rule, const RuleEnv *env, RuleState **out);
void rulestate_free(RuleState *s);
const Rule *rulestate_rule(const RuleState *s);

/* s is the reloaded version of old's rule (the same name, or the same paths under a new name):
 * old's burst, digests and delivery in flight move to s, and old is left empty. If the rule
 * changed (name, paths, or how it tells its targets) while its targets were not known to hold
 * the current content (a burst pending, a delivery in flight, a failure, nobody told), s tells
 * them under the new rule; so it does if it now watches other paths, whose content was never
 * compared with what they read. Otherwise nothing is sent. */
void rulestate_take_over(RuleState *s, RuleState *old, uint64_t now);

/* Whether s has no digest yet to measure changes against (a new rule, or a settled rule whose
 * paths changed), and nothing pending that will give it one. */
bool rulestate_wants_baseline(const RuleState *s);

/* Takes the digest as what the targets hold (they read the files when they started); with
 * signal_on_start, starting also tells them. */
void rulestate_baseline(RuleState *s, bool starting);

/* An inotify event for one of the rule's paths; a resync. */
void rulestate_event(RuleState *s, uint64_t now);
void rulestate_resync(RuleState *s, uint64_t now);

/* Does what is due by now: the delivery in flight, then the evaluation of a finished burst. */
void rulestate_run(RuleState *s, uint64_t now);

/* When rulestate_run has something to do (CLOCK_MONOTONIC ns), 0 for nothing. */
uint64_t rulestate_due(const RuleState *s);

/* The rule's pinned targets (NULL for a rule that signals nobody), for the engine's scans. */
TargetSet *rulestate_targets(RuleState *s);

#endif
