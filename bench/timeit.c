/* timeit: runs a command K times and prints, per run, its wall time (CLOCK_MONOTONIC, ns) and
 * CPU time (getrusage of the child, us), for timing short commands inside a pod without the
 * harness's own fork and exec in the figure.
 *
 *   timeit K CMD [ARG...]
 *
 * One line per run: "run <wall ns> <user us> <sys us> <exit status>". The command's stdout and
 * stderr go to /dev/null. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	int k = argc > 2 ? atoi(argv[1]) : 0;

	if (k <= 0) {
		fprintf(stderr, "usage: timeit K CMD [ARG...]\n");
		return 2;
	}
	for (int i = 0; i < k; i++) {
		struct rusage ru;
		int status;
		unsigned long long t0 = now_ns();
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		if (wait4(pid, &status, 0, &ru) < 0)
			return 1;
		unsigned long long t1 = now_ns();
		printf("run %llu %ld %ld %d\n", t1 - t0,
		       ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
		       ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec,
		       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	}
	return 0;
}
