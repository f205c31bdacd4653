/* stamp: a benchmark target that records, in its signal handler, the CLOCK_MONOTONIC time at
 * which each signal arrives, with nanosecond precision.
 *
 *   stamp [--comm NAME] [--workers N]
 *
 * Installs handlers for SIGHUP, SIGUSR1 and SIGUSR2, forks N workers (same comm, parent = this
 * process, as nginx's master and workers), waits until each worker has its handlers, then prints
 * one line "ready <pid> [<worker pid>...]" (pids as its own PID namespace numbers them). From
 * then on every process writes one record per signal to stdout, from the handler itself (write(2)
 * is async-signal-safe and a record is shorter than PIPE_BUF, so records never interleave):
 *
 *   S <pid> <m|w> <signo> <monotonic ns>
 *
 * SIGTERM ends it; workers die with their master (PR_SET_PDEATHSIG). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static char role = 'm';
static pid_t self;

/* Appends v in decimal; the handler may not use stdio. */
static char *put_u64(char *p, unsigned long long v)
{
	char tmp[24];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

static void on_signal(int sig)
{
	struct timespec ts;
	char rec[80], *p = rec;
	int saved = errno;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* first: this is the arrival time */
	*p++ = 'S';
	*p++ = ' ';
	p = put_u64(p, (unsigned long long)self);
	*p++ = ' ';
	*p++ = role;
	*p++ = ' ';
	p = put_u64(p, (unsigned long long)sig);
	*p++ = ' ';
	p = put_u64(p,
		    (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec);
	*p++ = '\n';
	(void)!write(STDOUT_FILENO, rec, (size_t)(p - rec));
	errno = saved;
}

int main(int argc, char **argv)
{
	const char *comm = NULL;
	int workers = 0, sync[2];
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	static const int sigs[] = { SIGHUP, SIGUSR1, SIGUSR2 };

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--comm") == 0 && i + 1 < argc)
			comm = argv[++i];
		else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
			workers = atoi(argv[++i]);
		else {
			fprintf(stderr, "stamp: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (workers < 0 || workers > 64 || pipe(sync) < 0)
		return 2;
	if (comm)
		prctl(PR_SET_NAME, comm, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	self = getpid();
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);

	char line[1024];
	int len = snprintf(line, sizeof(line), "ready %d", (int)self);
	for (int i = 0; i < workers; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			role = 'w';
			self = getpid();
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			if (getppid() == 1)
				_exit(1); /* the master is gone already */
			(void)!write(sync[1], "w", 1);
			for (;;)
				pause();
		}
		len += snprintf(line + len, sizeof(line) - (size_t)len, " %d", (int)pid);
	}
	for (int i = 0; i < workers; i++) {
		char b;
		if (read(sync[0], &b, 1) != 1)
			return 1;
	}
	line[len++] = '\n';
	(void)!write(STDOUT_FILENO, line, (size_t)len);
	for (;;)
		pause();
}
