/* signame.h: signal names and numbers as the rule file writes them. */
#ifndef SIGRELOAD_SIGNAME_H
#define SIGRELOAD_SIGNAME_H

#include <stdbool.h>
#include <stddef.h>

/* The real-time signals as glibc numbers them: what `kill -l` shows on Debian, and what the
 * programs of glibc-based images mean by SIGRTMIN. The kernel's range starts at 32; glibc keeps
 * 32 and 33 for its threads (musl, sigreload's C library in the image, keeps 34 too). Fixed here,
 * not taken from sigreload's own C library, so that a rule file means the same in every build. */
#define SIGNAME_RTMIN 34
#define SIGNAME_RTMAX 64

/* Parses "SIGHUP", "HUP", "hup", "1", "RTMIN", "SIGRTMIN+3", "RTMAX-2". Returns 0 or -EINVAL
 * (unknown name, or a number glibc reserves for itself, 32 and 33). */
int signame_parse(const char *s, int *out);

/* "SIGHUP", "SIGRTMIN+3"; buf needs SIGNAME_MAX bytes. Returns buf. */
#define SIGNAME_MAX 16
char *signame_format(int sig, char buf[SIGNAME_MAX]);

/* True when the signal's default action ends the process and a handler could be installed for
 * it: sending it to a process that has none would kill it. */
bool signame_default_kills(int sig);

#endif
