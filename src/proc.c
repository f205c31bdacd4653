/* proc.c: /proc parsing and scanning; pure parsers first, then bounded reads. */
#include "proc.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

#define PF_KTHREAD 0x00200000u

/* Everything but the pid is read on first use: a scan for "comm: nginx" reads one short file
 * per process, and the 52 fields of stat only for the candidates. */
struct ProcEntry {
	int procfd;
	char dir[24]; /* "PID" under procfd, or "/proc/PID" */
	int comm_fd; /* its comm file, kept open between scans (see CommFds), or -1 */
	int stat_res, comm_res, uid_res, cmdline_res, exe_res; /* 1: not read yet, 0: read, <0 */
	ProcStat st;
	char comm[PROC_COMM_MAX];
	uid_t uid;
	char cmdline[PROC_CMDLINE_MAX];
	char exe[PATH_MAX];
};

/* Fields 3 to 24 of stat, as proc(5) numbers them, into f[3..24]; p points just past the ')'
 * that ends comm. The kernel separates fields with exactly one space: a line that does not is
 * refused rather than read with its fields shifted. Returns the number of the last field. */
static int stat_fields(const char *p, const char *end, const char *f[25])
{
	int n = 2;

	while (n < 24 && p < end && *p == ' ' && p + 1 < end) {
		f[++n] = ++p;
		while (p < end && *p != ' ')
			p++;
	}
	return n;
}

static int parse_ull(const char *p, const char *end, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *start = p;

	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > ULLONG_MAX / 10 || (v == ULLONG_MAX / 10 && d > ULLONG_MAX % 10))
			return -EINVAL;
		v = v * 10 + d;
	}
	if (p == start || (p < end && *p != ' ' && *p != '\n'))
		return -EINVAL;
	*out = v;
	return 0;
}

/* A number field of stat: the line goes on after it, so a read cut short inside the number
 * (which would give a smaller start time, a wrong identity) is refused. */
static int parse_stat_num(const char *p, const char *end, unsigned long long *out)
{
	const char *q = p;

	while (q < end && *q >= '0' && *q <= '9')
		q++;
	if (q == end)
		return -EINVAL;
	return parse_ull(p, end, out);
}

int proc_stat_parse(const char *buf, size_t len, ProcStat *out)
{
	const char *end = buf + len, *open, *close = NULL, *f[25];
	unsigned long long pid, ppid, flags, utime, stime, threads, start;
	ProcStat st = { 0 };

	open = memchr(buf, '(', len);
	for (const char *p = end; p > buf; p--)
		if (p[-1] == ')') {
			close = p - 1;
			break;
		}
	if (!open || !close || close < open || (size_t)(close - open - 1) >= sizeof(st.comm))
		return -EINVAL;
	if (parse_ull(buf, open, &pid) < 0 || open == buf || open[-1] != ' ')
		return -EINVAL;
	memcpy(st.comm, open + 1, (size_t)(close - open - 1));

	int n = stat_fields(close + 1, end, f);
	if (n < 22 || *f[3] == ' ' || parse_stat_num(f[4], end, &ppid) < 0 ||
	    parse_stat_num(f[9], end, &flags) < 0 || parse_stat_num(f[14], end, &utime) < 0 ||
	    parse_stat_num(f[15], end, &stime) < 0 || parse_stat_num(f[20], end, &threads) < 0 ||
	    parse_stat_num(f[22], end, &start) < 0)
		return -EINVAL;
	if (pid == 0 || pid > INT_MAX || ppid > INT_MAX || flags > UINT_MAX || threads > UINT_MAX)
		return -EINVAL;
	/* the memory fields only when the line has them whole: a scan needs none of them */
	if (n < 24 || parse_stat_num(f[23], end, &st.vsize) < 0 ||
	    parse_stat_num(f[24], end, &st.rss) < 0)
		st.vsize = st.rss = 0;
	st.pid = (pid_t)pid;
	st.ppid = (pid_t)ppid;
	st.state = *f[3];
	st.flags = (unsigned)flags;
	st.utime = utime;
	st.stime = stime;
	st.threads = (unsigned)threads;
	st.starttime = start;
	*out = st;
	return 0;
}

static int parse_hex64(const char *p, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	for (; p < end && isxdigit((unsigned char)*p); p++, digits++) {
		if (digits >= 16)
			return -EINVAL;
		v = (v << 4) | (uint64_t)(isdigit((unsigned char)*p)
					      ? *p - '0'
					      : (tolower((unsigned char)*p) - 'a' + 10));
	}
	if (digits == 0 || (p < end && *p != ' ' && *p != '\t'))
		return -EINVAL; /* "12zz" is not 0x12 */
	*out = v;
	return 0;
}

int proc_status_parse(const char *buf, size_t len, ProcStatus *out)
{
	const char *end = buf + len;
	ProcStatus s = { 0 };
	unsigned found = 0;

	for (const char *line = buf; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *eol = nl ? nl : end;
		size_t n = (size_t)(eol - line);
		int r = 0;

		if (n > 4 && memcmp(line, "Uid:", 4) == 0) {
			unsigned long long uid;
			const char *p = line + 4;
			while (p < eol && (*p == ' ' || *p == '\t'))
				p++;
			const char *q = p;
			while (q < eol && *q >= '0' && *q <= '9')
				q++;
			r = parse_ull(p, q, &uid);
			if (r == 0 && uid > UINT32_MAX)
				r = -EINVAL;
			s.uid = (uid_t)uid;
			found |= 1;
		} else if (n > 7 && memcmp(line, "SigBlk:", 7) == 0) {
			r = parse_hex64(line + 7, eol, &s.sig_blk);
			found |= 2;
		} else if (n > 7 && memcmp(line, "SigIgn:", 7) == 0) {
			r = parse_hex64(line + 7, eol, &s.sig_ign);
			found |= 4;
		} else if (n > 7 && memcmp(line, "SigCgt:", 7) == 0) {
			r = parse_hex64(line + 7, eol, &s.sig_cgt);
			found |= 8;
		} else if (n > 8 && memcmp(line, "Threads:", 8) == 0) {
			unsigned long long threads = 0;
			const char *p = line + 8;
			while (p < eol && (*p == ' ' || *p == '\t'))
				p++;
			r = parse_ull(p, eol, &threads);
			if (r == 0 && threads > UINT_MAX)
				r = -EINVAL;
			s.threads = (unsigned)threads;
		}
		if (r < 0)
			return r;
		line = eol + 1;
	}
	if (found != 15)
		return -EINVAL;
	*out = s;
	return 0;
}

/* Reads at most size-1 bytes of dirfd/path and NUL-terminates. Returns the length or -errno;
 * ESRCH (the process died after open) is reported as ENOENT. */
static ssize_t read_small(int dirfd, const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t len = 0;

	if (fd < 0)
		return errno == ESRCH ? -ENOENT : -errno;
	while (len < size - 1) {
		size_t want = size - 1 - len;
		ssize_t n = read(fd, buf + len, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ESRCH ? -ENOENT : -errno;
		len += (size_t)n;
		/* /proc makes these files whole for the first read: a short read is the end, which
		 * saves the read that would return 0, on every process of a scan */
		if ((size_t)n < want)
			break;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static int read_stat_at(int procfd, const char *dir, ProcStat *out)
{
	char path[32], buf[1024];

	snprintf(path, sizeof(path), "%s/stat", dir);
	ssize_t n = read_small(procfd, path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if (n == 0)
		return -ENOENT;
	return proc_stat_parse(buf, (size_t)n, out);
}

static int read_status_at(int procfd, const char *dir, ProcStatus *out)
{
	char path[32], buf[4096];

	snprintf(path, sizeof(path), "%s/status", dir);
	ssize_t n = read_small(procfd, path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if (n == 0)
		return -ENOENT;
	return proc_status_parse(buf, (size_t)n, out);
}

int proc_count_fds(pid_t pid)
{
	char path[32];
	int n = 0;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/fd");
	_cleanup_closedir_ DIR *d = opendir(path);
	if (!d)
		return errno == ESRCH ? -ENOENT : -errno;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	return pid > 0 ? n : n - 1; /* our own count holds the fd that reads it */
}

double proc_boot_time(void)
{
	static double btime = -1;
	char buf[256];

	if (btime < 0) {
		_cleanup_fclose_ FILE *f = fopen("/proc/stat", "re");
		unsigned long long v = 0;
		while (f && fgets(buf, sizeof(buf), f))
			if (strncmp(buf, "btime ", 6) == 0 &&
			    parse_ull(buf + 6, buf + strlen(buf), &v) == 0)
				break;
		btime = (double)v;
	}
	return btime;
}

int proc_read_stat(pid_t pid, ProcStat *out)
{
	char dir[32];

	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	return read_stat_at(AT_FDCWD, dir, out);
}

int proc_read_self(ProcStat *out)
{
	return read_stat_at(AT_FDCWD, "/proc/self", out);
}

int proc_read_status(pid_t pid, ProcStatus *out)
{
	char dir[32];

	snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	return read_status_at(AT_FDCWD, dir, out);
}

bool proc_zombie_leader_alive(pid_t pid)
{
	ProcStatus status;

	return proc_read_status(pid, &status) == 0 && status.threads > 1;
}

uint64_t proc_age_ns(unsigned long long starttime)
{
	static long tick;
	struct timespec ts;

	if (!tick)
		tick = sysconf(_SC_CLK_TCK);
	/* the kernel counts start times on the boot clock, which goes on during suspend */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	uint64_t start = tick > 0 ? starttime / (unsigned long long)tick * 1000000000ULL +
					starttime % (unsigned long long)tick * 1000000000ULL /
					    (unsigned long long)tick
				  : 0;
	return now > start ? now - start : 0;
}

const ProcStat *proc_entry_stat(ProcEntry *e)
{
	if (e->stat_res > 0) {
		e->stat_res = read_stat_at(e->procfd, e->dir, &e->st);
		/* a zombie or a kernel thread has nothing to reload */
		if (e->stat_res == 0 &&
		    ((e->st.state == 'Z' && !proc_zombie_leader_alive(e->st.pid)) ||
		     e->st.state == 'X' || (e->st.flags & PF_KTHREAD)))
			e->stat_res = -ESRCH;
	}
	return e->stat_res == 0 ? &e->st : NULL;
}

/* The comm files of the processes the last scan saw, kept open, sorted by pid: a scan then
 * costs one pread a known process instead of an open, a read and a close (a pod's 50 processes:
 * 50 system calls rather than 150). At most COMM_FDS of them (fewer under a low fd limit), so
 * that a big process table cannot take the fds sigreload needs; past that, comm is opened and
 * closed each time. */
#define COMM_FDS 128

typedef struct CommFd {
	pid_t pid;
	int fd;
} CommFd;

static struct {
	CommFd v[COMM_FDS], next[COMM_FDS];
	size_t n, n_next, cursor; /* cursor: into v, as a scan's pids go up */
} comm_fds;

/* COMM_FDS, or an eighth of the fd limit if that is less: the pidfds of the targets and the
 * connections of /metrics come first. */
static size_t comm_fds_cap(void)
{
	static size_t cap;
	struct rlimit rl;

	if (!cap)
		cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 8 < COMM_FDS
			  ? (size_t)rl.rlim_cur / 8 + 1
			  : COMM_FDS;
	return cap;
}

static int comm_fd_open(int procfd, const char *path)
{
	if (comm_fds.n_next >= comm_fds_cap())
		return -1;
	return openat(procfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

/* The fd kept for pid, if any; the ones kept for lower pids are of processes gone. */
static int comm_fd_take(pid_t pid)
{
	while (comm_fds.cursor < comm_fds.n && comm_fds.v[comm_fds.cursor].pid < pid)
		close(comm_fds.v[comm_fds.cursor++].fd);
	if (comm_fds.cursor < comm_fds.n && comm_fds.v[comm_fds.cursor].pid == pid)
		return comm_fds.v[comm_fds.cursor++].fd;
	return -1;
}

/* After a process's visit: its fd kept for the next scan, unless it proved stale. */
static void comm_fd_keep(ProcEntry *e, pid_t pid)
{
	if (e->comm_fd < 0)
		return;
	if (e->comm_res < 0 || comm_fds.n_next >= comm_fds_cap()) {
		close(e->comm_fd);
		return;
	}
	comm_fds.next[comm_fds.n_next++] = (CommFd){ .pid = pid, .fd = e->comm_fd };
}

/* The scan is over (or abandoned): what it kept replaces what was kept. */
static void comm_fds_swap(void)
{
	comm_fd_take(INT_MAX); /* closes the rest: processes gone (or not reached) */
	memcpy(comm_fds.v, comm_fds.next, comm_fds.n_next * sizeof(*comm_fds.v));
	comm_fds.n = comm_fds.n_next;
	comm_fds.n_next = comm_fds.cursor = 0;
}

void proc_scan_release(void)
{
	comm_fds_swap(); /* between scans nothing is kept for the next: every fd is closed */
}

/* comm through the fd kept open for it: /proc makes the file anew at each read from offset 0,
 * and answers ESRCH once the process it was opened for is gone. The pid may name a new process
 * by now, with a file of its own: then that one is opened. */
static ssize_t read_comm(ProcEntry *e, const char *path)
{
	bool kept = e->comm_fd >= 0;

	if (!kept && e->procfd != AT_FDCWD)
		e->comm_fd = comm_fd_open(e->procfd, path);
	while (e->comm_fd >= 0) {
		ssize_t n = pread(e->comm_fd, e->comm, sizeof(e->comm) - 1, 0);
		if (n >= 0) {
			e->comm[n] = '\0';
			return n;
		}
		int err = errno;
		close(e->comm_fd);
		e->comm_fd = err == ESRCH && kept ? comm_fd_open(e->procfd, path) : -1;
		kept = false;
		if (err != ESRCH)
			return -err;
	}
	return read_small(e->procfd, path, e->comm, sizeof(e->comm));
}

int proc_entry_comm(ProcEntry *e, const char **out)
{
	if (e->stat_res == 0) {
		*out = e->st.comm;
		return 0;
	}
	if (e->comm_res > 0) {
		char path[32];
		snprintf(path, sizeof(path), "%s/comm", e->dir);
		ssize_t n = read_comm(e, path);
		if (n > 0 && e->comm[n - 1] == '\n')
			e->comm[--n] = '\0';
		e->comm_res = n > 0 ? 0 : n == 0 ? -ENOENT : (int)n;
	}
	if (e->comm_res == 0)
		*out = e->comm;
	return e->comm_res;
}

int proc_entry_uid(ProcEntry *e, uid_t *out)
{
	if (e->uid_res > 0) {
		ProcStatus status;
		e->uid_res = read_status_at(e->procfd, e->dir, &status);
		e->uid = status.uid;
	}
	if (e->uid_res == 0)
		*out = e->uid;
	return e->uid_res;
}

int proc_entry_cmdline(ProcEntry *e, const char **out)
{
	if (e->cmdline_res > 0) {
		char path[32];
		snprintf(path, sizeof(path), "%s/cmdline", e->dir);
		ssize_t n = read_small(e->procfd, path, e->cmdline, PROC_CMDLINE_MAX);
		if (n >= 0) {
			while (n > 0 && (e->cmdline[n - 1] == '\0' || e->cmdline[n - 1] == ' '))
				n--;
			e->cmdline[n] = '\0';
			for (ssize_t i = 0; i < n; i++)
				if (e->cmdline[i] == '\0')
					e->cmdline[i] = ' ';
		}
		e->cmdline_res = n < 0 ? (int)n : 0;
	}
	if (e->cmdline_res == 0)
		*out = e->cmdline;
	return e->cmdline_res;
}

int proc_entry_exe(ProcEntry *e, const char **out)
{
	static const char deleted[] = " (deleted)";

	if (e->exe_res > 0) {
		char path[32];
		snprintf(path, sizeof(path), "%s/exe", e->dir);
		ssize_t n = readlinkat(e->procfd, path, e->exe, sizeof(e->exe) - 1);
		if (n < 0) {
			e->exe_res = errno == ESRCH ? -ENOENT : -errno;
		} else {
			/* an upgraded package leaves the running binary's link marked deleted */
			size_t dl = sizeof(deleted) - 1;
			if ((size_t)n > dl && memcmp(e->exe + n - dl, deleted, dl) == 0)
				n -= (ssize_t)dl;
			e->exe[n] = '\0';
			e->exe_res = 0;
		}
	}
	if (e->exe_res == 0)
		*out = e->exe;
	return e->exe_res;
}

static pid_t parse_pid_name(const char *s)
{
	long v = 0;

	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > INT_MAX / 10)
			return 0;
		v = v * 10 + (*s - '0');
	}
	return (pid_t)v;
}

int proc_visit(pid_t pid, ProcVisitFn fn, void *userdata)
{
	static ProcEntry entry; /* a scan's is its own: this may run while none is under way */
	ProcEntry *e = &entry;

	e->procfd = AT_FDCWD;
	e->comm_fd = -1;
	e->stat_res = e->comm_res = e->uid_res = e->cmdline_res = e->exe_res = 1;
	snprintf(e->dir, sizeof(e->dir), "/proc/%d", (int)pid);
	return fn(e, userdata);
}

/* Our pid as this /proc numbers it, which is right even if /proc is another namespace's. It
 * never changes: read once, not at every scan. */
static int self_pid(pid_t *out)
{
	static pid_t self;
	char buf[16];

	if (!self) {
		ssize_t n = readlink("/proc/self", buf, sizeof(buf) - 1);
		if (n < 0)
			return -errno;
		buf[n] = '\0';
		self = parse_pid_name(buf);
	}
	*out = self;
	return 0;
}

int proc_scan(ProcVisitFn fn, void *userdata, ProcScanInfo *info)
{
	/* one entry for every scan: no allocation per scan (or per process), no heap to creep */
	static ProcEntry entry;
	_cleanup_closedir_ DIR *dir = opendir("/proc");
	ProcScanInfo scan = { 0 };
	struct dirent *de;
	pid_t self = 0;
	int r;

	if (!dir)
		return -errno;
	if ((r = self_pid(&self)) < 0)
		return r;
	while ((errno = 0, de = readdir(dir))) {
		pid_t pid = parse_pid_name(de->d_name);
		if (pid <= 0)
			continue;
		scan.seen++;
		if (pid == self || pid == 1)
			continue;
		ProcEntry *e = &entry;
		e->procfd = dirfd(dir);
		e->comm_fd = comm_fd_take(pid);
		e->stat_res = e->comm_res = e->uid_res = e->cmdline_res = e->exe_res = 1;
		snprintf(e->dir, sizeof(e->dir), "%d", (int)pid);
		scan.visited++;
		r = fn ? fn(e, userdata) : 0;
		comm_fd_keep(e, pid);
		if (r < 0) {
			comm_fds_swap();
			return r;
		}
	}
	r = errno;
	comm_fds_swap();
	if (r != 0)
		return -r;
	if (info)
		*info = scan;
	return 0;
}
