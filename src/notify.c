/* notify.c: pidfd_open, identity check, handler check, pidfd_send_signal; kill(2) where the
 * kernel predates pidfds. */
#include "notify.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"
#include "compat.h"
#include "proc.h"
#include "signame.h"

/* The pid still names the process the scan saw: 0, -ESRCH, or why it cannot be told (EMFILE). */
static int same_process(pid_t pid, unsigned long long starttime)
{
	ProcStat st;
	int r = proc_read_stat(pid, &st);

	if (r == -ENOENT || r == -ESRCH || r == -EINVAL)
		return -ESRCH;
	if (r < 0)
		return r;
	if (st.starttime != starttime || st.state == 'X' ||
	    (st.state == 'Z' && !proc_zombie_leader_alive(pid)))
		return -ESRCH;
	return 0;
}

int notify_pin(pid_t pid, unsigned long long starttime, Pinned *out)
{
	int fd = sys_pidfd_open(pid, 0);

	/* Without pidfds (ENOSYS), or without a free fd for one, fall back on kill(2) after a
	 * fresh identity check at each use: a narrower window, never a target dropped. */
	if (fd < 0 && errno != ENOSYS && errno != EMFILE && errno != ENFILE && errno != ENOMEM)
		return errno == ESRCH ? -ESRCH : -errno;
	/* Pinned first, checked second: if the pid was reused before pidfd_open, the start
	 * time read now is the newcomer's and does not match. */
	int r = same_process(pid, starttime);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	*out = (Pinned){ .pid = pid, .starttime = starttime, .pidfd = fd };
	return 0;
}

void notify_unpin(Pinned *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}

int notify_ready(const Pinned *p, int sig)
{
	ProcStatus status;
	uint64_t bit = 1ULL << (sig - 1);

	int r = proc_read_status(p->pid, &status);
	if (r == -ENOENT || r == -ESRCH || !notify_alive(p))
		return -ESRCH;
	if (r < 0)
		return r;
	if (status.sig_ign & bit)
		return NOTIFY_IGNORED;
	/* A blocked signal is read with sigwait or a signalfd: it kills nobody either. */
	if (!signame_default_kills(sig) || ((status.sig_cgt | status.sig_blk) & bit))
		return NOTIFY_READY;
	return NOTIFY_NOT_YET;
}

int notify_send(const Pinned *p, int sig)
{
	if (p->pidfd >= 0)
		return sys_pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
	if (same_process(p->pid, p->starttime) < 0)
		return -ESRCH;
	return kill(p->pid, sig) < 0 ? -errno : 0;
}

bool notify_alive(const Pinned *p)
{
	if (p->pidfd >= 0) {
		/* a pidfd polls readable once its process has exited */
		struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
		return poll(&pfd, 1, 0) == 0;
	}
	return same_process(p->pid, p->starttime) == 0;
}

void notify_explain_eperm(pid_t pid, char *buf, size_t size)
{
	ProcStatus status;
	uid_t self = geteuid();

	if (proc_read_status(pid, &status) < 0)
		snprintf(buf, size, "permission denied");
	else if (status.uid != self && !caps_have_kill())
		snprintf(
		    buf, size,
		    "target uid %u differs from ours (%u): run as uid %u, or add capability KILL",
		    (unsigned)status.uid, (unsigned)self, (unsigned)status.uid);
	else
		snprintf(buf, size,
			 "permission denied although uid %u may signal uid %u: is the target in "
			 "another user namespace, or a seccomp or LSM policy in the way?",
			 (unsigned)self, (unsigned)status.uid);
}
