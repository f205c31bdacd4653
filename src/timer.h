/* timer.h: one timerfd on CLOCK_MONOTONIC, armed for an absolute deadline in nanoseconds. */
#ifndef SIGRELOAD_TIMER_H
#define SIGRELOAD_TIMER_H

#include <stdint.h>

#include "loop.h"

#define TIMER_NEVER   UINT64_MAX
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_SEC  1000000000ULL

typedef struct Timer Timer;

int timer_new(Timer **out);
void timer_free(Timer *t);
Source *timer_source(Timer *t);

/* Arms the timer for deadline (TIMER_NEVER disarms); a deadline already past fires at once.
 * Makes no system call when the deadline is the one already armed. */
int timer_arm(Timer *t, uint64_t deadline);

/* Consumes the expiry after the timer's fd became readable. */
void timer_ack(Timer *t);

/* Now, on the timer's clock. */
uint64_t timer_now(void);

#endif
