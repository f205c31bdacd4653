/* sandbox.c: the seccomp allow-list (libseccomp). After start-up sigreload reads files and
 * /proc, watches, signals, serves HTTP on sockets it already has, makes HTTP requests over TCP,
 * and logs; it never writes a file, executes, traces, mounts, changes credentials, makes a
 * thread or opens a socket of another kind. */
#include "sandbox.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cleanup.h"

/* The loop's system calls, and glibc's and libmicrohttpd's under them. A name the
 * architecture lacks is skipped. */
static const char *const allowed[] = {
	/* files and /proc, read-only (open and openat: see below) */
	"read",
	"pread64",
	"readv",
	"close",
	"lseek",
	"fstat",
	"newfstatat",
	"stat",
	"lstat",
	"statx",
	"getdents64",
	"readlink",
	"readlinkat",
	"access",
	"faccessat",
	"faccessat2",
	"fcntl",
	"dup",
	/* memory */
	"brk",
	"mmap",
	"munmap",
	"mremap",
	"mprotect",
	"madvise",
	"futex",
	"getrandom",
	/* the loop */
	"epoll_wait",
	"epoll_pwait",
	"epoll_pwait2",
	"epoll_ctl",
	"poll",
	"ppoll",
	"inotify_add_watch",
	"inotify_rm_watch",
	"timerfd_settime",
	"timerfd_gettime",
	"clock_gettime",
	"gettimeofday",
	"time", /* OpenSSL's certificate checks, where the vDSO does not answer (valgrind) */
	/* logging and HTTP on the sockets made at start-up */
	"write",
	"writev",
	"accept",
	"accept4",
	"recvfrom",
	"recvmsg",
	"sendto",
	"sendmsg",
	"shutdown",
	"setsockopt",
	"getsockopt",
	"getsockname",
	"getpeername",
	/* HTTP requests: connect on the sockets socket() may make (see below) */
	"connect",
	/* signals: to targets, and from the signalfd */
	"kill",
	"pidfd_open",
	"pidfd_send_signal",
	"rt_sigreturn",
	"rt_sigprocmask",
	"rt_sigaction",
	"tgkill",
	"restart_syscall",
	"sigaltstack", /* the sanitizer runtimes, on their way out of a function */
	/* identity and limits for messages and metrics */
	"getpid",
	"gettid",
	"getuid",
	"geteuid",
	"getgid",
	"getegid",
	"capget", /* whether CAP_KILL explains a refused signal */
	"prlimit64",
	"getrlimit",
	"exit",
	"exit_group",
	"sched_yield",
};

bool sandbox_supported(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return false; /* LeakSanitizer stops the world with clone and ptrace */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
	return false;
#else
	return true;
#endif
#else
	return true;
#endif
}

static void release(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/* socket() for HTTP requests: TCP over IPv4 and IPv6; UDP too when libcurl resolves names with
 * c-ares (DNS). Never AF_UNIX, AF_NETLINK, AF_PACKET or raw sockets. */
static int allow_sockets(scmp_filter_ctx ctx)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	const scmp_datum_t flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
	const struct {
		int type, protocol;
	} kinds[] = { { SOCK_STREAM, 0 },
		      { SOCK_STREAM, IPPROTO_TCP },
		      { SOCK_DGRAM, 0 },
		      { SOCK_DGRAM, IPPROTO_UDP } };
	size_t n = v->ares ? ELEMENTSOF(kinds) : 2;
	int r;

	for (int family = 0; family < 2; family++)
		for (size_t i = 0; i < n; i++)
			if ((r = seccomp_rule_add(
				 ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3,
				 SCMP_A0(SCMP_CMP_EQ, family ? AF_INET6 : AF_INET, 0),
				 SCMP_A1(SCMP_CMP_MASKED_EQ, ~flags, (scmp_datum_t)kinds[i].type),
				 SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)kinds[i].protocol, 0))) < 0)
				return r;
	return 0;
}

int sandbox_apply(void)
{
	_cleanup_(release) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	/* open and openat only for reading: any flag that could write or create is refused */
	const scmp_datum_t write_flags =
	    O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND |
	    (O_TMPFILE & ~O_DIRECTORY); /* O_TMPFILE includes O_DIRECTORY */
	int r;

	if (!ctx)
		return -ENOMEM;
	/* libseccomp sets no_new_privs as it loads the filter */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1)) < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(allowed); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) < 0)
			return r;
	}
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				  SCMP_A2(SCMP_CMP_MASKED_EQ, write_flags, 0))) < 0)
		return r;
	if (seccomp_syscall_resolve_name("open") != __NR_SCMP_ERROR &&
	    (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
				  SCMP_A1(SCMP_CMP_MASKED_EQ, write_flags, 0))) < 0)
		return r;
	if ((r = allow_sockets(ctx)) < 0)
		return r;
	return seccomp_load(ctx);
}
