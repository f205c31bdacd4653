/* targets.c: the pinned leaders of one rule, their exits and their arrivals. */
#include "targets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "array.h"
#include "log.h"
#include "notify.h"
#include "proc.h"
#include "timer.h"

typedef struct Pin {
	Source src; /* first: the loop hands it back; fd is the pidfd, -1 without one */
	TargetSet *set;
	Pinned p;
	bool seen; /* by the scan being applied */
} Pin;

struct TargetSet {
	Loop *loop;
	Metrics *metrics;
	const char *rule;
	Pin **v; /* pointers: each Pin's address is in the epoll set */
	size_t n, cap;
	bool scanned, partial;
	TargetFigures figures;
	bool figures_stale; /* a leader pinned or unpinned since they were read */
};

int targetset_new(Loop *loop, Metrics *m, const char *rule, TargetSet **out)
{
	TargetSet *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	*t = (TargetSet){ .loop = loop, .metrics = m, .rule = rule };
	*out = t;
	return 0;
}

static void unpin(TargetSet *t, size_t i)
{
	Pin *pin = t->v[i];

	if (pin->src.fd >= 0)
		loop_remove(t->loop, &pin->src);
	notify_unpin(&pin->p);
	free(pin);
	t->v[i] = t->v[--t->n];
	t->figures_stale = true;
}

void targetset_free(TargetSet *t)
{
	if (!t)
		return;
	while (t->n > 0)
		unpin(t, t->n - 1);
	free(t->v);
	free(t);
}

void targetset_rename(TargetSet *t, const char *rule)
{
	t->rule = rule;
}

static void say_exited(TargetSet *t, const Pin *pin)
{
	char ran[32];

	snprintf(ran, sizeof(ran), "%.3f", (double)proc_age_ns(pin->p.starttime) / 1e9);
	log_warn("target exited", LF_STR("rule", t->rule), LF_INT("pid", pin->p.pid),
		 LF_STR("ran_s", ran));
	metrics_target_exit(t->metrics, t->rule);
}

void targetset_dispatch(Source *src)
{
	Pin *pin = (Pin *)src;
	TargetSet *t = pin->set;

	say_exited(t, pin);
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i] == pin) {
			unpin(t, i);
			break;
		}
}

static Pin *find(TargetSet *t, pid_t pid, unsigned long long starttime)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i]->p.pid == pid && t->v[i]->p.starttime == starttime)
			return t->v[i];
	return NULL;
}

/* Pins one new leader: 0, -ESRCH when it is gone already, another -errno (no fd, no memory). */
static int pin_new(TargetSet *t, const Target *target)
{
	Pinned p;
	Pin *pin;

	if (ARRAY_RESERVE(t->v, t->cap, t->n) < 0)
		return -ENOMEM;
	int r = notify_pin(target->pid, target->starttime, &p);
	if (r < 0)
		return r;
	if (!(pin = malloc(sizeof(*pin)))) {
		notify_unpin(&p);
		return -ENOMEM;
	}
	*pin =
	    (Pin){ .src = { .type = SOURCE_PIDFD, .fd = p.pidfd }, .set = t, .p = p, .seen = true };
	if (pin->src.fd >= 0 && loop_add(t->loop, &pin->src, EPOLLIN) < 0)
		pin->src.fd = -1; /* pinned still, but its exit is seen by the next scan */
	t->v[t->n++] = pin;
	t->figures_stale = true;
	if (t->scanned)
		log_info("target started", LF_STR("rule", t->rule), LF_INT("pid", target->pid),
			 LF_STR("comm", target->comm));
	return 0;
}

void targetset_update(TargetSet *t, const TargetList *l)
{
	for (size_t i = 0; i < t->n; i++)
		t->v[i]->seen = false;
	t->partial = false;
	for (size_t i = 0; i < l->n; i++) {
		const Target *target = &l->v[i];
		Pin *pin;
		if (!target->leader)
			continue;
		if ((pin = find(t, target->pid, target->starttime))) {
			pin->seen = true;
			continue;
		}
		/* a leader left out (past the cap, no fd, no memory): deliveries scan first */
		int r = t->n < TARGETS_MAX_PINNED ? pin_new(t, target) : -E2BIG;
		if (r < 0 && r != -ESRCH)
			t->partial = true;
	}
	for (size_t i = t->n; i-- > 0;) {
		if (t->v[i]->seen)
			continue;
		/* its exit event not read yet, or it no longer matches (another program now) */
		if (!notify_alive(&t->v[i]->p))
			say_exited(t, t->v[i]);
		unpin(t, i);
	}
	t->scanned = true;
}

bool targetset_complete(const TargetSet *t)
{
	return t->scanned && !t->partial;
}

size_t targetset_count(const TargetSet *t)
{
	return t->n;
}

void targetset_each(TargetSet *t, const Matcher *m,
		    void (*fn)(pid_t pid, unsigned long long starttime, void *userdata),
		    void *userdata)
{
	for (size_t i = 0; i < t->n; i++) {
		const Pinned *p = &t->v[i]->p;
		if (notify_alive(p) && match_pid(m, p->pid, p->starttime))
			fn(p->pid, p->starttime, userdata);
	}
}

void targetset_read_figures(TargetSet *t)
{
	static long tick, page;
	TargetFigures f = { 0 };
	ProcStat st;

	if (!tick) {
		tick = sysconf(_SC_CLK_TCK);
		page = sysconf(_SC_PAGESIZE);
	}
	for (size_t i = 0; i < t->n; i++) {
		const Pinned *p = &t->v[i]->p;
		if (proc_read_stat(p->pid, &st) < 0 || st.starttime != p->starttime)
			continue; /* gone since the scan */
		f.targets++;
		f.resident_bytes += st.rss * (uint64_t)page;
		f.cpu_seconds += (double)(st.utime + st.stime) / (double)tick;
		f.threads += st.threads;
		double start = proc_boot_time() + (double)st.starttime / (double)tick;
		if (!f.oldest_start || start < f.oldest_start)
			f.oldest_start = start;
		int fds = proc_count_fds(p->pid);
		if (fds >= 0) {
			f.open_fds += (uint64_t)fds;
			f.fds_read++;
		}
	}
	t->figures = f;
	t->figures_stale = false;
}

bool targetset_figures_stale(const TargetSet *t)
{
	return t->figures_stale;
}

const TargetFigures *targetset_figures(const TargetSet *t)
{
	return &t->figures;
}
