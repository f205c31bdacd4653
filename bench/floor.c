/* floor: the least any watcher can do, as a reference for latency: an inotify watch on DIR,
 * and kill(PID, SIGHUP) as soon as "..data" is renamed into it. No hashing, no /proc scan,
 * no re-arming, no logging: what is left is the kernel's and the scheduler's share.
 *
 *   floor DIR PID */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	if (argc != 3) {
		fprintf(stderr, "usage: floor DIR PID\n");
		return 2;
	}
	pid_t pid = (pid_t)atoi(argv[2]);
	int fd = inotify_init1(IN_CLOEXEC);
	if (fd < 0 || inotify_add_watch(fd, argv[1], IN_MOVED_TO | IN_ONLYDIR) < 0) {
		perror("floor");
		return 1;
	}
	fprintf(stderr, "ready\n");
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return 1;
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *ev = (const void *)(buf + off);
			if (ev->len && strcmp(ev->name, "..data") == 0)
				kill(pid, SIGHUP);
			off += (ssize_t)(sizeof(*ev) + ev->len);
		}
	}
}
