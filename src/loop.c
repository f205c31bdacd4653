/* loop.c: the epoll loop. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cleanup.h"

#define MAX_EVENTS 16

struct Loop {
	int epfd;
	/* The batch being dispatched: a source removed meanwhile loses its later events here. */
	struct epoll_event ev[MAX_EVENTS];
	int n, next;
};

DEFINE_CLEANUP_FUNC(Loop, loop_free)

int loop_new(Loop **out)
{
	_cleanup_(loop_freep) Loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return -errno;
	*out = TAKE_PTR(loop);
	return 0;
}

void loop_free(Loop *loop)
{
	if (!loop)
		return;
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop);
}

static int ctl(Loop *loop, int op, Source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(loop->epfd, op, src->fd, &ev) < 0 ? -errno : 0;
}

int loop_add(Loop *loop, Source *src, uint32_t events)
{
	return ctl(loop, EPOLL_CTL_ADD, src, events);
}

int loop_modify(Loop *loop, Source *src, uint32_t events)
{
	return ctl(loop, EPOLL_CTL_MOD, src, events);
}

int loop_remove(Loop *loop, Source *src)
{
	/* Its events still queued in this batch would reach memory the caller frees next. */
	for (int i = loop->next; i < loop->n; i++)
		if (loop->ev[i].data.ptr == src)
			loop->ev[i].data.ptr = NULL;
	return ctl(loop, EPOLL_CTL_DEL, src, 0);
}

int loop_run(Loop *loop, LoopDispatchFn fn, void *userdata)
{
	for (;;) {
		int n = epoll_wait(loop->epfd, loop->ev, MAX_EVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		loop->n = n;
		for (loop->next = 0; loop->next < loop->n;) {
			struct epoll_event *ev = &loop->ev[loop->next++];
			int r = ev->data.ptr ? fn(ev->data.ptr, ev->events, userdata) : 0;
			if (r != 0) {
				loop->n = 0;
				return r;
			}
		}
		loop->n = 0;
	}
}
