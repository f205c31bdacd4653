/* signame.c: the Linux signal table, with glibc's real-time range (signame.h). */
#include "signame.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const names[] = {
	[SIGHUP] = "HUP",   [SIGINT] = "INT",	    [SIGQUIT] = "QUIT", [SIGILL] = "ILL",
	[SIGTRAP] = "TRAP", [SIGABRT] = "ABRT",	    [SIGBUS] = "BUS",	[SIGFPE] = "FPE",
	[SIGKILL] = "KILL", [SIGUSR1] = "USR1",	    [SIGSEGV] = "SEGV", [SIGUSR2] = "USR2",
	[SIGPIPE] = "PIPE", [SIGALRM] = "ALRM",	    [SIGTERM] = "TERM", [SIGSTKFLT] = "STKFLT",
	[SIGCHLD] = "CHLD", [SIGCONT] = "CONT",	    [SIGSTOP] = "STOP", [SIGTSTP] = "TSTP",
	[SIGTTIN] = "TTIN", [SIGTTOU] = "TTOU",	    [SIGURG] = "URG",	[SIGXCPU] = "XCPU",
	[SIGXFSZ] = "XFSZ", [SIGVTALRM] = "VTALRM", [SIGPROF] = "PROF", [SIGWINCH] = "WINCH",
	[SIGIO] = "IO",	    [SIGPWR] = "PWR",	    [SIGSYS] = "SYS",
};

static bool valid_number(long n)
{
	return (n >= 1 && n < (long)(sizeof(names) / sizeof(names[0])) && names[n]) ||
	       (n >= SIGNAME_RTMIN && n <= SIGNAME_RTMAX);
}

/* "" → 0, "+3" → 3, "-2" → -2 (sign required); anything else → -EINVAL. */
static int parse_offset(const char *s, long *out)
{
	char *end;

	if (*s == '\0') {
		*out = 0;
		return 0;
	}
	if ((*s != '+' && *s != '-') || s[1] < '0' || s[1] > '9')
		return -EINVAL;
	errno = 0;
	long n = strtol(s, &end, 10);
	if (*end || errno || n > 64 || n < -64)
		return -EINVAL;
	*out = n;
	return 0;
}

int signame_parse(const char *s, int *out)
{
	long n, off;
	char *end;

	if (*s >= '0' && *s <= '9') {
		errno = 0;
		n = strtol(s, &end, 10);
		if (*end || errno || !valid_number(n))
			return -EINVAL;
		*out = (int)n;
		return 0;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	if (strncasecmp(s, "RTMIN", 5) == 0 || strncasecmp(s, "RTMAX", 5) == 0) {
		if (parse_offset(s + 5, &off) < 0)
			return -EINVAL;
		n = (strncasecmp(s, "RTMIN", 5) == 0 ? SIGNAME_RTMIN : SIGNAME_RTMAX) + off;
		if (n < SIGNAME_RTMIN || n > SIGNAME_RTMAX)
			return -EINVAL;
		*out = (int)n;
		return 0;
	}
	for (size_t i = 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i] && strcasecmp(s, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	if (strcasecmp(s, "POLL") == 0 || strcasecmp(s, "IOT") == 0) {
		*out = strcasecmp(s, "POLL") == 0 ? SIGPOLL : SIGIOT;
		return 0;
	}
	return -EINVAL;
}

char *signame_format(int sig, char buf[SIGNAME_MAX])
{
	if (sig >= 1 && sig < (int)(sizeof(names) / sizeof(names[0])) && names[sig])
		snprintf(buf, SIGNAME_MAX, "SIG%s", names[sig]);
	else if (sig == SIGNAME_RTMIN)
		snprintf(buf, SIGNAME_MAX, "SIGRTMIN");
	else if (sig > SIGNAME_RTMIN && sig <= SIGNAME_RTMAX)
		snprintf(buf, SIGNAME_MAX, "SIGRTMIN+%d", sig - SIGNAME_RTMIN);
	else
		snprintf(buf, SIGNAME_MAX, "%d", sig);
	return buf;
}

bool signame_default_kills(int sig)
{
	switch (sig) {
	case SIGCHLD:
	case SIGCONT:
	case SIGURG:
	case SIGWINCH:
	case SIGSTOP:
	case SIGTSTP:
	case SIGTTIN:
	case SIGTTOU:
	case SIGKILL: /* cannot be caught: waiting for a handler would be waiting forever */
		return false;
	default:
		return true;
	}
}
