/* timer.c: deadlines on a timerfd, re-armed only when the earliest deadline changes. */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

struct Timer {
	Source src; /* first: the loop hands it back */
	uint64_t armed;
};

DEFINE_CLEANUP_FUNC(Timer, timer_free)

int timer_new(Timer **out)
{
	_cleanup_(timer_freep) Timer *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->src = (Source){ .type = SOURCE_TIMER,
			   .fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC) };
	if (t->src.fd < 0)
		return -errno;
	t->armed = TIMER_NEVER;
	*out = TAKE_PTR(t);
	return 0;
}

void timer_free(Timer *t)
{
	if (!t)
		return;
	if (t->src.fd >= 0)
		close(t->src.fd);
	free(t);
}

Source *timer_source(Timer *t)
{
	return &t->src;
}

uint64_t timer_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

int timer_arm(Timer *t, uint64_t deadline)
{
	struct itimerspec its = { 0 };

	if (deadline == t->armed)
		return 0;
	if (deadline != TIMER_NEVER) {
		/* an all-zero it_value would disarm: a deadline at 0 means "at once" */
		uint64_t d = deadline ? deadline : 1;
		its.it_value.tv_sec = (time_t)(d / NSEC_PER_SEC);
		its.it_value.tv_nsec = (long)(d % NSEC_PER_SEC);
	}
	if (timerfd_settime(t->src.fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	t->armed = deadline;
	return 0;
}

void timer_ack(Timer *t)
{
	uint64_t expirations;

	/* EAGAIN: re-armed since it became readable; nothing to consume */
	if (read(t->src.fd, &expirations, sizeof(expirations)) == sizeof(expirations))
		t->armed = TIMER_NEVER;
}
