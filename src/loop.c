/* loop.c: the epoll loop. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 16

struct Loop {
	int epfd;
};

int loop_new(Loop **out)
{
	Loop *loop = malloc(sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int r = -errno;
		free(loop);
		return r;
	}
	*out = loop;
	return 0;
}

void loop_free(Loop *loop)
{
	if (!loop)
		return;
	close(loop->epfd);
	free(loop);
}

int loop_add(Loop *loop, Source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0 ? -errno : 0;
}

int loop_run(Loop *loop, LoopDispatchFn fn, void *userdata)
{
	struct epoll_event ev[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(loop->epfd, ev, MAX_EVENTS, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (int i = 0; i < n; i++) {
			int r = fn(ev[i].data.ptr, ev[i].events, userdata);
			if (r != 0)
				return r;
		}
	}
}
