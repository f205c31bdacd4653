/* mainexit: a live process whose main thread has exited (pthread_exit) while another thread
 * runs on. The kernel keeps the exited leader as the thread group's face: /proc/PID/stat shows
 * state Z, although the process is alive and handles signals.
 *
 * Installs handlers for SIGHUP, SIGUSR1 and SIGUSR2, starts a thread, and ends its main thread.
 * The thread prints "ready <pid>" once /proc/PID/stat shows Z, then reports each signal as
 * target.c does: "signal <pid> master <SIGNAME> <content>".
 *   mainexit [--comm NAME] [--config FILE] */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

static int pipefd[2];
static const char *config;

static void on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	int saved = errno;
	(void)!write(pipefd[1], &b, 1);
	errno = saved;
}

static void say(const char *line)
{
	size_t len = strlen(line);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(STDOUT_FILENO, line + off, len - off);
		if (n <= 0)
			exit(1);
		off += (size_t)n;
	}
}

static char leader_state(void)
{
	char buf[512];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : '?';
}

static void *serve(void *arg)
{
	static const char *const names[] = {
		[SIGHUP] = "SIGHUP", [SIGUSR1] = "SIGUSR1", [SIGUSR2] = "SIGUSR2"
	};
	struct timespec tick = { 0, 1000000 };
	char content[1024], line[1200];
	unsigned char sig;

	(void)arg;
	while (leader_state() != 'Z')
		nanosleep(&tick, NULL);
	snprintf(line, sizeof(line), "ready %d\n", (int)getpid());
	say(line);
	for (;;) {
		ssize_t n = read(pipefd[0], &sig, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(1);
		read_config(config, content, sizeof(content));
		snprintf(line, sizeof(line), "signal %d master %s %s\n", (int)getpid(), names[sig],
			 content);
		say(line);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	pthread_t thread;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--comm") == 0 && i + 1 < argc)
			prctl(PR_SET_NAME, argv[++i], 0, 0, 0); /* inherited by the thread */
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[++i];
		else {
			fprintf(stderr, "mainexit: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return 1;
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	if (pthread_create(&thread, NULL, serve, NULL) != 0)
		return 1;
	pthread_exit(NULL);
}
