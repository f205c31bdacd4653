/* engine.c: what sigreload decides, and the log lines that say so. */
#include "engine.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "digest.h"
#include "http.h"
#include "log.h"
#include "match.h"
#include "metrics.h"
#include "notify.h"
#include "proc.h"
#include "signame.h"
#include "timer.h"
#include "watch.h"

#define CONFIG_OWNER UINT_MAX
/* How often a target without a handler is looked at again, within handler_wait. */
#define HANDLER_RETRY_NS (100 * NSEC_PER_MSEC)
/* How soon a digest that failed for a passing reason (no fd left, I/O) is tried again. */
#define DIGEST_RETRY_NS (1000 * NSEC_PER_MSEC)

typedef enum { PHASE_IDLE, PHASE_HANDLER_WAIT, PHASE_VERIFY } Phase;

/* One reload in flight: targets waiting for a handler, then signaled ones being verified. */
typedef struct Delivery {
	Phase phase;
	unsigned char digest[DIGEST_LEN];
	uint64_t burst_start; /* first event of the burst it answers; 0 at start-up */
	uint64_t handler_deadline;
	uint64_t due;
	Pinned *pending, *sent; /* sent: pinned until verified */
	size_t n_pending, n_sent, n_signaled, n_failed;
	const char *reason; /* of the first failure */
	bool waiting_logged;
} Delivery;

/* Debounce of one burst of events: due at the earliest of quiet-for-debounce and max_wait. */
typedef struct Burst {
	uint64_t start, due; /* due 0: no burst */
} Burst;

typedef struct RuleState {
	const Rule *rule;
	bool known; /* signaled holds the digest the targets last reloaded at (or start-up's) */
	bool held;
	unsigned char signaled[DIGEST_LEN];
	Burst burst;
	Delivery d;
} RuleState;

struct Engine {
	EngineOptions opt;
	Rules *rules;
	RuleState *states;
	size_t n_states;
	Loop *loop;
	Source *signals;
	Watch *watch;
	Timer *timer;
	char *config_path; /* absolute, to watch */
	unsigned char config_digest[DIGEST_LEN]; /* of the content last loaded or tried */
	Burst config_burst;
	uint64_t resync_due;
	Metrics *metrics;
	Http *http;
	char *listen; /* the metrics_listen served, as configured at start-up */
	bool started;
	bool stopping, reload_pending; /* signals taken, acted on between steps */
};

static void hex(const unsigned char *d, char out[DIGEST_HEX_LEN])
{
	digest_hex(d, out);
}

/* The digest the targets now hold (or nobody needed telling about). */
static void set_signaled(Engine *e, RuleState *s, const unsigned char *digest)
{
	memcpy(s->signaled, digest, DIGEST_LEN);
	s->known = true;
	metrics_config_hash(e->metrics, s->rule->name, digest);
}

static void burst_event(Burst *b, uint64_t now, uint64_t debounce_ms, uint64_t max_wait_ms)
{
	if (!b->due)
		b->start = now;
	uint64_t quiet = now + debounce_ms * NSEC_PER_MSEC,
		 cap = b->start + max_wait_ms * NSEC_PER_MSEC;
	b->due = quiet < cap ? quiet : cap;
}

/* ---- delivery ---------------------------------------------------------------------------- */

static void delivery_reset(Delivery *d)
{
	for (size_t i = 0; i < d->n_pending; i++)
		notify_unpin(&d->pending[i]);
	for (size_t i = 0; i < d->n_sent; i++)
		notify_unpin(&d->sent[i]);
	free(d->pending);
	free(d->sent);
	*d = (Delivery){ .phase = PHASE_IDLE };
}

static void delivery_fail(Engine *e, RuleState *s, const Pinned *p, SignalError reason,
			  const char *why)
{
	char sig[SIGNAME_MAX];

	s->d.n_failed++;
	if (!s->d.reason)
		s->d.reason = metrics_reason_name(reason);
	metrics_signal_error(e->metrics, s->rule->name, reason);
	log_error("signal failed", LF_STR("rule", s->rule->name), LF_INT("pid", p->pid),
		  LF_STR("signal", signame_format(s->rule->signal, sig)),
		  LF_STR("reason", metrics_reason_name(reason)), LF_STR("err", why));
}

static void finalize(Engine *e, RuleState *s)
{
	char digest[DIGEST_HEX_LEN];
	Delivery *d = &s->d;

	hex(d->digest, digest);
	metrics_reload(e->metrics, s->rule->name, d->n_failed ? RESULT_FAILED : RESULT_SIGNALED);
	if (d->n_failed == 0) {
		set_signaled(e, s, d->digest);
		log_info("reloaded", LF_STR("rule", s->rule->name),
			 LF_UINT("targets", d->n_signaled), LF_STR("sha256", digest));
	} else {
		/* The digest stays where it was: the next event retries. */
		log_error("reload failed", LF_STR("rule", s->rule->name),
			  LF_STR("reason", d->reason), LF_UINT("failed", d->n_failed),
			  LF_UINT("signaled", d->n_signaled), LF_STR("sha256", digest));
	}
	delivery_reset(d);
}

static int push(Pinned **v, size_t *n, const Pinned *p)
{
	Pinned *nv = reallocarray(*v, *n + 1, sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[(*n)++] = *p;
	return 0;
}

/* Sends to one target whose handler is in place; it moves to sent, or counts as failed. */
static void send_one(Engine *e, RuleState *s, Pinned *p, uint64_t now)
{
	const Rule *r = s->rule;
	char sig[SIGNAME_MAX], digest[DIGEST_HEX_LEN], delay[32], why[256];
	int res = e->opt.dry_run ? 0 : notify_send(p, r->signal);

	if (res == -EPERM) {
		notify_explain_eperm(p->pid, why, sizeof(why));
		delivery_fail(e, s, p, REASON_EPERM, why);
	} else if (res == -ESRCH) {
		delivery_fail(e, s, p, REASON_ESRCH, "the process exited before the signal");
	} else if (res < 0) {
		delivery_fail(e, s, p, REASON_OTHER, strerror(-res));
	}
	if (res < 0) {
		notify_unpin(p);
		return;
	}
	snprintf(delay, sizeof(delay), "%.3f",
		 s->d.burst_start ? (double)(now - s->d.burst_start) / 1e6 : 0.0);
	log_info(e->opt.dry_run ? "would signal (dry run)" : "signaled", LF_STR("rule", r->name),
		 LF_STR("signal", signame_format(r->signal, sig)), LF_INT("pid", p->pid),
		 LF_STR("sha256", (hex(s->d.digest, digest), digest)),
		 LF_STR("since_event_ms", delay));
	s->d.n_signaled++;
	if (!e->opt.dry_run)
		metrics_signal_sent(e->metrics, r->name, r->signal);
	if (e->opt.dry_run || push(&s->d.sent, &s->d.n_sent, p) < 0)
		notify_unpin(p);
}

/* Tries every target still waiting; decides what comes next for the delivery. */
static void deliver(Engine *e, RuleState *s)
{
	const Rule *r = s->rule;
	Delivery *d = &s->d;
	uint64_t now = timer_now();
	size_t kept = 0;
	char sig[SIGNAME_MAX], why[128];

	for (size_t i = 0; i < d->n_pending; i++) {
		Pinned *p = &d->pending[i];
		int ready = r->handler_wait_ms == 0 ? 1 : notify_ready(p, r->signal);
		if (ready < 0) {
			delivery_fail(e, s, p, ready == -ESRCH ? REASON_ESRCH : REASON_OTHER,
				      ready == -ESRCH ? "the process exited before the signal"
						      : strerror(-ready));
			notify_unpin(p);
		} else if (ready == 0 && now < d->handler_deadline) {
			d->pending[kept++] = *p;
		} else if (ready == 0) {
			snprintf(why, sizeof(why),
				 "no handler for %s after %llums: not signaled, "
				 "its default action would end it",
				 signame_format(r->signal, sig),
				 (unsigned long long)r->handler_wait_ms);
			delivery_fail(e, s, p, REASON_NO_HANDLER, why);
			notify_unpin(p);
		} else {
			send_one(e, s, p, now);
		}
	}
	d->n_pending = kept;
	if (kept > 0) {
		if (!d->waiting_logged)
			log_info("waiting for a signal handler", LF_STR("rule", r->name),
				 LF_UINT("targets", kept),
				 LF_STR("signal", signame_format(r->signal, sig)));
		d->waiting_logged = true;
		uint64_t retry = now + HANDLER_RETRY_NS;
		d->due = retry < d->handler_deadline ? retry : d->handler_deadline;
		return;
	}
	if (d->n_sent > 0 && r->verify_after_ms > 0) {
		d->phase = PHASE_VERIFY;
		d->due = now + r->verify_after_ms * NSEC_PER_MSEC;
		return;
	}
	finalize(e, s);
}

static void verify(Engine *e, RuleState *s)
{
	Delivery *d = &s->d;

	for (size_t i = 0; i < d->n_sent; i++)
		if (!notify_alive(&d->sent[i]))
			delivery_fail(e, s, &d->sent[i], REASON_TARGET_EXITED,
				      "the process exited after the signal");
	finalize(e, s);
}

/* A changed digest: find the targets now and start signaling them. */
static void start_delivery(Engine *e, RuleState *s, const unsigned char *digest,
			   uint64_t burst_start)
{
	const Rule *r = s->rule;
	Delivery *d = &s->d;
	TargetList l = { 0 };
	char hexd[DIGEST_HEX_LEN];

	*d = (Delivery){ .phase = PHASE_HANDLER_WAIT,
			 .burst_start = burst_start,
			 .handler_deadline = timer_now() + r->handler_wait_ms * NSEC_PER_MSEC };
	memcpy(d->digest, digest, DIGEST_LEN);
	int res = match_find(r->match, r->leaders_only, false, &l);
	if (res < 0) {
		log_error("cannot scan /proc", LF_STR("rule", r->name), LF_ERRNO(-res));
		d->n_failed = 1;
		d->reason = metrics_reason_name(REASON_OTHER);
		finalize(e, s);
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		Pinned p;
		if (!l.v[i].leader)
			continue;
		int pin = notify_pin(l.v[i].pid, l.v[i].starttime, &p);
		if (pin == -ESRCH)
			continue; /* gone since the scan: nothing left to reload */
		if (pin < 0 || push(&d->pending, &d->n_pending, &p) < 0) {
			/* never a target dropped in silence */
			Pinned gone = { .pid = l.v[i].pid, .pidfd = -1 };
			delivery_fail(e, s, &gone, REASON_OTHER,
				      pin < 0 ? strerror(-pin) : "out of memory");
			if (pin == 0)
				notify_unpin(&p);
		}
	}
	target_list_done(&l);
	if (d->n_pending == 0 && d->n_failed == 0) {
		/* Nobody to tell: a target that starts later reads the files as they are now. */
		log_warn("no target", LF_STR("rule", r->name),
			 LF_STR("sha256", (hex(digest, hexd), hexd)),
			 LF_STR("hint", "sigreload match -c FILE shows what the rule matches"));
		metrics_reload(e->metrics, r->name, RESULT_NO_TARGET);
		set_signaled(e, s, digest);
		delivery_reset(d);
		return;
	}
	deliver(e, s);
}

/* ---- evaluation -------------------------------------------------------------------------- */

typedef struct DigestCtx {
	Engine *e;
	const Rule *rule;
} DigestCtx;

static void skip_logged(const char *name, const char *why, void *userdata)
{
	const DigestCtx *c = userdata;
	log_warn("not hashed", LF_STR("rule", c->rule->name), LF_STR("path", name),
		 LF_STR("why", why));
}

static void take_signals(Engine *e);

/* A long hash (a big file) looks up every few MiB: a SIGTERM is taken at once and a probe is
 * answered, so neither waits for the last byte. Nothing else runs here: the rule state is
 * mid-evaluation. */
static int digest_tick(void *userdata)
{
	Engine *e = ((DigestCtx *)userdata)->e;
	struct pollfd p[2] = { { .fd = e->signals->fd, .events = POLLIN },
			       { .fd = e->http ? http_source(e->http)->fd : -1,
				 .events = POLLIN } };

	if (poll(p, 2, 0) > 0) {
		if (p[0].revents)
			take_signals(e);
		if (p[1].revents && !e->stopping)
			http_dispatch(e->http);
	}
	return e->stopping;
}

/* Failures that pass by themselves; a missing path is waited for by its watch instead. */
static bool transient(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOMEM || err == -EIO ||
	       err == -EAGAIN || err == -ENOBUFS;
}

/* The rule's digest, or a reason it is held (logged here). */
static int rule_digest(Engine *e, RuleState *s, unsigned char digest[DIGEST_LEN], size_t *files)
{
	const Rule *r = s->rule;
	DigestList list = { 0 };
	DigestCtx ctx = { .e = e, .rule = r };
	DigestHooks hooks = { .skip = skip_logged, .tick = digest_tick, .userdata = &ctx };
	size_t bad = 0;

	int res = digest_paths(r->paths, r->n_paths, &list, digest, &hooks, &bad);
	*files = list.n;
	digest_list_done(&list);
	if (res < 0 && res != -ECANCELED) { /* cancelled: we are stopping */
		if (!s->held || log_enabled(LEVEL_DEBUG))
			log_warn("held", LF_STR("rule", r->name), LF_STR("path", r->paths[bad]),
				 LF_STR("err", res == -E2BIG ? "more than 10000 files"
					       : res == -EINVAL
						   ? "not a regular file or a directory"
						   : strerror(-res)),
				 LF_STR("next", transient(res)
						    ? "retried in a second"
						    : "evaluated again when the path changes"));
		s->held = true;
		metrics_reload(e->metrics, r->name, RESULT_HELD);
	}
	return res;
}

static void evaluate(Engine *e, RuleState *s)
{
	unsigned char digest[DIGEST_LEN];
	char now_hex[DIGEST_HEX_LEN], old_hex[DIGEST_HEX_LEN];
	uint64_t burst_start = s->burst.start;
	size_t files;

	s->burst = (Burst){ 0 };
	int r = rule_digest(e, s, digest, &files);
	if (r < 0) {
		if (transient(r))
			s->burst = (Burst){ .start = burst_start ? burst_start : timer_now(),
					    .due = timer_now() + DIGEST_RETRY_NS };
		return;
	}
	if (s->held)
		log_info("path back", LF_STR("rule", s->rule->name));
	s->held = false;
	hex(digest, now_hex);
	bool in_flight = s->d.phase == PHASE_HANDLER_WAIT;
	const unsigned char *current = s->d.phase != PHASE_IDLE ? s->d.digest
				       : s->known		? s->signaled
								: NULL;
	if (current && memcmp(current, digest, DIGEST_LEN) == 0) {
		log_info("unchanged", LF_STR("rule", s->rule->name), LF_STR("sha256", now_hex),
			 LF_UINT("files", files));
		metrics_reload(e->metrics, s->rule->name, RESULT_UNCHANGED);
		return;
	}
	/* A newer version supersedes a reload in flight: its targets must read this one. */
	if (s->d.phase == PHASE_VERIFY)
		verify(e, s);
	else if (in_flight) {
		log_info("superseded", LF_STR("rule", s->rule->name),
			 LF_UINT("not_signaled", s->d.n_pending));
		delivery_reset(&s->d);
	}
	log_info("changed", LF_STR("rule", s->rule->name), LF_STR("sha256", now_hex),
		 LF_STR("previous", s->known ? (hex(s->signaled, old_hex), old_hex) : "none"),
		 LF_UINT("files", files));
	start_delivery(e, s, digest, burst_start);
}

/* The start-up digest: the baseline later changes are measured against. */
static void baseline(Engine *e, RuleState *s)
{
	unsigned char digest[DIGEST_LEN];
	char h[DIGEST_HEX_LEN];
	size_t files;

	if (rule_digest(e, s, digest, &files) < 0)
		return;
	set_signaled(e, s, digest);
	log_info("watching", LF_STR("rule", s->rule->name), LF_STR("sha256", (hex(digest, h), h)),
		 LF_UINT("files", files));
	if (s->rule->signal_on_start)
		start_delivery(e, s, digest, 0);
}

/* ---- the rule file ----------------------------------------------------------------------- */

static int set_watches(Engine *e)
{
	size_t n = 1;

	for (size_t i = 0; i < e->n_states; i++)
		n += e->states[i].rule->n_paths;
	_cleanup_free_ WatchPath *paths = calloc(n, sizeof(*paths));
	if (!paths)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < e->n_states; i++)
		for (size_t j = 0; j < e->states[i].rule->n_paths; j++)
			paths[n++] = (WatchPath){ .path = e->states[i].rule->paths[j],
						  .owner = (unsigned)i };
	paths[n++] = (WatchPath){ .path = e->config_path, .owner = CONFIG_OWNER };
	int r = watch_set(e->watch, paths, n);
	if (r >= 0)
		log_info("watches armed", LF_UINT("watches", (unsigned)r),
			 LF_UINT("rules", e->n_states));
	return r;
}

static void apply_settings(Engine *e)
{
	const Settings *s = &e->rules->settings;

	log_setup(e->opt.log_format_set ? e->opt.log_format : s->log_format,
		  e->opt.log_level_set ? e->opt.log_level : s->log_level);
	e->resync_due = s->resync_ms ? timer_now() + s->resync_ms * NSEC_PER_MSEC : 0;
}

static void states_free(RuleState *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		delivery_reset(&v[i].d);
	free(v);
}

/* Swaps in a new rule set. Rules whose name and paths are unchanged keep their digest (no
 * spurious signal); the others start from a fresh baseline. */
static int install_rules(Engine *e, Rules *rules)
{
	RuleState *v = calloc(rules->n, sizeof(*v));
	size_t kept = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < rules->n; i++) {
		v[i].rule = &rules->v[i];
		for (size_t j = 0; j < e->n_states; j++) {
			const RuleState *old = &e->states[j];
			if (strcmp(old->rule->name, rules->v[i].name) != 0 ||
			    !rules_same_paths(old->rule, &rules->v[i]))
				continue;
			v[i].known = old->known;
			v[i].held = old->held;
			memcpy(v[i].signaled, old->signaled, DIGEST_LEN);
			/* a reload in flight under the old rule is redone under the new one */
			if (old->burst.due || old->d.phase != PHASE_IDLE)
				v[i].burst = (Burst){ .start = old->burst.start ? old->burst.start
										: timer_now(),
						      .due = timer_now() };
			kept++;
			break;
		}
	}
	_cleanup_free_ char **names = calloc(rules->n ? rules->n : 1, sizeof(*names));
	_cleanup_free_ int *signals = calloc(rules->n ? rules->n : 1, sizeof(*signals));
	for (size_t i = 0; names && signals && i < rules->n; i++) {
		names[i] = rules->v[i].name;
		signals[i] = rules->v[i].signal;
	}
	if (!names || !signals || metrics_set_rules(e->metrics, names, signals, rules->n) < 0) {
		free(v);
		return -ENOMEM;
	}
	states_free(e->states, e->n_states);
	rules_free(e->rules);
	e->rules = rules;
	e->states = v;
	e->n_states = rules->n;
	for (size_t i = 0; i < e->n_states; i++)
		if (v[i].known)
			metrics_config_hash(e->metrics, v[i].rule->name, v[i].signaled);
	apply_settings(e);
	return (int)kept;
}

static void reload_rules(Engine *e, const char *why)
{
	RulesErrors errs;
	Rules *rules;

	int r = rules_load(e->opt.config_file, &rules, &errs);
	/* What was tried is not tried again until the file changes. */
	if (r == 0)
		memcpy(e->config_digest, rules->sha256, DIGEST_LEN);
	else
		digest_file(e->opt.config_file, e->config_digest);
	for (size_t i = 0; i < errs.n; i++)
		log_error("rule file error", LF_STR("err", errs.v[i]));
	rules_errors_done(&errs);
	metrics_rules_loaded(e->metrics, r == 0);
	if (r < 0) {
		log_error("rule file not loaded", LF_STR("path", e->opt.config_file),
			  LF_STR("why", why), LF_STR("next", "keeping the previous rules"));
		return;
	}
	size_t before = e->n_states;
	int kept = install_rules(e, rules);
	if (kept < 0) {
		rules_free(rules);
		log_error("rule file not loaded", LF_ERRNO(-kept),
			  LF_STR("next", "keeping the previous rules"));
		return;
	}
	if (e->listen &&
	    strcmp(e->listen, e->opt.metrics_listen ? e->opt.metrics_listen
						    : e->rules->settings.metrics_listen) != 0)
		log_warn("metrics_listen changed",
			 LF_STR("metrics_listen", e->rules->settings.metrics_listen),
			 LF_STR("next",
				"the endpoint stays as it started: restart sigreload to apply it"));
	log_info("rules reloaded", LF_STR("path", e->opt.config_file), LF_STR("why", why),
		 LF_UINT("rules", e->n_states), LF_UINT("kept", (unsigned)kept),
		 LF_UINT("removed", before - (size_t)kept));
	if (set_watches(e) < 0)
		log_error("cannot watch",
			  LF_STR("next", "rules are evaluated on SIGHUP and resync only"));
	for (size_t i = 0; i < e->n_states; i++)
		if (!e->states[i].known && !e->states[i].burst.due)
			baseline(e, &e->states[i]);
}

static void config_changed(Engine *e)
{
	unsigned char digest[DIGEST_LEN];

	e->config_burst = (Burst){ 0 };
	int r = digest_file(e->opt.config_file, digest);
	if (r < 0) {
		log_warn("rule file unreadable", LF_STR("path", e->opt.config_file), LF_ERRNO(-r),
			 LF_STR("next", "keeping the previous rules"));
		return;
	}
	if (memcmp(digest, e->config_digest, DIGEST_LEN) == 0)
		return;
	reload_rules(e, "the rule file changed");
}

/* ---- events ------------------------------------------------------------------------------ */

static const char *mask_name(uint32_t mask)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = { { IN_Q_OVERFLOW, "Q_OVERFLOW" },	 { IN_CLOSE_WRITE, "CLOSE_WRITE" },
		      { IN_MOVED_TO, "MOVED_TO" },	 { IN_MOVED_FROM, "MOVED_FROM" },
		      { IN_CREATE, "CREATE" },		 { IN_DELETE, "DELETE" },
		      { IN_DELETE_SELF, "DELETE_SELF" }, { IN_MOVE_SELF, "MOVE_SELF" },
		      { IN_MODIFY, "MODIFY" },		 { IN_ATTRIB, "ATTRIB" },
		      { IN_IGNORED, "IGNORED" },	 { IN_UNMOUNT, "UNMOUNT" } };
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (mask & names[i].bit)
			return names[i].name;
	return "MOUNTS";
}

static void on_changed(unsigned owner, const char *path, const char *dir, const char *name,
		       uint32_t mask, void *userdata)
{
	Engine *e = userdata;
	uint64_t now = timer_now();
	const Settings *st = &e->rules->settings;

	if (owner == CONFIG_OWNER) {
		burst_event(&e->config_burst, now, st->debounce_ms, st->max_wait_ms);
		return;
	}
	if (owner >= e->n_states)
		return;
	RuleState *s = &e->states[owner];
	if (log_enabled(LEVEL_DEBUG))
		log_debug("event", LF_STR("rule", s->rule->name), LF_STR("path", path),
			  LF_STR("dir", dir), LF_STR("name", name),
			  LF_STR("event", mask_name(mask)));
	burst_event(&s->burst, now, s->rule->debounce_ms, s->rule->max_wait_ms);
}

static void on_watch_error(unsigned owner, const char *path, const char *dir, int err,
			   void *userdata)
{
	Engine *e = userdata;
	char limit[64] = "";
	const char *rule = owner == CONFIG_OWNER ? "(rule file)"
			   : owner < e->n_states ? e->states[owner].rule->name
						 : "?";

	metrics_watch_error(e->metrics, err == -ENOSPC	 ? WATCH_ERR_LIMIT
					: err == -EACCES ? WATCH_ERR_ACCESS
							 : WATCH_ERR_OTHER);
	if (err == -ENOSPC) {
		FILE *f = fopen("/proc/sys/fs/inotify/max_user_watches", "re");
		if (!f || !fgets(limit, sizeof(limit), f))
			strcpy(limit, "?");
		limit[strcspn(limit, "\n")] = '\0';
		if (f)
			fclose(f);
		log_error("inotify watch limit reached", LF_STR("rule", rule), LF_STR("path", path),
			  LF_STR("dir", dir), LF_STR("max_user_watches", limit),
			  LF_STR("next",
				 "raise fs.inotify.max_user_watches on the node, or watch fewer "
				 "directories; changes here are seen on resync only"));
	} else {
		log_error(
		    "cannot watch", LF_STR("rule", rule), LF_STR("path", path), LF_STR("dir", dir),
		    LF_STR("err", err == -E2BIG ? "more than 4096 directories" : strerror(-err)));
	}
}

static void on_overflow(void *userdata)
{
	Engine *e = userdata;

	metrics_watch_error(e->metrics, WATCH_ERR_OVERFLOW);
	log_warn("inotify queue overflow",
		 LF_STR("next", "re-arming every watch, re-evaluating every rule"));
}

static uint64_t min_due(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* Arms the timer for the earliest deadline. With nothing due but a resync or an HTTP client's
 * timeout, the loop is idle: said at debug level, so that a test can wait for the fact that
 * everything it caused has been acted on, rather than sleep. */
static int arm_timer(Engine *e)
{
	uint64_t due = e->config_burst.due;

	for (size_t i = 0; i < e->n_states; i++) {
		due = min_due(due, e->states[i].burst.due);
		if (e->states[i].d.phase != PHASE_IDLE)
			due = min_due(due, e->states[i].d.due);
	}
	if (!due)
		log_debug("idle");
	due = min_due(due, e->resync_due);
	if (e->http)
		due = min_due(due, http_deadline(e->http));
	return timer_arm(e->timer, due ? due : TIMER_NEVER);
}

/* Everything due by now: resync, the rule file, deliveries, evaluations. Runs after every
 * source, so that with debounce 0 an event is acted on in the same turn of the loop. */
static void run_due(Engine *e)
{
	uint64_t now = timer_now();

	if (e->resync_due && e->resync_due <= now) {
		e->resync_due = now + e->rules->settings.resync_ms * NSEC_PER_MSEC;
		log_debug("resync");
		watch_arm(e->watch);
		for (size_t i = 0; i < e->n_states; i++)
			if (!e->states[i].burst.due)
				e->states[i].burst = (Burst){ .start = now, .due = now };
		e->config_burst = (Burst){ .start = now, .due = now };
	}
	if (e->config_burst.due && e->config_burst.due <= now)
		config_changed(e); /* may replace e->states: done before they are walked */
	for (size_t i = 0; i < e->n_states; i++) {
		RuleState *s = &e->states[i];
		if (s->d.phase == PHASE_HANDLER_WAIT && s->d.due <= now)
			deliver(e, s);
		else if (s->d.phase == PHASE_VERIFY && s->d.due <= now)
			verify(e, s);
		if (s->burst.due && s->burst.due <= now)
			evaluate(e, s);
	}
}

static void on_timer(Engine *e)
{
	timer_ack(e->timer);
	if (e->http)
		http_dispatch(e->http); /* its connections' timeouts */
}

/* TERM and INT ask to stop, HUP to reload the rule file: noted here, acted on by the dispatcher
 * (this also runs from the middle of a digest). */
static void take_signals(Engine *e)
{
	struct signalfd_siginfo si;
	char sig[SIGNAME_MAX];

	while (read(e->signals->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP received: reloading the rule file",
				 LF_INT("from_pid", si.ssi_pid));
			e->reload_pending = true;
		} else if (!e->stopping) {
			log_info("stopping",
				 LF_STR("signal", signame_format((int)si.ssi_signo, sig)));
			e->stopping = true;
		}
	}
}

int engine_dispatch(Source *src, uint32_t events, void *userdata)
{
	Engine *e = userdata;
	bool rearm = false;
	int r;

	(void)events;
	switch (src->type) {
	case SOURCE_SIGNAL:
		take_signals(e);
		break;
	case SOURCE_INOTIFY:
		if ((r = watch_read(e->watch, &rearm)) < 0)
			log_error("inotify read failed", LF_ERRNO(-r));
		break;
	case SOURCE_MOUNTS:
		log_info("mount table changed: re-arming watches");
		watch_mounts_changed(e->watch);
		break;
	case SOURCE_TIMER:
		on_timer(e);
		break;
	case SOURCE_HTTP:
		http_dispatch(e->http);
		break;
	}
	if (e->reload_pending && !e->stopping) {
		e->reload_pending = false;
		reload_rules(e, "SIGHUP");
	}
	/* Re-armed before anything is hashed: a change made after the digest, in a directory
	 * that just appeared, then comes as an event rather than going unseen. */
	if (rearm && !e->stopping && (r = watch_arm(e->watch)) < 0)
		log_error("cannot re-arm the watches", LF_ERRNO(-r));
	if (!e->stopping)
		run_due(e);
	if (e->stopping)
		return 1;
	return arm_timer(e);
}

/* ---- life cycle -------------------------------------------------------------------------- */

static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)) || asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

int engine_new(const EngineOptions *opt, Rules *rules, Loop *loop, Source *signals, Engine **out)
{
	Engine *e = calloc(1, sizeof(*e));
	WatchOps ops = { .changed = on_changed,
			 .error = on_watch_error,
			 .overflow = on_overflow,
			 .userdata = e };
	int r;

	if (!e) {
		rules_free(rules);
		return -ENOMEM;
	}
	e->opt = *opt;
	e->loop = loop;
	e->signals = signals;
	if (metrics_new(&e->metrics) < 0 || !(e->config_path = absolute(opt->config_file)) ||
	    install_rules(e, rules) < 0) {
		rules_free(rules);
		metrics_free(e->metrics);
		free(e->config_path);
		free(e);
		return -ENOMEM;
	}
	if ((r = watch_new(&ops, &e->watch)) < 0 || (r = timer_new(&e->timer)) < 0 ||
	    (r = loop_add(loop, watch_inotify_source(e->watch), EPOLLIN)) < 0 ||
	    (r = loop_add(loop, timer_source(e->timer), EPOLLIN)) < 0 ||
	    (r = loop_add(loop, signals, EPOLLIN)) < 0 ||
	    (watch_mounts_source(e->watch) &&
	     (r = loop_add(loop, watch_mounts_source(e->watch), EPOLLPRI)) < 0)) {
		engine_free(e);
		return r;
	}
	*out = e;
	return 0;
}

void engine_free(Engine *e)
{
	if (!e)
		return;
	states_free(e->states, e->n_states);
	rules_free(e->rules);
	http_free(e->http);
	free(e->listen);
	metrics_free(e->metrics);
	watch_free(e->watch);
	timer_free(e->timer);
	free(e->config_path);
	free(e);
}

/* sigreload_targets is counted when scraped: an idle sidecar nobody scrapes scans nothing. */
static char *render_metrics(void *userdata, size_t *len)
{
	Engine *e = userdata;
	size_t n = e->n_states;
	_cleanup_free_ const Matcher **m = calloc(n ? n : 1, sizeof(*m));
	_cleanup_free_ bool *leaders = calloc(n ? n : 1, sizeof(*leaders));
	_cleanup_free_ TargetList *lists = calloc(n ? n : 1, sizeof(*lists));
	_cleanup_free_ size_t *counts = calloc(n ? n : 1, sizeof(*counts));
	MetricsLive live = { .watches = watch_count(e->watch),
			     .watch_events = watch_events(e->watch) };

	if (!m || !leaders || !lists || !counts)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		m[i] = e->states[i].rule->match;
		leaders[i] = e->states[i].rule->leaders_only;
	}
	if (match_find_many(m, leaders, n, false, lists) == 0) {
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < lists[i].n; j++)
				counts[i] += lists[i].v[j].leader;
		live.targets = counts;
	}
	for (size_t i = 0; i < n; i++)
		target_list_done(&lists[i]);
	return metrics_render(e->metrics, &live, len);
}

/* Ready once the rules are loaded and every path's watch is armed (a missing path counts: its
 * nearest existing ancestor is watched, waiting for it). */
static bool is_ready(void *userdata, const char **why)
{
	Engine *e = userdata;
	size_t n = 1;

	if (!e->started) {
		*why = "starting";
		return false;
	}
	for (size_t i = 0; i < e->n_states; i++)
		n += e->states[i].rule->n_paths;
	for (size_t i = 0; i < n; i++)
		if (!watch_path_armed(e->watch, i)) {
			*why = "a directory could not be watched (see the log)";
			return false;
		}
	return true;
}

static int start_http(Engine *e)
{
	const char *addr =
	    e->opt.metrics_listen ? e->opt.metrics_listen : e->rules->settings.metrics_listen;
	HttpHandlers h = { .metrics = render_metrics, .ready = is_ready, .userdata = e };
	char err[256];
	int r;

	if (!(e->listen = strdup(addr)))
		return -ENOMEM;
	if (!*addr) {
		log_info("metrics endpoint disabled", LF_STR("metrics_listen", ""));
		return 0;
	}
	if ((r = http_new(addr, &h, &e->http, err, sizeof(err))) < 0) {
		log_error("cannot serve metrics", LF_STR("err", err),
			  LF_STR("hint", "choose another metrics_listen, or \"\" to disable it"));
		return r;
	}
	if ((r = loop_add(e->loop, http_source(e->http), EPOLLIN)) < 0)
		return r;
	log_info("serving /metrics, /healthz, /readyz", LF_STR("address", http_address(e->http)));
	return 0;
}

static void startup_diagnostics(Engine *e)
{
	ProcScanInfo info = { 0 };
	char uid[32];

	snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid());
	if (e->opt.can_kill_any)
		log_info("CAP_KILL: can signal processes of any uid", LF_STR("uid", uid));
	else
		log_info("no CAP_KILL: can signal only processes of our own uid",
			 LF_STR("uid", uid),
			 LF_STR("hint",
				"run as the target's uid, or add capability KILL for other uids"));

	if (getpid() == 1 || (proc_scan(NULL, NULL, &info) == 0 && info.seen <= 1))
		log_warn(
		    "no other process is visible",
		    LF_STR(
			"hint",
			"set shareProcessNamespace: true on the pod, or targets cannot be found"));
	for (size_t i = 0; i < e->n_states; i++)
		for (size_t j = 0; j < e->states[i].rule->n_paths; j++)
			if (watch_subpath_mount(e->states[i].rule->paths[j]))
				log_warn(
				    "path is a subPath mount",
				    LF_STR("rule", e->states[i].rule->name),
				    LF_STR("path", e->states[i].rule->paths[j]),
				    LF_STR("hint",
					   "Kubernetes never updates subPath mounts: mount the "
					   "whole volume and point paths at the directory"));
}

int engine_start(Engine *e)
{
	log_info("starting", LF_STR("version", SIGRELOAD_VERSION),
		 LF_STR("config", e->opt.config_file), LF_UINT("rules", e->n_states),
		 LF_BOOL("dry_run", e->opt.dry_run), LF_INT("pid", getpid()));
	startup_diagnostics(e);
	int r = start_http(e);
	if (r < 0)
		return r;
	/* Watches first, digests second: a change in between is an event, not a loss. */
	r = set_watches(e);
	if (r < 0) {
		log_error("cannot set up inotify", LF_ERRNO(-r));
		return r;
	}
	/* The rule file may have changed between its loading and its watch. */
	memcpy(e->config_digest, e->rules->sha256, DIGEST_LEN);
	unsigned char now[DIGEST_LEN];
	if (digest_file(e->opt.config_file, now) == 0 && memcmp(now, e->config_digest, DIGEST_LEN))
		e->config_burst = (Burst){ .start = timer_now(), .due = timer_now() };
	for (size_t i = 0; i < e->n_states && !e->stopping; i++)
		baseline(e, &e->states[i]);
	e->started = true;
	return e->stopping ? 1 : arm_timer(e);
}
