/* churn: a master that reloads on SIGHUP like the target helper ("signal <pid> master SIGHUP
 * <content>", content read from --config) while it forks short-lived workers without pause:
 * each worker keeps the master's comm, lives a random 0..--life-us microseconds and exits; the
 * master reaps them. Up to --rate forks a second. Prints "ready <pid>" once running, then
 * "forks <n>" every 1000 forks. SIGTERM ends it.
 *   churn --comm NAME [--config FILE] [--rate N] [--life-us N] */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

static int pipefd[2] = { -1, -1 };

static void on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	int saved = errno;
	if (pipefd[1] >= 0)
		(void)!write(pipefd[1], &b, 1);
	errno = saved;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	const char *comm = "churn", *config = NULL;
	long rate = 2000, life_us = 2000;
	unsigned long forks = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--comm") == 0 && i + 1 < argc)
			comm = argv[++i];
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
			rate = atol(argv[++i]);
		else if (strcmp(argv[i], "--life-us") == 0 && i + 1 < argc)
			life_us = atol(argv[++i]);
		else {
			fprintf(stderr, "churn: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0 || rate <= 0)
		return 1;
	prctl(PR_SET_NAME, comm, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", (int)getpid());
	srand((unsigned)getpid());
	long long next = now_us(), period = 1000000 / rate;
	for (;;) {
		long long wait_us = next - now_us();
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
		if (poll(&p, 1, wait_us > 0 ? (int)(wait_us / 1000) : 0) > 0) {
			unsigned char sig;
			while (read(pipefd[0], &sig, 1) == 1) {
				char content[1024];
				read_config(config, content, sizeof(content));
				printf("signal %d master SIGHUP %s\n", (int)getpid(), content);
			}
		}
		if (now_us() < next)
			continue;
		next += period;
		pid_t pid = fork();
		if (pid == 0) {
			close(pipefd[0]);
			close(pipefd[1]);
			pipefd[0] = pipefd[1] = -1; /* a worker's signals are not the master's */
			if (life_us > 0) {
				long us = rand() % life_us;
				struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
				nanosleep(&ts, NULL);
			}
			_exit(0);
		}
		if (pid > 0 && ++forks % 1000 == 0)
			printf("forks %lu\n", forks);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
