/* The seccomp filter: what sigreload's loop needs passes, what an attacker wants fails. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

typedef int (*Probe)(void);

/* Runs probe in a child under the filter: returns the errno it failed with, or 0. */
static int under_filter(Probe probe)
{
	int fds[2];
	int err = -1;

	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		int r = sandbox_apply();
		int e = r < 0 ? 1000 - r : probe();
		(void)!write(fds[1], &e, sizeof(e));
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &err, sizeof(err)), sizeof(err));
	close(fds[0]);
	waitpid(pid, NULL, 0);
	if (err >= 1000)
		fail_msg("sandbox_apply failed: %s", strerror(err - 1000));
	return err;
}

static int errno_of(long r)
{
	return r < 0 ? errno : 0;
}

static int try_execve(void)
{
	char *argv[] = { "true", NULL };
	return errno_of(execve("/bin/true", argv, environ));
}

static int try_ptrace(void)
{
	return errno_of(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
}

static int try_mount(void)
{
	return errno_of(mount("none", "/tmp", "tmpfs", 0, NULL));
}

static int try_write_file(void)
{
	return errno_of(open("/tmp/sigreload-sandbox-test", O_WRONLY | O_CREAT | O_TRUNC, 0600));
}

static int try_rdwr_file(void)
{
	return errno_of(open("/etc/hostname", O_RDWR));
}

static int try_unlink(void)
{
	return errno_of(unlink("/tmp/sigreload-sandbox-test-none"));
}

static int try_unix_socket(void)
{
	return errno_of(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

static int try_netlink_socket(void)
{
	return errno_of(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0));
}

static int try_packet_socket(void)
{
	return errno_of(socket(AF_PACKET, SOCK_RAW, 0));
}

static int try_raw_socket(void)
{
	return errno_of(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
}

/* UDP is DNS's: only a libcurl that resolves with c-ares needs it (not Debian's). */
static int try_udp_socket(void)
{
	return errno_of(socket(AF_INET6, SOCK_DGRAM, 0));
}

static int try_sctp_socket(void)
{
	return errno_of(socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP));
}

static void *nothing(void *arg)
{
	return arg;
}

/* A thread: libcurl's threaded resolver would make one for every name. */
static int try_thread(void)
{
	pthread_t t;
	int r = pthread_create(&t, NULL, nothing, NULL);
	if (r == 0)
		pthread_join(t, NULL);
	return r;
}

static int try_setuid(void)
{
	return errno_of(setuid(0));
}

static int try_chmod(void)
{
	return errno_of(chmod("/tmp", 01777));
}

static int try_prctl(void)
{
	return errno_of(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
}

static void test_refused(void **state)
{
	static const struct {
		const char *what;
		Probe probe;
	} probes[] = {
		{ "execve", try_execve },
		{ "ptrace", try_ptrace },
		{ "mount", try_mount },
		{ "open for writing", try_write_file },
		{ "open O_RDWR", try_rdwr_file },
		{ "unlink", try_unlink },
		{ "AF_UNIX socket", try_unix_socket },
		{ "AF_NETLINK socket", try_netlink_socket },
		{ "AF_PACKET socket", try_packet_socket },
		{ "raw socket", try_raw_socket },
		{ "UDP socket", try_udp_socket },
		{ "SCTP socket", try_sctp_socket },
		{ "thread", try_thread },
		{ "setuid", try_setuid },
		{ "chmod", try_chmod },
		{ "prctl", try_prctl },
	};
	(void)state;
	for (size_t i = 0; i < ELEMS(probes); i++) {
		int err = under_filter(probes[i].probe);
		if (err != EPERM)
			fail_msg("%s under the filter: %s, want EPERM", probes[i].what,
				 err ? strerror(err) : "allowed");
	}
}

static int read_proc_and_dirs(void)
{
	char buf[256];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0)
		return errno ? errno : EIO;
	close(fd);
	fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	close(fd);
	if (kill(getpid(), 0) < 0 || access("/", R_OK) < 0)
		return errno;
	void *p = malloc(1 << 20); /* mmap */
	if (!p)
		return ENOMEM;
	free(p);
	return 0;
}

/* 0 when /proc/self/status shows no_new_privs set and a seccomp filter in place. */
static int locked(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (n <= 0)
		return EIO;
	buf[n] = '\0';
	return strstr(buf, "\nNoNewPrivs:\t1\n") && strstr(buf, "\nSeccomp:\t2\n") ? 0 : EINVAL;
}

static int listener_port;

/* What an HTTP request does: a TCP socket (IPv4 or IPv6), connected. */
static int tcp_connect(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)listener_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd6 < 0 || fd < 0)
		return errno;
	close(fd6);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS))
		return errno;
	close(fd);
	return 0;
}

static void test_allowed(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	(void)state;
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	listener_port = ntohs(a.sin_port);
	assert_int_equal(under_filter(read_proc_and_dirs), 0);
	assert_int_equal(under_filter(locked), 0);
	assert_int_equal(under_filter(tcp_connect), 0);
	close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_allowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
