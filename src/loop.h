/* loop.h: one epoll set over tagged sources; it knows nothing of what the sources mean. */
#ifndef SIGRELOAD_LOOP_H
#define SIGRELOAD_LOOP_H

#include <stdint.h>

typedef enum {
	SOURCE_SIGNAL,
	SOURCE_INOTIFY,
	SOURCE_MOUNTS,
	SOURCE_TIMER,
	SOURCE_HTTP,
	SOURCE_FETCH, /* a socket of the HTTP client (fetch.c) */
	SOURCE_PIDFD, /* a pinned target's pidfd: readable once it exited (targets.c) */
} SourceType;

/* The first member of every object the loop hands back: epoll's data.ptr points at it. */
typedef struct Source {
	SourceType type;
	int fd;
} Source;

typedef struct Loop Loop;

int loop_new(Loop **out);
void loop_free(Loop *loop);

int loop_add(Loop *loop, Source *src, uint32_t events);
int loop_modify(Loop *loop, Source *src, uint32_t events);
/* Also from inside a dispatch: src gets no event afterwards, even one already fetched, so its
 * memory may be freed once this returns. */
int loop_remove(Loop *loop, Source *src);

/* Called for each ready source. Returns 0 to go on, > 0 to stop the loop with that value,
 * < 0 (an -errno) to stop with an error. */
typedef int (*LoopDispatchFn)(Source *src, uint32_t events, void *userdata);

/* Waits without a timeout: an idle loop makes no wakeups. Returns what fn stopped it with. */
int loop_run(Loop *loop, LoopDispatchFn fn, void *userdata);

#endif
