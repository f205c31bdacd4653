/* rulestate.c: a rule's decisions: when to evaluate, whether its files changed, whom to tell,
 * and what is known of its targets afterwards. */
#include "rulestate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "delivery.h"
#include "digest.h"
#include "log.h"
#include "match.h"
#include "timer.h"

/* How soon a digest that failed for a passing reason (no fd left, I/O) is tried again. */
#define RETRY_NS (1000 * NSEC_PER_MSEC)
/* After this many digests in a row failed by a file's own read error (EIO), the file counts by
 * its identity, as an unreadable one does, and the rest of the rule reloads. */
#define READ_RETRIES 3
/* What the "files unreadable" warning lists of the names. */
#define UNREADABLE_LIST_MAX 512

/* One burst of events: due once quiet for debounce, and at the latest max_wait after its
 * first event. */
typedef struct Burst {
	uint64_t start, last, due; /* due 0: no burst */
} Burst;

struct RuleState {
	const Rule *rule;
	const RuleEnv *env;
	Burst burst;
	/* acted: the last digest acted on (told, nobody to tell, or the start-up baseline). */
	bool baselined;
	unsigned char acted[DIGEST_LEN];
	bool untold; /* the targets may not hold acted (nobody told, a failure, a dry run) */
	bool must_tell; /* the next evaluation delivers, changed or not */
	Delivery *d; /* in flight, or NULL */
	TargetSet *targets; /* its leaders, pinned between reloads */
	uint64_t last_delivery; /* when the last one started, for min_interval */
	bool held;
	unsigned read_failures; /* digests in a row that a file's own read error failed */
	size_t n_unreadable; /* files counted by identity at the last digest */
	uint64_t unreadable_hash; /* of their names: a new set is warned about once */
};

DEFINE_CLEANUP_FUNC(RuleState, rulestate_free)

int rulestate_new(const Rule *rule, const RuleEnv *env, RuleState **out)
{
	_cleanup_(rulestate_freep) RuleState *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->rule = rule;
	s->env = env;
	if (rule->match && targetset_new(env->loop, env->metrics, rule->name, &s->targets) < 0)
		return -ENOMEM;
	*out = TAKE_PTR(s);
	return 0;
}

void rulestate_free(RuleState *s)
{
	if (!s)
		return;
	delivery_free(s->d);
	targetset_free(s->targets);
	free(s);
}

TargetSet *rulestate_targets(RuleState *s)
{
	return s->targets;
}

const Rule *rulestate_rule(const RuleState *s)
{
	return s->rule;
}

static void burst_set_due(Burst *b, const Rule *r)
{
	uint64_t quiet = b->last + r->debounce_ms * NSEC_PER_MSEC,
		 cap = b->start + r->max_wait_ms * NSEC_PER_MSEC;
	b->due = quiet < cap ? quiet : cap;
}

void rulestate_event(RuleState *s, uint64_t now)
{
	if (!s->burst.due)
		s->burst.start = now;
	s->burst.last = now;
	burst_set_due(&s->burst, s->rule);
}

void rulestate_resync(RuleState *s, uint64_t now)
{
	if (!s->burst.due)
		s->burst = (Burst){ .start = now, .last = now, .due = now };
}

/* When the burst is to be evaluated: never sooner than min_interval after the last delivery
 * began, so that the evaluation then delivers the newest content; and not while a request is
 * under way: one request per rule at a time, the newest content asked for when it ends. */
static uint64_t burst_due(const RuleState *s)
{
	uint64_t next = s->last_delivery + s->rule->min_interval_ms * NSEC_PER_MSEC;

	if (s->d && delivery_requesting(s->d))
		return 0;
	if (s->burst.due && s->last_delivery && s->rule->min_interval_ms && next > s->burst.due)
		return next;
	return s->burst.due;
}

uint64_t rulestate_due(const RuleState *s)
{
	uint64_t b = burst_due(s), d = s->d ? delivery_due(s->d) : 0;

	return !b ? d : !d ? b : b < d ? b : d;
}

/* ---- digests ----------------------------------------------------------------------------- */

typedef struct DigestCtx {
	RuleState *s;
	const char *failed; /* where the digest failed: a copy in where[] */
	char where[256];
	size_t n_unreadable;
	uint64_t unreadable_hash;
	char unreadable[UNREADABLE_LIST_MAX];
} DigestCtx;

static void on_skip(const char *name, const char *why, void *userdata)
{
	const DigestCtx *c = userdata;

	log_warn("not hashed", LF_STR("rule", c->s->rule->name), LF_STR("path", name),
		 LF_STR("why", why));
}

static void on_unreadable(const char *name, int err, void *userdata)
{
	DigestCtx *c = userdata;
	size_t len = strlen(c->unreadable);

	(void)err;
	c->n_unreadable++;
	for (const char *p = name; *p; p++) /* FNV-1a */
		c->unreadable_hash = (c->unreadable_hash ^ (unsigned char)*p) * 1099511628211ULL;
	c->unreadable_hash = (c->unreadable_hash ^ '\n') * 1099511628211ULL;
	if (len + strlen(name) + 3 < sizeof(c->unreadable))
		snprintf(c->unreadable + len, sizeof(c->unreadable) - len, "%s%s", len ? ", " : "",
			 name);
}

static void on_failed(const char *name, int err, void *userdata)
{
	DigestCtx *c = userdata;

	(void)err;
	snprintf(c->where, sizeof(c->where), "%s", name);
	c->failed = c->where;
}

static int on_tick(void *userdata)
{
	const RuleEnv *env = ((DigestCtx *)userdata)->s->env;

	return env->tick ? env->tick(env->userdata) : 0;
}

/* Errors of the system, not of the files: they pass by themselves. */
static bool system_trouble(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM || err == -ENOBUFS ||
	       err == -EAGAIN;
}

/* Errors that say what the path is (missing, not a file, too many files): they last until the
 * path changes, and its watch says when. */
static bool structural(int err)
{
	return err == -ENOENT || err == -ENOTDIR || err == -ELOOP || err == -EINVAL ||
	       err == -E2BIG || err == -ENAMETOOLONG || err == -EACCES || err == -EPERM;
}

/* Says (once, unless debugging) that the rule is held, where and why, and when it is retried. */
static void say_held(RuleState *s, int err, const char *where)
{
	bool retried = !structural(err);

	if (!s->held || log_enabled(LEVEL_DEBUG))
		log_warn("held", LF_STR("rule", s->rule->name), LF_STR("path", where),
			 LF_STR("err", err == -E2BIG	? "more than 10000 files"
				       : err == -EINVAL ? "not a regular file or a directory"
				       : err == -EAGAIN ? "the files changed while they were read"
							: strerror(-err)),
			 LF_STR("next", retried ? "retried in a second"
						: "evaluated again when the path changes"));
	s->held = true;
	metrics_reload(s->env->metrics, s->rule->name, RESULT_HELD);
}

/* A new set of files counted by identity is warned about once, with what to do. */
static void say_unreadable(RuleState *s, const DigestCtx *c)
{
	if ((c->n_unreadable == 0 && s->n_unreadable == 0) ||
	    (c->n_unreadable == s->n_unreadable && c->unreadable_hash == s->unreadable_hash))
		return;
	if (c->n_unreadable)
		log_warn("files unreadable", LF_STR("rule", s->rule->name),
			 LF_STR("files", c->unreadable), LF_UINT("count", c->n_unreadable),
			 LF_STR("hint",
				"they count by identity (inode, ctime, size), not content: "
				"make them readable by sigreload's uid with the pod's fsGroup "
				"and defaultMode 0440, or run sigreload as their owner "
				"(runAsUser)"));
	else
		log_info("files readable again", LF_STR("rule", s->rule->name));
	s->n_unreadable = c->n_unreadable;
	s->unreadable_hash = c->unreadable_hash;
	metrics_unreadable(s->env->metrics, s->rule->name, c->n_unreadable);
}

/* The rule's digest, or why it is held (said here). On a passing failure the burst is set to
 * retry in a second. */
static int rule_digest(RuleState *s, uint64_t burst_start, unsigned char digest[DIGEST_LEN],
		       size_t *files)
{
	const Rule *r = s->rule;
	DigestList list = { 0 };
	DigestCtx ctx = { .s = s, .unreadable_hash = 14695981039346656037ULL };
	DigestHooks hooks = { .skip = on_skip,
			      .unreadable = on_unreadable,
			      .failed = on_failed,
			      .tick = on_tick,
			      .userdata = &ctx,
			      .identity_on_error = s->read_failures >= READ_RETRIES };
	size_t bad = 0;

	int res = digest_paths(r->paths, r->n_paths, &list, digest, &hooks, &bad);
	*files = list.n;
	digest_list_done(&list);
	if (res == -ECANCELED)
		return res; /* we are stopping */
	if (res < 0) {
		say_held(s, res, ctx.failed ? ctx.failed : r->paths[bad]);
		if (!structural(res) && !system_trouble(res))
			s->read_failures++;
		if (!structural(res)) {
			uint64_t now = timer_now();
			s->burst = (Burst){ .start = burst_start ? burst_start : now,
					    .last = now,
					    .due = now + RETRY_NS };
		}
		return res;
	}
	s->read_failures = 0;
	if (s->held)
		log_info("path back", LF_STR("rule", r->name));
	s->held = false;
	say_unreadable(s, &ctx);
	return 0;
}

/* ---- deliveries -------------------------------------------------------------------------- */

/* What a finished delivery leaves known of the targets. */
static void delivery_over(RuleState *s, const DeliveryOutcome *o)
{
	const Rule *r = s->rule;
	Metrics *m = s->env->metrics;
	char hex[DIGEST_HEX_LEN];
	const unsigned char *digest = delivery_digest(s->d);

	digest_hex(digest, hex);
	if (o->failed) {
		/* The digest acted on stays, and the next event (or resync) tries again. */
		log_error("reload failed", LF_STR("rule", r->name), LF_STR("reason", o->reason),
			  LF_UINT("failed", o->failed), LF_UINT("signaled", o->signaled),
			  LF_STR("sha256", hex));
		metrics_reload(m, r->name, RESULT_FAILED);
		s->untold = s->must_tell = true;
		goto done;
	}
	memcpy(s->acted, digest, DIGEST_LEN);
	s->baselined = true;
	s->untold = (o->signaled == 0 && !r->http) || s->env->dry_run;
	if (r->http && s->env->dry_run) {
		log_info("would reload (dry run)", LF_STR("rule", r->name), LF_STR("sha256", hex));
	} else if (r->http) {
		log_info("reloaded", LF_STR("rule", r->name), LF_INT("status", o->status),
			 LF_STR("sha256", hex));
		metrics_reload(m, r->name, RESULT_REQUESTED);
		metrics_config_hash(m, r->name, digest);
	} else if (o->signaled == 0) {
		char hint[512];

		/* A target that starts later reads the files as they are now; but the targets are
		 * not known to hold them, should the rule's match be fixed. The processes nearest
		 * to the rule are looked for here only, where a user needs them. */
		match_hint(r->match, r->leaders_only, hint, sizeof(hint));
		log_warn("no target", LF_STR("rule", r->name), LF_STR("sha256", hex),
			 LF_STR("hint", hint));
		metrics_reload(m, r->name, RESULT_NO_TARGET);
	} else if (s->env->dry_run) {
		log_info("would reload (dry run)", LF_STR("rule", r->name),
			 LF_UINT("targets", o->signaled), LF_STR("sha256", hex));
	} else {
		log_info("reloaded", LF_STR("rule", r->name), LF_UINT("targets", o->signaled),
			 LF_STR("sha256", hex));
		metrics_reload(m, r->name, RESULT_SIGNALED);
		metrics_config_hash(m, r->name, digest);
	}
done:
	delivery_free(s->d);
	s->d = NULL;
}

static void run_delivery(RuleState *s, uint64_t now)
{
	DeliveryOutcome o;

	if (delivery_run(s->d, now, &o))
		delivery_over(s, &o);
}

/* A newer version, or a changed rule, supersedes the delivery in flight. What it did tell
 * somebody is recorded; what it did not is simply dropped. */
static void supersede(RuleState *s)
{
	DeliveryOutcome o;

	delivery_supersede(s->d, &o);
	if (delivery_sent(s->d) || o.failed) {
		delivery_over(s, &o);
	} else {
		delivery_free(s->d);
		s->d = NULL;
	}
}

static void add_target(pid_t pid, unsigned long long starttime, void *userdata)
{
	delivery_add(userdata, pid, starttime);
}

/* A delivery that cannot find its targets: nobody is told, and the next event retries. */
static void cannot_find(RuleState *s, int err)
{
	log_error("cannot find the targets", LF_STR("rule", s->rule->name), LF_ERRNO(-err),
		  LF_STR("next", "retried at the next event"));
	metrics_reload(s->env->metrics, s->rule->name, RESULT_FAILED);
	s->untold = s->must_tell = true;
	delivery_free(s->d);
	s->d = NULL;
}

/* Starts telling the targets digest: those pinned since the last scan at once (if they still
 * match), then whoever a scan finds besides (started since, or never pinned), so that the scan's
 * cost is not in the way of the first signals. */
static void start_delivery(RuleState *s, const unsigned char *digest, uint64_t burst_start,
			   uint64_t now)
{
	const Rule *r = s->rule;
	DeliverySpec spec = { .rule = r->name,
			      .signal = r->signal,
			      .handler_wait_ms = r->handler_wait_ms,
			      .verify_after_ms = r->verify_after_ms,
			      .start_grace_ms = r->start_grace_ms,
			      .dry_run = s->env->dry_run,
			      .http = r->http,
			      .verify = r->verify,
			      .fetcher = s->env->fetcher };
	TargetList l = { 0 };
	DeliveryOutcome o;
	int res;

	s->must_tell = false;
	s->last_delivery = now;
	if ((res = delivery_new(&spec, digest, burst_start, s->env->metrics, &s->d)) < 0) {
		cannot_find(s, res);
		return;
	}
	if (r->http) { /* a URL to request: no process to find */
		delivery_seal(s->d);
		run_delivery(s, now);
		return;
	}
	if (targetset_complete(s->targets)) {
		targetset_each(s->targets, r->match, add_target, s->d);
		delivery_run(s->d, now, &o); /* not sealed: it goes on below */
	}
	if ((res = match_find(r->match, r->leaders_only, false, &l)) < 0 && !delivery_sent(s->d)) {
		cannot_find(s, res);
		return;
	}
	if (res == 0)
		targetset_update(s->targets, &l);
	size_t found = 0;
	for (size_t i = 0; i < l.n; i++)
		if (l.v[i].leader) {
			delivery_add(s->d, l.v[i].pid, l.v[i].starttime);
			found++;
		}
	target_list_done(&l);
	/* from here on, a process that starts is not this delivery's: the next change tells it */
	delivery_seal(s->d);
	log_debug("scanned", LF_STR("rule", r->name), LF_UINT("targets", found));
	run_delivery(s, timer_now());
}

/* ---- evaluation -------------------------------------------------------------------------- */

static void evaluate(RuleState *s, uint64_t now)
{
	unsigned char digest[DIGEST_LEN];
	char now_hex[DIGEST_HEX_LEN], old_hex[DIGEST_HEX_LEN];
	uint64_t burst_start = s->burst.start;
	size_t files;

	s->burst = (Burst){ 0 };
	if (rule_digest(s, burst_start, digest, &files) < 0)
		return;
	digest_hex(digest, now_hex);
	const unsigned char *current = s->d	      ? delivery_digest(s->d)
				       : s->baselined ? s->acted
						      : NULL;
	if (!s->must_tell && current && memcmp(current, digest, DIGEST_LEN) == 0) {
		log_info("unchanged", LF_STR("rule", s->rule->name), LF_STR("sha256", now_hex),
			 LF_UINT("files", files));
		metrics_reload(s->env->metrics, s->rule->name, RESULT_UNCHANGED);
		return;
	}
	/* A newer version supersedes a reload in flight: its targets must read this one. */
	if (s->d)
		supersede(s);
	log_info("changed", LF_STR("rule", s->rule->name), LF_STR("sha256", now_hex),
		 LF_STR("previous", s->baselined ? digest_hex(s->acted, old_hex) : "none"),
		 LF_UINT("files", files));
	start_delivery(s, digest, burst_start, now);
}

void rulestate_run(RuleState *s, uint64_t now)
{
	if (s->d && delivery_due(s->d) <= now)
		run_delivery(s, now);
	uint64_t due = burst_due(s);
	if (due && due <= now)
		evaluate(s, now);
}

bool rulestate_wants_baseline(const RuleState *s)
{
	return !s->baselined && !s->must_tell && !s->burst.due && !s->d;
}

void rulestate_baseline(RuleState *s, bool starting)
{
	unsigned char digest[DIGEST_LEN];
	char hex[DIGEST_HEX_LEN];
	size_t files;

	if (rule_digest(s, 0, digest, &files) < 0)
		return;
	memcpy(s->acted, digest, DIGEST_LEN);
	s->baselined = true;
	s->untold = false;
	metrics_config_hash(s->env->metrics, s->rule->name, digest);
	log_info("watching", LF_STR("rule", s->rule->name),
		 LF_STR("sha256", digest_hex(digest, hex)), LF_UINT("files", files));
	if (starting && s->rule->signal_on_start)
		start_delivery(s, digest, 0, timer_now());
}

/* ---- rule-file reloads ------------------------------------------------------------------- */

void rulestate_take_over(RuleState *s, RuleState *old, uint64_t now)
{
	bool same =
	    rules_same_paths(s->rule, old->rule) && strcmp(s->rule->name, old->rule->name) == 0;
	bool same_set = rules_same_path_set(s->rule, old->rule);
	bool same_action = rules_same_action(s->rule, old->rule);
	bool settled = old->baselined && !old->untold && !old->must_tell && !old->burst.due &&
		       !old->d && !old->held;
	const Rule *rule = s->rule;
	TargetSet *fresh = s->targets;

	*s = *old; /* the burst keeps its start: max_wait still holds, debounce is not cut short */
	s->rule = rule;
	old->d = NULL;
	if (same_action && s->targets) { /* the same processes: still pinned */
		old->targets = fresh;
		targetset_rename(s->targets, rule->name);
	} else {
		s->targets = fresh;
	}
	if (same_action && s->d)
		delivery_rebind(s->d, rule); /* its request and verify are the new rule's now */
	if (s->burst.due)
		burst_set_due(&s->burst, rule);
	if (same && same_action)
		return;
	/* Its targets hold what its files hold: another name, another order of the same paths
	 * or another way to tell them has nothing new for them. */
	if (settled && same_set)
		return;
	/* Not known to hold the current content (a change pending, a delivery in flight or
	 * failed, nobody told), or other paths, whose content sigreload never compared with what
	 * the targets read: tell them, the new way. */
	uint64_t start = s->burst.due ? s->burst.start : now;
	if (s->d) {
		if (delivery_burst_start(s->d))
			start = delivery_burst_start(s->d);
		supersede(s);
	}
	s->must_tell = true;
	if (!s->burst.due)
		s->burst = (Burst){ .start = start, .last = now, .due = now };
}
