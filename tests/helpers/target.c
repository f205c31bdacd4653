/* target: a test process that reloads on signals and says so.
 *
 * Prints "ready <pid>" once its handlers are installed, then for every signal it receives one
 * line "signal <pid> <master|worker> <SIGNAME> <content>", where content is what --config held
 * at that moment (escaped, "-" when unreadable). Options:
 *   --comm NAME         set /proc/PID/comm
 *   --workers N         fork N workers (same comm, parent = this process), which report too
 *   --config FILE       the file to read on each signal
 *   --handler-after MS  install the handlers only after MS milliseconds ("handler <pid>" then)
 *   --exit-on-signal    exit after the first reported signal (a target that dies on reload)
 *   --ignore            ignore SIGHUP instead of catching it
 * SIGTERM ends it (and its workers). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

static int pipefd[2];
static const int caught[] = { SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGWINCH };

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

static void install(bool ignore)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		sigaction(caught[i], &sa, NULL);
	for (int s = SIGRTMIN; s <= SIGRTMIN + 8; s++)
		sigaction(s, &sa, NULL);
	if (ignore)
		signal(SIGHUP, SIG_IGN);
}

static const char *name_of(int sig, char *buf, size_t size)
{
	static const char *const names[] = { [SIGHUP] = "SIGHUP",
					     [SIGUSR1] = "SIGUSR1",
					     [SIGUSR2] = "SIGUSR2",
					     [SIGQUIT] = "SIGQUIT",
					     [SIGWINCH] = "SIGWINCH" };
	if (sig < (int)(sizeof(names) / sizeof(names[0])) && names[sig])
		return names[sig];
	snprintf(buf, size, "SIGRTMIN+%d", sig - SIGRTMIN);
	return buf;
}

static void serve(const char *role, const char *config, bool exit_on_signal)
{
	unsigned char sig;
	char content[1024], line[1200], name[32];

	for (;;) {
		ssize_t n = read(pipefd[0], &sig, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(1);
		read_config(config, content, sizeof(content));
		snprintf(line, sizeof(line), "signal %d %s %s %s\n", (int)getpid(), role,
			 name_of(sig, name, sizeof(name)), content);
		say(line);
		if (exit_on_signal)
			_exit(0); /* at once: no exit handlers (a sanitizer's leak check) to outlive
				     sigreload's verification */
	}
}

int main(int argc, char **argv)
{
	const char *comm = NULL, *config = NULL;
	int workers = 0, handler_after = 0;
	bool exit_on_signal = false, ignore = false;
	char line[64];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--comm") == 0 && i + 1 < argc)
			comm = argv[++i];
		else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
			workers = atoi(argv[++i]);
		else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "--handler-after") == 0 && i + 1 < argc)
			handler_after = atoi(argv[++i]);
		else if (strcmp(argv[i], "--exit-on-signal") == 0)
			exit_on_signal = true;
		else if (strcmp(argv[i], "--ignore") == 0)
			ignore = true;
		else {
			fprintf(stderr, "target: bad argument %s\n", argv[i]);
			return 2;
		}
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return 1;
	if (comm)
		prctl(PR_SET_NAME, comm, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	signal(SIGTERM, SIG_DFL);
	if (handler_after > 0) {
		snprintf(line, sizeof(line), "ready %d\n", (int)getpid());
		say(line);
		struct timespec ts = { handler_after / 1000, (handler_after % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		install(ignore);
		snprintf(line, sizeof(line), "handler %d\n", (int)getpid());
		say(line);
	} else {
		install(ignore);
	}
	for (int i = 0; i < workers; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			/* a pipe of its own: the master's signals are the master's to report */
			close(pipefd[0]);
			close(pipefd[1]);
			if (pipe2(pipefd, O_CLOEXEC) < 0)
				return 1;
			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			snprintf(line, sizeof(line), "worker %d\n", (int)getpid());
			say(line);
			serve("worker", config, exit_on_signal);
		}
	}
	if (handler_after == 0) {
		snprintf(line, sizeof(line), "ready %d\n", (int)getpid());
		say(line);
	}
	serve("master", config, exit_on_signal);
}
