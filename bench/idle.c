/* idle: N unrelated idle processes, for a process table the size of a busy node's pod.
 *
 *   idle N [COMM]
 *
 * Forks N children that sleep in pause() and die with it (PR_SET_PDEATHSIG), prints "ready N"
 * once every child exists, then sleeps until SIGTERM or SIGKILL (the children follow). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
	pid_t parent = getpid();

	if (n < 0 || n > 100000) {
		fprintf(stderr, "idle: N must be 0..100000\n");
		return 2;
	}
	prctl(PR_SET_NAME, argc > 2 ? argv[2] : "idle", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	signal(SIGCHLD, SIG_IGN); /* a child killed on its own is reaped by the kernel */
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("idle: fork");
			return 1;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			if (getppid() != parent)
				_exit(0);
			close(STDOUT_FILENO); /* the harness's pipe ends with the parent */
			for (;;)
				pause();
		}
	}
	printf("ready %ld\n", n);
	fflush(stdout);
	for (;;)
		pause();
}
