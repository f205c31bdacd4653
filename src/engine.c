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
#include "fetch.h"
#include "http.h"
#include "log.h"
#include "match.h"
#include "metrics.h"
#include "proc.h"
#include "rulestate.h"
#include "satoken.h"
#include "signame.h"
#include "timer.h"
#include "watch.h"

#define CONFIG_OWNER UINT_MAX
/* After a target exits, when /proc is scanned for its successor. */
#define RESCAN_AFTER_EXIT_NS (1000 * NSEC_PER_MSEC)
/* /metrics rescans /proc at most this often, however many scrapers: sigreload_targets is at
 * most this stale. */
#define SCRAPE_SCAN_NS (1000 * NSEC_PER_MSEC)

/* The rule file's own debounce. */
typedef struct ConfigBurst {
	uint64_t start, due; /* due 0: none */
} ConfigBurst;

struct Engine {
	EngineOptions opt;
	Rules *rules;
	RuleState **states; /* one per rule, in the order of rules->v */
	size_t n_states;
	RuleEnv env;
	Loop *loop;
	Source signals; /* TERM, INT and HUP, blocked, read from a signalfd */
	Watch *watch;
	Timer *timer;
	char *config_path; /* absolute, to watch; NULL: the rules came from the command line */
	unsigned char config_digest[DIGEST_LEN]; /* of the bytes last loaded or tried */
	ConfigBurst config_burst;
	uint64_t resync_due;
	uint64_t last_scan, rescan_due; /* of /proc, for every rule's targets */
	bool figures_read; /* since the last rule-file reload */
	Metrics *metrics;
	Http *http;
	Fetcher *fetcher; /* the requests of http actions and verify */
	char *listen; /* the metrics_listen served, as configured at start-up */
	bool started;
	bool stopping, reload_pending; /* signals taken, acted on between steps */
};

static void take_signals(Engine *e);

/* A long hash (a big file) looks up every few MiB: a signal is taken at once (SIGTERM ends the
 * hash, SIGHUP is acted on when it is done) and a probe is answered, so neither waits for the
 * last byte. Nothing else runs here: the rule state is mid-evaluation. */
static int digest_tick(void *userdata)
{
	Engine *e = userdata;
	struct pollfd p[2] = { { .fd = e->signals.fd, .events = POLLIN },
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

/* /proc scanned once for every rule's targets: the leaders pinned, new ones and exits logged. */
static void scan_all(Engine *e)
{
	size_t n = e->n_states, k = 0;
	_cleanup_free_ const Matcher **m = calloc(n ? n : 1, sizeof(*m));
	_cleanup_free_ bool *leaders = calloc(n ? n : 1, sizeof(*leaders));
	_cleanup_free_ TargetSet **sets = calloc(n ? n : 1, sizeof(*sets));
	_cleanup_free_ TargetList *lists = calloc(n ? n : 1, sizeof(*lists));

	e->last_scan = timer_now();
	e->rescan_due = 0;
	if (!m || !leaders || !sets || !lists)
		return;
	for (size_t i = 0; i < n; i++) {
		const Rule *r = rulestate_rule(e->states[i]);
		if (!(sets[k] = rulestate_targets(e->states[i])))
			continue; /* it signals nobody */
		m[k] = r->match;
		leaders[k++] = r->leaders_only;
	}
	int r = match_find_many(m, leaders, k, false, lists);
	for (size_t i = 0; i < k; i++) {
		if (r == 0)
			targetset_update(sets[i], &lists[i]);
		target_list_done(&lists[i]);
	}
	if (r < 0)
		log_warn("cannot scan /proc", LF_ERRNO(-r),
			 LF_STR("next", "tried at the next need"));
}

/* ---- the rule file ----------------------------------------------------------------------- */

static size_t n_watch_paths(const Engine *e)
{
	size_t n = e->config_path != NULL; /* the rule file */

	for (size_t i = 0; i < e->n_states; i++)
		n += rulestate_rule(e->states[i])->n_paths;
	return n;
}

static int set_watches(Engine *e)
{
	_cleanup_free_ WatchPath *paths = calloc(n_watch_paths(e), sizeof(*paths));
	size_t n = 0;

	if (!paths)
		return -ENOMEM;
	for (size_t i = 0; i < e->n_states; i++) {
		const Rule *r = rulestate_rule(e->states[i]);
		for (size_t j = 0; j < r->n_paths; j++)
			paths[n++] = (WatchPath){ .path = r->paths[j], .owner = (unsigned)i };
	}
	if (e->config_path)
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

static void states_free(RuleState **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		rulestate_free(v[i]);
	free(v);
}

/* Whether the new rule r continues old, by the test of the given pass: 0, the same name; then,
 * for an old rule gone from the new rules, 1, the same paths (renamed); 2, the same processes
 * told the same way (renamed and given other paths in one edit). */
static bool continues(const Rules *next, const Rule *old, const Rule *r, int pass)
{
	if (pass == 0)
		return strcmp(old->name, r->name) == 0;
	if (rules_find(next, old->name))
		return false;
	return pass == 1 ? rules_same_path_set(old, r) : rules_same_action(old, r);
}

/* Pairs each new rule with the old rule whose state it takes over (olds[i], or NULL), pass by
 * pass, so that a rule kept by name or by paths is never claimed by a weaker test first. */
static int predecessors(Engine *e, const Rules *next, RuleState **olds)
{
	_cleanup_free_ bool *claimed = calloc(e->n_states ? e->n_states : 1, sizeof(*claimed));

	if (!claimed)
		return -ENOMEM;
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < next->n; i++)
			for (size_t j = 0; !olds[i] && j < e->n_states; j++)
				if (!claimed[j] && continues(next, rulestate_rule(e->states[j]),
							     &next->v[i], pass)) {
					claimed[j] = true;
					olds[i] = e->states[j];
				}
	return 0;
}

/* Swaps in a new rule set (taking ownership of it on success). Each rule's state moves to its
 * new version (see predecessors); what that means for its targets is
 * rulestate_take_over's. Returns how many rules were kept, or -ENOMEM with nothing changed. */
static int install_rules(Engine *e, Rules *rules)
{
	size_t n = rules->n, kept = 0;
	_cleanup_free_ RuleState **olds = calloc(n ? n : 1, sizeof(*olds));
	_cleanup_free_ char **names = calloc(n ? n : 1, sizeof(*names));
	_cleanup_free_ int *signals = calloc(n ? n : 1, sizeof(*signals));
	RuleState **v = calloc(n ? n : 1, sizeof(*v));
	int r = olds && names && signals && v ? predecessors(e, rules, olds) : -ENOMEM;

	for (size_t i = 0; r == 0 && i < n; i++) {
		r = rulestate_new(&rules->v[i], &e->env, &v[i]);
		names[i] = rules->v[i].name;
		/* an http rule sends no signal, and has the HTTP series instead */
		signals[i] = rules->v[i].http ? 0 : rules->v[i].signal;
	}
	/* the metrics first: a delivery superseded in the hand-over counts under the new rules */
	if (r < 0 || (r = metrics_set_rules(e->metrics, names, signals, n)) < 0) {
		states_free(v, n);
		return r;
	}
	uint64_t now = timer_now();
	for (size_t i = 0; i < n; i++)
		if (olds[i]) {
			rulestate_take_over(v[i], olds[i], now);
			kept++;
		}
	states_free(e->states, e->n_states);
	rules_free(e->rules);
	e->rules = rules;
	e->states = v;
	e->n_states = n;
	e->figures_read = false;
	apply_settings(e);
	return (int)kept;
}

static void reload_rules(Engine *e, const char *why)
{
	RulesErrors errs;
	Rules *rules;

	if (!e->opt.config_file) {
		log_info("no rule file to reload", LF_STR("why", why),
			 LF_STR("next", "keeping the rules of the command line"));
		return;
	}
	int r = rules_load(e->opt.config_file, &rules, &errs);
	/* What was tried is not tried again until the file changes: the bytes parsed, never the
	 * file as it is by now (a fixed version written meanwhile must still be loaded). */
	if (errs.read)
		memcpy(e->config_digest, errs.sha256, DIGEST_LEN);
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
	for (size_t i = 0; i < e->n_states && !e->stopping; i++)
		if (rulestate_wants_baseline(e->states[i]))
			rulestate_baseline(e->states[i], false);
	scan_all(e); /* the new rules' targets */
}

static void config_changed(Engine *e)
{
	unsigned char digest[DIGEST_LEN];

	e->config_burst = (ConfigBurst){ 0 };
	if (!e->opt.config_file)
		return;
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
		ConfigBurst *b = &e->config_burst;
		if (!b->due)
			b->start = now;
		uint64_t quiet = now + st->debounce_ms * NSEC_PER_MSEC,
			 cap = b->start + st->max_wait_ms * NSEC_PER_MSEC;
		b->due = quiet < cap ? quiet : cap;
		return;
	}
	if (owner >= e->n_states)
		return;
	RuleState *s = e->states[owner];
	if (log_enabled(LEVEL_DEBUG))
		log_debug("event", LF_STR("rule", rulestate_rule(s)->name), LF_STR("path", path),
			  LF_STR("dir", dir), LF_STR("name", name),
			  LF_STR("event", mask_name(mask)));
	rulestate_event(s, now);
}

static void on_watch_error(unsigned owner, const char *path, const char *dir, int err,
			   void *userdata)
{
	Engine *e = userdata;
	char limit[64] = "";
	const char *rule = owner == CONFIG_OWNER ? "(rule file)"
			   : owner < e->n_states ? rulestate_rule(e->states[owner])->name
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
	uint64_t due = min_due(e->config_burst.due, e->rescan_due);

	for (size_t i = 0; i < e->n_states; i++)
		due = min_due(due, rulestate_due(e->states[i]));
	if (!due)
		log_debug("idle");
	due = min_due(due, e->resync_due);
	due = min_due(due, fetcher_deadline(e->fetcher));
	if (e->http)
		due = min_due(due, http_deadline(e->http));
	return timer_arm(e->timer, due ? due : TIMER_NEVER);
}

/* Everything due by now: resync, the rule file, then each rule's delivery and evaluation. */
static void run_due(Engine *e)
{
	uint64_t now = timer_now();

	if (e->resync_due && e->resync_due <= now) {
		e->resync_due = now + e->rules->settings.resync_ms * NSEC_PER_MSEC;
		log_debug("resync");
		watch_arm(e->watch);
		for (size_t i = 0; i < e->n_states; i++)
			rulestate_resync(e->states[i], now);
		e->config_burst = (ConfigBurst){ .start = now, .due = now };
	}
	if (e->config_burst.due && e->config_burst.due <= now)
		config_changed(e); /* may replace e->states: done before they are walked */
	if (e->rescan_due && e->rescan_due <= now)
		scan_all(e); /* a target exited a while ago: has it come back? */
	/* each at its own time: a long hash before it must not make a rule's debounce look over */
	for (size_t i = 0; i < e->n_states && !e->stopping; i++)
		rulestate_run(e->states[i], timer_now());
}

static void on_timer(Engine *e)
{
	timer_ack(e->timer);
	if (e->http)
		http_dispatch(e->http); /* its connections' timeouts */
	uint64_t due = fetcher_deadline(e->fetcher);
	if (due && due <= timer_now())
		fetcher_run_due(e->fetcher); /* libcurl's timeouts; answers come from here too */
}

/* TERM and INT ask to stop, HUP to reload the rule file: noted here, acted on by the dispatcher
 * (this also runs from the middle of a digest). */
static void take_signals(Engine *e)
{
	struct signalfd_siginfo si;
	char sig[SIGNAME_MAX];

	while (read(e->signals.fd, &si, sizeof(si)) == sizeof(si)) {
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

/* After a source: a SIGHUP taken, the watches re-armed, everything due done; again while a
 * SIGHUP arrived meanwhile (during a long hash, say), so none waits for an unrelated event. */
static int settle(Engine *e, bool rearm)
{
	int r;

	while (!e->stopping) {
		if (e->reload_pending) {
			e->reload_pending = false;
			reload_rules(e, "SIGHUP");
		}
		/* Re-armed before anything is hashed: a change made after the digest, in a
		 * directory that just appeared, then comes as an event rather than going unseen. */
		if (rearm && (r = watch_update(e->watch)) < 0)
			log_error("cannot re-arm the watches", LF_ERRNO(-r));
		rearm = false;
		run_due(e);
		if (!e->reload_pending)
			break;
	}
	return e->stopping ? 1 : arm_timer(e);
}

int engine_dispatch(Source *src, uint32_t events, void *userdata)
{
	Engine *e = userdata;
	bool rearm = false;
	int r;

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
	case SOURCE_FETCH:
		fetcher_dispatch(e->fetcher, src, events);
		break;
	case SOURCE_PIDFD:
		targetset_dispatch(src);
		/* a supervisor restarts it within a second or so: one scan then tells */
		if (!e->rescan_due)
			e->rescan_due = timer_now() + RESCAN_AFTER_EXIT_NS;
		break;
	}
	return settle(e, rearm);
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

/* TERM, INT and HUP arrive on the engine's signalfd, never in an asynchronous handler. */
static int take_over_signals(Engine *e)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	e->signals =
	    (Source){ .type = SOURCE_SIGNAL, .fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC) };
	return e->signals.fd < 0 ? -errno : loop_add(e->loop, &e->signals, EPOLLIN);
}

DEFINE_CLEANUP_FUNC(Engine, engine_free)

int engine_new(const EngineOptions *opt, Rules *rules, Loop *loop, Engine **out)
{
	_cleanup_(rules_freep) Rules *owned = rules;
	_cleanup_(engine_freep) Engine *e = calloc(1, sizeof(*e));
	WatchOps ops = { .changed = on_changed, .error = on_watch_error, .overflow = on_overflow };
	int r;

	if (!e)
		return -ENOMEM;
	e->opt = *opt;
	e->loop = loop;
	e->signals = (Source){ .fd = -1 };
	ops.userdata = e;
	if ((r = metrics_new(&e->metrics)) < 0 || (r = fetcher_new(loop, &e->fetcher)) < 0)
		return r;
	e->env = (RuleEnv){ .loop = loop,
			    .fetcher = e->fetcher,
			    .metrics = e->metrics,
			    .dry_run = opt->dry_run,
			    .tick = digest_tick,
			    .userdata = e };
	if (opt->config_file && !(e->config_path = absolute(opt->config_file)))
		return -ENOMEM;
	if ((r = install_rules(e, owned)) < 0)
		return r;
	TAKE_PTR(owned);
	if ((r = watch_new(&ops, &e->watch)) < 0 || (r = timer_new(&e->timer)) < 0 ||
	    (r = loop_add(loop, watch_inotify_source(e->watch), EPOLLIN)) < 0 ||
	    (r = loop_add(loop, timer_source(e->timer), EPOLLIN)) < 0 ||
	    (r = take_over_signals(e)) < 0 ||
	    (watch_mounts_source(e->watch) &&
	     (r = loop_add(loop, watch_mounts_source(e->watch), EPOLLPRI)) < 0))
		return r;
	*out = TAKE_PTR(e);
	return 0;
}

void engine_free(Engine *e)
{
	if (!e)
		return;
	states_free(e->states, e->n_states); /* their requests first: the fetcher owns them */
	fetcher_free(e->fetcher);
	proc_scan_release();
	rules_free(e->rules);
	http_free(e->http);
	free(e->listen);
	metrics_free(e->metrics);
	watch_free(e->watch);
	timer_free(e->timer);
	free(e->config_path);
	if (e->signals.fd >= 0)
		close(e->signals.fd);
	free(e);
}

/* sigreload_targets and the targets' figures come from the pinned targets, which a scrape
 * refreshes with a /proc scan (and reads of their stat and fd tables) when the last is older
 * than a second: however many scrapers, one scan a second at most, and an idle sidecar nobody
 * scrapes scans nothing. A set whose leaders changed since (an exit, a delivery's scan) has its
 * figures read again, so that a scrape never shows a set that is gone. */
static char *render_metrics(void *userdata, size_t *len)
{
	Engine *e = userdata;
	size_t n = e->n_states;
	_cleanup_free_ TargetFigures *figures = calloc(n ? n : 1, sizeof(*figures));
	MetricsLive live = { .watches = watch_count(e->watch),
			     .watch_events = watch_events(e->watch) };

	if (!figures)
		return NULL;
	bool fresh = !e->last_scan || timer_now() - e->last_scan >= SCRAPE_SCAN_NS;
	if (fresh)
		scan_all(e);
	for (size_t i = 0; i < n; i++) {
		TargetSet *t = rulestate_targets(e->states[i]);
		if (!t)
			continue; /* an http rule signals nobody */
		if (fresh || !e->figures_read || targetset_figures_stale(t))
			targetset_read_figures(t);
		figures[i] = *targetset_figures(t);
	}
	e->figures_read = true;
	live.targets = figures;
	return metrics_render(e->metrics, &live, len);
}

/* Ready once the rules are loaded and every path's watch is armed (a missing path counts: its
 * nearest existing ancestor is watched, waiting for it). */
static bool is_ready(void *userdata, const char **why)
{
	Engine *e = userdata;

	if (!e->started) {
		*why = "starting";
		return false;
	}
	if (!watch_all_armed(e->watch)) {
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
	char uid[32], token[PATH_MAX];

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
	for (size_t i = 0; i < e->rules->n; i++)
		for (size_t j = 0; j < e->rules->v[i].n_paths; j++)
			if (watch_subpath_mount(e->rules->v[i].paths[j]))
				log_warn(
				    "path is a subPath mount", LF_STR("rule", e->rules->v[i].name),
				    LF_STR("path", e->rules->v[i].paths[j]),
				    LF_STR("hint",
					   "Kubernetes never updates subPath mounts: mount the "
					   "whole volume and point paths at the directory"));
	for (size_t i = 0; i < e->rules->n; i++)
		for (size_t j = 0; j < e->rules->v[i].n_paths; j++)
			if (satoken_find(e->rules->v[i].paths[j], token, sizeof(token)) == 1)
				log_warn("path holds a rotating service-account token",
					 LF_STR("rule", e->rules->v[i].name),
					 LF_STR("path", e->rules->v[i].paths[j]),
					 LF_STR("token", token), LF_STR("hint", SATOKEN_HINT));
}

int engine_start(Engine *e)
{
	log_info("starting", LF_STR("version", SIGRELOAD_VERSION),
		 LF_STR("config", e->opt.config_file ? e->opt.config_file : "(command line)"),
		 LF_UINT("rules", e->n_states), LF_BOOL("dry_run", e->opt.dry_run),
		 LF_INT("pid", getpid()));
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
	if (e->opt.config_file && digest_file(e->opt.config_file, now) == 0 &&
	    memcmp(now, e->config_digest, DIGEST_LEN))
		e->config_burst = (ConfigBurst){ .start = timer_now(), .due = timer_now() };
	for (size_t i = 0; i < e->n_states && !e->stopping; i++)
		rulestate_baseline(e->states[i], true);
	scan_all(e); /* pins the targets: their exits are events from now on */
	e->started = true;
	return e->stopping ? 1 : arm_timer(e);
}
