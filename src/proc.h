/* proc.h: reading processes from /proc: stat and status parsers, and a streaming scan. */
#ifndef SIGRELOAD_PROC_H
#define SIGRELOAD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The kernel's TASK_COMM_LEN is 16, but /proc/PID/stat of some kernel threads is longer. */
#define PROC_COMM_MAX	 64
#define PROC_CMDLINE_MAX 16384

typedef struct ProcStat {
	pid_t pid;
	pid_t ppid;
	char state;
	unsigned flags;
	unsigned long long utime, stime; /* CPU time, in clock ticks */
	unsigned long long starttime; /* clock ticks since boot: with pid, the process's identity */
	unsigned long long vsize, rss; /* bytes, pages; 0 when the line stops before them */
	unsigned threads;
	char comm[PROC_COMM_MAX];
} ProcStat;

typedef struct ProcStatus {
	uid_t uid; /* real uid */
	uint64_t sig_blk, sig_ign, sig_cgt;
	unsigned threads; /* 0 when the kernel does not say */
} ProcStatus;

/* Parses a /proc/PID/stat line. comm is taken up to the *last* ')', since comm itself may hold
 * spaces and parentheses ("a) (b"). Returns 0 or -EINVAL. */
int proc_stat_parse(const char *buf, size_t len, ProcStat *out);

/* Parses the Uid, SigBlk, SigIgn and SigCgt lines of /proc/PID/status (and Threads, if there).
 * Returns 0 or -EINVAL. */
int proc_status_parse(const char *buf, size_t len, ProcStatus *out);

/* The open fds of pid (0: ourselves), or -errno: -EACCES for another uid's without
 * CAP_SYS_PTRACE, -ENOENT when it is gone. */
int proc_count_fds(pid_t pid);

/* When the machine booted, in seconds since the epoch (/proc/stat's btime, read once). */
double proc_boot_time(void);

/* Read one process's files. -ENOENT/-ESRCH: the process is gone. */
int proc_read_stat(pid_t pid, ProcStat *out);
int proc_read_self(ProcStat *out);
int proc_read_status(pid_t pid, ProcStatus *out);

/* Whether a process whose stat says state Z still runs: its main thread called pthread_exit
 * while other threads go on (the kernel shows the thread group leader as a zombie then, with a
 * thread count above one). A real zombie, or a process we cannot read, is gone. */
bool proc_zombie_leader_alive(pid_t pid);

/* How long ago a process with this start time (stat's field 22, clock ticks since boot)
 * started, in nanoseconds; 0 if the clock says it has not (a coarse clock). */
uint64_t proc_age_ns(unsigned long long starttime);

/* One process during a scan. Valid only inside the visitor; every field is read on first use. */
typedef struct ProcEntry ProcEntry;

/* Its stat; NULL when it vanished, or is a zombie or a kernel thread: nothing to reload. */
const ProcStat *proc_entry_stat(ProcEntry *e);
/* Its comm, from /proc/PID/comm unless stat was read already. */
int proc_entry_comm(ProcEntry *e, const char **out);
/* -ENOENT/-ESRCH: vanished. */
int proc_entry_uid(ProcEntry *e, uid_t *out);
/* argv joined with single spaces (empty for kernel threads and zombies). */
int proc_entry_cmdline(ProcEntry *e, const char **out);
/* The executable's path, " (deleted)" removed. -EACCES: another uid and no CAP_SYS_PTRACE. */
int proc_entry_exe(ProcEntry *e, const char **out);

/* Called for each process but sigreload itself and PID 1 (zombies and kernel threads have no
 * stat: see proc_entry_stat). A negative return ends the scan with that value. */
typedef int (*ProcVisitFn)(ProcEntry *e, void *userdata);

typedef struct ProcScanInfo {
	size_t seen; /* every pid listed in /proc, including ours and PID 1 */
	size_t visited;
} ProcScanInfo;

/* Calls fn for one process, as a scan would (its files read on first use). */
int proc_visit(pid_t pid, ProcVisitFn fn, void *userdata);

/* Closes the files scans keep open between them (an fd for each process's comm, at most 128). */
void proc_scan_release(void);

/* Walks /proc once. Processes that vanish during the walk are skipped. fn and info may be
 * NULL (a count only). Not reentrant: one scan at a time. */
int proc_scan(ProcVisitFn fn, void *userdata, ProcScanInfo *info);

#endif
