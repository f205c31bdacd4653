/* kubeswap: the kubelet's atomic ConfigMap update (REFERENCE.md §1, as tests/system/kubelet.py
 * replays it), in C and timed, plus the collection of the signals it causes.
 *
 *   kubeswap RECORDS_FD
 *
 * RECORDS_FD is the read end of the pipe the targets (bench/stamp.c) write their records to, or
 * -1. Commands arrive on stdin, one a line; each gets one reply line on stdout:
 *
 *   master PID                         the target whose first signal after the swap ends a change
 *   write DIR NKEYS TAG                make the volume hold version TAG (created if need be)
 *   update DIR NKEYS TAG EXPECT WAIT_MS SETTLE_MS
 *                                      the kubelet's update to version TAG (always written, so
 *                                      an unchanged TAG is a swap to identical content), then the
 *                                      records are collected: EXPECT 1 (a change) until the master
 *                                      has reported a signal that arrived after T_SWAP0 and no
 *                                      record came for SETTLE_MS, or WAIT_MS after the swap;
 *                                      EXPECT 0 for WAIT_MS after the swap
 *   touch PATH WAIT_MS                 utimensat(PATH, now), as touch(1) does; records for WAIT_MS
 *   drain QUIET_MS                     records until none came for QUIET_MS
 *   quit
 *
 * Replies: "ok", or "done T_START T_SWAP0 T_SWAP1 T_END TIMED_OUT RECORDS" with CLOCK_MONOTONIC
 * nanoseconds: T_START before the first write, T_SWAP0 and T_SWAP1 right before and right after
 * rename(..data_tmp, ..data) (for touch: around utimensat), T_END after the old directory is
 * removed; RECORDS is "pid:role:signo:ns,..." or "-". Errors: "error MESSAGE". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_SIZE 1024
#define MAX_KEYS 100000

static int records_fd = -1;
static long master = -1;
static char rbuf[1 << 16];
static size_t rlen;

typedef struct Out {
	char *s;
	size_t n, cap;
} Out;

static void out_add(Out *o, const char *s, size_t n)
{
	if (o->n + n + 1 > o->cap) {
		o->cap = (o->n + n + 1) * 2;
		o->s = realloc(o->s, o->cap);
		if (!o->s)
			exit(1);
	}
	memcpy(o->s + o->n, s, n);
	o->n += n;
	o->s[o->n] = '\0';
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static void key_name(int nkeys, int i, char *out, size_t size)
{
	if (nkeys == 1)
		snprintf(out, size, "app.conf");
	else
		snprintf(out, size, "k%03d.conf", i);
}

/* About KEY_SIZE bytes of config that depend on the version and the key. */
static size_t key_content(const char *tag, int i, char *buf)
{
	size_t n = (size_t)snprintf(buf, KEY_SIZE, "# version %s, key %d\n", tag, i);
	for (int line = 0; n + 40 < KEY_SIZE; line++)
		n += (size_t)snprintf(buf + n, KEY_SIZE - n, "setting_%03d = %s-%d-%d\n", line, tag,
				      i, line);
	return n;
}

static void ts_name(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	unsigned long long r = ((unsigned long long)random() << 31 | (unsigned long long)random());
	snprintf(out, size, "..%04d_%02d_%02d_%02d_%02d_%02d.%llu", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 r % 9999999999ULL + 1);
}

static int rmtree_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	struct dirent *de;
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_DIR)
			rmtree_at(fd, de->d_name);
		else
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
	return unlinkat(dirfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

/* The kubelet's steps 1 to 9, numbered as in REFERENCE.md §1. */
static int kube_write(const char *dir, int nkeys, const char *tag, unsigned long long t[4])
{
	char old[NAME_MAX + 1], name[NAME_MAX + 1], key[64], buf[KEY_SIZE];
	int r = 0;

	t[0] = now_ns();
	mkdir(dir, 0755);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* 1. the current version */
	ssize_t oldlen = readlinkat(dfd, "..data", old, sizeof(old) - 1);
	old[oldlen > 0 ? oldlen : 0] = '\0';
	/* 2. the new timestamped directory, 0700 then 0755 */
	ts_name(name, sizeof(name));
	if (mkdirat(dfd, name, 0700) < 0 || fchmodat(dfd, name, 0755, 0) < 0) {
		r = -errno;
		goto out;
	}
	int nfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nfd < 0) {
		r = -errno;
		goto out;
	}
	/* 3. each key: open O_CREAT|O_TRUNC, write, close, chmod */
	for (int i = 0; i < nkeys && r == 0; i++) {
		key_name(nkeys, i, key, sizeof(key));
		size_t len = key_content(tag, i, buf);
		int fd = openat(nfd, key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
			r = -errno;
		if (fd >= 0)
			close(fd);
		if (r == 0 && fchmodat(nfd, key, 0644, 0) < 0)
			r = -errno;
	}
	close(nfd);
	if (r < 0)
		goto out;
	/* 5. ..data_tmp -> the new directory; 6. renamed over ..data: the atomic switch */
	unlinkat(dfd, "..data_tmp", 0); /* left over by a write that failed half-way */
	if (symlinkat(name, dfd, "..data_tmp") < 0) {
		r = -errno;
		goto out;
	}
	t[1] = now_ns();
	if (renameat(dfd, "..data_tmp", dfd, "..data") < 0) {
		r = -errno;
		goto out;
	}
	t[2] = now_ns();
	/* 7. top-level links for new keys (8: no key is ever removed here) */
	for (int i = 0; i < nkeys; i++) {
		char target[128];
		struct stat st;
		key_name(nkeys, i, key, sizeof(key));
		if (fstatat(dfd, key, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		snprintf(target, sizeof(target), "..data/%s", key);
		if (symlinkat(target, dfd, key) < 0) {
			r = -errno;
			goto out;
		}
	}
	/* 9. the old directory removed */
	if (old[0])
		r = rmtree_at(dfd, old);
out:
	close(dfd);
	t[3] = now_ns();
	return r;
}

/* Moves complete records from the pipe into o; sets *seen when the master reported a signal at
 * or after `after`. Returns false at EOF (the targets are gone). */
static bool take_records(Out *o, unsigned long long after, bool *seen)
{
	ssize_t n = read(records_fd, rbuf + rlen, sizeof(rbuf) - rlen);
	if (n == 0)
		return false;
	if (n < 0)
		return true;
	rlen += (size_t)n;
	char *line = rbuf, *nl;
	while ((nl = memchr(line, '\n', rlen - (size_t)(line - rbuf)))) {
		long pid;
		char role;
		int sig;
		unsigned long long ns;
		*nl = '\0';
		if (sscanf(line, "S %ld %c %d %llu", &pid, &role, &sig, &ns) == 4) {
			char rec[96];
			int len = snprintf(rec, sizeof(rec), "%s%ld:%c:%d:%llu", o->n ? "," : "",
					   pid, role, sig, ns);
			out_add(o, rec, (size_t)len);
			if (pid == master && ns >= after)
				*seen = true;
		}
		line = nl + 1;
	}
	rlen -= (size_t)(line - rbuf);
	memmove(rbuf, line, rlen);
	return true;
}

/* Collects records until the deadline; with expect, until the master's signal after `after`
 * and then settle_ns without a record. Returns whether it timed out waiting for the master. */
static bool collect(Out *o, unsigned long long after, bool expect, unsigned long long wait_ns,
		    unsigned long long settle_ns)
{
	bool seen = false;
	unsigned long long last_read = 0, deadline = after + wait_ns;

	if (records_fd < 0)
		return expect;
	for (;;) {
		unsigned long long now = now_ns();
		unsigned long long until = expect && seen ? last_read + settle_ns : deadline;
		if (now >= until)
			break;
		struct pollfd pfd = { .fd = records_fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)((until - now + 999999) / 1000000));
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		size_t before = o->n;
		if (!take_records(o, after, &seen))
			break;
		if (o->n != before)
			last_read = now_ns();
	}
	return expect && !seen;
}

static void reply_done(const unsigned long long t[4], bool timed_out, Out *o)
{
	printf("done %llu %llu %llu %llu %d %s\n", t[0], t[1], t[2], t[3], timed_out ? 1 : 0,
	       o->n ? o->s : "-");
	fflush(stdout);
	free(o->s);
}

static void error_reply(const char *what, int err)
{
	printf("error %s: %s\n", what, strerror(err));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char *line = NULL;
	size_t size = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: kubeswap RECORDS_FD\n");
		return 2;
	}
	records_fd = atoi(argv[1]);
	if (records_fd >= 0)
		fcntl(records_fd, F_SETFL, fcntl(records_fd, F_GETFL) | O_NONBLOCK);
	srandom((unsigned)now_ns());
	while (getline(&line, &size, stdin) > 0) {
		char cmd[16], dir[PATH_MAX], tag[64];
		int nkeys, expect;
		long wait_ms, settle_ms;
		unsigned long long t[4] = { 0 };
		Out o = { 0 };

		if (sscanf(line, "%15s", cmd) != 1)
			continue;
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "master") == 0 && sscanf(line, "%*s %ld", &master) == 1) {
			printf("ok\n");
		} else if (strcmp(cmd, "write") == 0 &&
			   sscanf(line, "%*s %4095s %d %63s", dir, &nkeys, tag) == 3) {
			if (nkeys < 1 || nkeys > MAX_KEYS) {
				error_reply("write", EINVAL);
				continue;
			}
			int r = kube_write(dir, nkeys, tag, t);
			if (r < 0) {
				error_reply(dir, -r);
				continue;
			}
			printf("ok\n");
		} else if (strcmp(cmd, "update") == 0 &&
			   sscanf(line, "%*s %4095s %d %63s %d %ld %ld", dir, &nkeys, tag, &expect,
				  &wait_ms, &settle_ms) == 6) {
			if (nkeys < 1 || nkeys > MAX_KEYS) {
				error_reply("update", EINVAL);
				continue;
			}
			int r = kube_write(dir, nkeys, tag, t);
			if (r < 0) {
				error_reply(dir, -r);
				continue;
			}
			/* From right before the rename: a signal may beat the clock read right
			 * after it, since the woken watcher can preempt us on this CPU as rename(2)
			 * returns. */
			bool to =
			    collect(&o, t[1], expect != 0, (unsigned long long)wait_ms * 1000000ULL,
				    (unsigned long long)settle_ms * 1000000ULL);
			reply_done(t, to, &o);
			continue;
		} else if (strcmp(cmd, "touch") == 0 &&
			   sscanf(line, "%*s %4095s %ld", dir, &wait_ms) == 2) {
			t[0] = t[1] = now_ns();
			if (utimensat(AT_FDCWD, dir, NULL, 0) < 0) {
				error_reply(dir, errno);
				continue;
			}
			t[2] = t[3] = now_ns();
			collect(&o, t[2], false, (unsigned long long)wait_ms * 1000000ULL, 0);
			reply_done(t, false, &o);
			continue;
		} else if (strcmp(cmd, "drain") == 0 && sscanf(line, "%*s %ld", &wait_ms) == 1) {
			/* quiet for wait_ms: a change whose master never reports, settle = wait */
			t[0] = t[1] = t[2] = now_ns();
			for (;;) {
				size_t before = o.n;
				collect(&o, now_ns(), false,
					(unsigned long long)wait_ms * 1000000ULL, 0);
				if (o.n == before)
					break;
			}
			t[3] = now_ns();
			reply_done(t, false, &o);
			continue;
		} else {
			printf("error bad command: %s", line);
		}
		fflush(stdout);
	}
	free(line);
	return 0;
}
