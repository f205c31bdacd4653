/* pidreuse: runs a program on a pid of our choosing: clone3() with set_tid puts the child on PID
 * in our PID namespace (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over it), and the child execs
 * PROGRAM. The parent waits for it and exits with its status. Prints "reused <pid>" on stderr, or
 * why it could not (EEXIST: the pid is taken; retried for up to 2 s, the old owner may still be
 * a zombie being reaped).
 *   pidreuse PID PROGRAM [ARG...] */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pidreuse PID PROGRAM [ARG...]\n");
		return 2;
	}
	pid_t want = (pid_t)atoi(argv[1]);
	pid_t tid[1] = { want };
	struct clone_args args = { .exit_signal = SIGCHLD,
				   .set_tid = (uintptr_t)tid,
				   .set_tid_size = 1 };
	long pid = -1;

	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	for (int tries = 0; tries < 200; tries++) {
		pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0 || errno != EEXIST)
			break;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	if (pid < 0) {
		fprintf(stderr, "pidreuse: clone3 on pid %d: %s\n", (int)want, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		execv(argv[2], argv + 2);
		fprintf(stderr, "pidreuse: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	fprintf(stderr, "reused %ld\n", pid);
	int status;
	while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
