/* zombie: a parent that never reaps. Forks N children that take the name --comm (and a SIGHUP
 * handler, with --handler) and exit at once; prints "zombie <pid>" for each once /proc shows it
 * in state Z, then "ready <pid>" (its own), then sleeps until killed, reaping nobody. Its own
 * comm is "zparent".
 *   zombie --comm NAME [--count N] [--handler] */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int sig)
{
	(void)sig;
}

static char state_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	char *close_paren = strrchr(buf, ')');
	return close_paren && close_paren[1] == ' ' ? close_paren[2] : '?';
}

int main(int argc, char **argv)
{
	const char *comm = "zombie";
	int count = 1;
	bool handler = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--comm") == 0 && i + 1 < argc)
			comm = argv[++i];
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = atoi(argv[++i]);
		else if (strcmp(argv[i], "--handler") == 0)
			handler = true;
		else {
			fprintf(stderr, "zombie: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	prctl(PR_SET_NAME, "zparent", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < count; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			prctl(PR_SET_NAME, comm, 0, 0, 0);
			if (handler)
				signal(SIGHUP, on_signal);
			_exit(0);
		}
		struct timespec ts = { 0, 1000000 };
		for (int tries = 0; state_of(pid) != 'Z'; tries++) {
			if (tries > 5000)
				return 1;
			nanosleep(&ts, NULL);
		}
		printf("zombie %d\n", (int)pid);
	}
	printf("ready %d\n", (int)getpid());
	for (;;)
		pause(); /* SIGCHLD's default action ignores it without reaping: the zombies stay */
}
