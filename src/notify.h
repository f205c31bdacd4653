/* notify.h: delivering a signal to one process, race-free against pid reuse (pidfd). */
#ifndef SIGRELOAD_NOTIFY_H
#define SIGRELOAD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A process pinned by a pidfd once its identity (pid and start time from the scan) checked out;
 * pidfd is -1 where the kernel has no pidfds or no fd was left for one, and then identity is
 * re-checked before each use. */
typedef struct Pinned {
	pid_t pid;
	unsigned long long starttime;
	int pidfd;
} Pinned;

/* 0, or -ESRCH when the process is gone or its pid now belongs to another process, or another
 * -errno when that cannot be told (no fd left to read /proc). */
int notify_pin(pid_t pid, unsigned long long starttime, Pinned *out);
void notify_unpin(Pinned *p);

typedef enum {
	NOTIFY_NOT_YET, /* no handler (yet): sig's default action would end the process */
	NOTIFY_READY, /* it catches or blocks sig, or sig's default action is harmless */
	NOTIFY_IGNORED, /* it ignores sig (SIG_IGN, as under nohup): a signal would do nothing */
} NotifyReadiness;

/* Whether sig can usefully be sent now: a NotifyReadiness, -ESRCH if the process is gone, or
 * another -errno if /proc cannot be read. */
int notify_ready(const Pinned *p, int sig);

/* Sends sig. 0, or -EPERM, -ESRCH, another -errno. */
int notify_send(const Pinned *p, int sig);

/* false once the process has exited (zombies included). */
bool notify_alive(const Pinned *p);

/* Why EPERM, and what to do: "target uid 0 differs from ours (65532): run as uid 0, or add
 * capability KILL". */
void notify_explain_eperm(pid_t pid, char *buf, size_t size);

#endif
