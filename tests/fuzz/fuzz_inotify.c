/* fuzz_inotify: the inotify event-buffer handling of src/watch.c, in two steps per input.
 *
 * 1. The raw bytes go to watch_parse_events(), the pure record walker: whatever they are
 *    (misaligned records, names without a NUL, lengths past the end), it must return 0 or -EIO
 *    and hand the callback only names that end inside the buffer.
 * 2. Records of the kernel's shape (len a multiple of 16, the name NUL-padded: the only shape
 *    read(2) on inotify returns) are built from the input (wd, mask, cookie, name; the first
 *    byte can ask for a record cut short at the end) and fed to the real watch_read(): one Watch
 *    is armed with real inotify watches on a small tree (a ConfigMap-like volume, a plain tree
 *    with a symlink loop, a file, a missing path), so its table holds the real wds; a pipe
 *    holding the records is dup2()ed onto the inotify fd's number, watch_read() reads it as if
 *    the kernel had written it (dispatch, the re-arm decision, overflow), and the real inotify fd
 *    is put back. The paths the records made dirty are planned again (watch_update), and since
 *    the tree did not change, the set must be the one a Watch planned from scratch makes, however
 *    false the records were (a watch said gone that the kernel kept, a directory said moved). */
#include <errno.h>
#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stdbool.h>
#include <ftw.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "watch.h"

#define N_PATHS 5

static char root[64];
static char paths[N_PATHS][256];
static size_t changed, errors, overflows;

static void on_changed(unsigned owner, const char *path, const char *dir, const char *name,
		       uint32_t mask, void *userdata)
{
	(void)dir;
	(void)mask;
	(void)userdata;
	FUZZ_CHECK(owner < N_PATHS && strcmp(path, paths[owner]) == 0, "changed(%u, %s)", owner, path);
	if (name)
		FUZZ_CHECK(strlen(name) < 4096, "a name longer than any record");
	changed++;
}

static void on_error(unsigned owner, const char *path, const char *dir, int err, void *userdata)
{
	(void)dir;
	(void)userdata;
	FUZZ_CHECK(owner < N_PATHS && strcmp(path, paths[owner]) == 0 && err < 0, "error(%u, %s, %d)",
		   owner, path, err);
	errors++;
}

static void on_overflow(void *userdata)
{
	(void)userdata;
	overflows++;
}

static void put(const char *rel, const char *content)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (content) {
		FILE *f = fopen(p, "w");
		FUZZ_CHECK(f, "cannot create %s", p);
		fputs(content, f);
		fclose(f);
	} else {
		FUZZ_CHECK(mkdir(p, 0755) == 0, "cannot mkdir %s", p);
	}
}

static void link_at(const char *target, const char *rel)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FUZZ_CHECK(symlink(target, p) == 0, "cannot symlink %s", p);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void cleanup(void)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_setup(LOG_LOGFMT, LEVEL_ERROR);
	strcpy(root, "/tmp/fuzz-inotify-XXXXXX");
	FUZZ_CHECK(mkdtemp(root), "mkdtemp");
	atexit(cleanup);
	__sanitizer_set_death_callback(cleanup); /* a crash leaves no temp dir behind either */
	put("vol", NULL);
	put("vol/..2026_01_01_00_00_00.1", NULL);
	put("vol/..2026_01_01_00_00_00.1/app.conf", "v1\n");
	link_at("..2026_01_01_00_00_00.1", "vol/..data");
	link_at("..data/app.conf", "vol/app.conf");
	put("plain", NULL);
	put("plain/a.conf", "a\n");
	put("plain/sub", NULL);
	put("plain/sub/b.conf", "b\n");
	link_at("../plain", "plain/sub/loop");
	put("file.conf", "f\n");
	snprintf(paths[0], sizeof(paths[0]), "%s/vol", root);
	snprintf(paths[1], sizeof(paths[1]), "%s/plain", root);
	snprintf(paths[2], sizeof(paths[2]), "%s/file.conf", root);
	snprintf(paths[3], sizeof(paths[3]), "%s/missing/deeper/x.conf", root);
	snprintf(paths[4], sizeof(paths[4]), "%s/vol/app.conf", root);
	return 0;
}

static Watch *w;
static int real_fd = -1; /* a dup of the Watch's inotify fd, put back after each input */
static char *planned; /* the set planned from scratch */

static void arm(void)
{
	WatchOps ops = { .changed = on_changed, .error = on_error, .overflow = on_overflow };
	WatchPath wp[N_PATHS];

	for (unsigned i = 0; i < N_PATHS; i++)
		wp[i] = (WatchPath){ .path = paths[i], .owner = i };
	FUZZ_CHECK(watch_new(&ops, &w) == 0, "watch_new");
	int armed = watch_set(w, wp, N_PATHS);
	FUZZ_CHECK(armed > 0, "watch_set: %d", armed);
	planned = watch_dump(w);
	FUZZ_CHECK(planned, "watch_dump");
	real_fd = fcntl(watch_inotify_source(w)->fd, F_DUPFD_CLOEXEC, 100);
	FUZZ_CHECK(real_fd >= 0, "dup");
}

#define BUF_MAX 16384

static const char *raw_end;

/* Step 1's callback: a name must be a C string that ends inside the input. */
static void check_raw(int wd, uint32_t mask, const char *name, void *userdata)
{
	(void)wd;
	(void)mask;
	(void)userdata;
	if (name)
		FUZZ_CHECK(name < raw_end && memchr(name, '\0', (size_t)(raw_end - name)),
			   "a name that runs past the records");
}

static uint8_t take(const uint8_t **p, size_t *n)
{
	if (*n == 0)
		return 0;
	(*n)--;
	return *(*p)++;
}

/* Records as the kernel writes them, from the input; returns the length. */
static size_t build(const uint8_t *in, size_t n, uint8_t *out)
{
	static const uint32_t masks[] = { IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO,
					  IN_CLOSE_WRITE, IN_MODIFY, IN_ATTRIB, IN_DELETE_SELF,
					  IN_MOVE_SELF, IN_IGNORED, IN_UNMOUNT, IN_Q_OVERFLOW,
					  IN_ISDIR };
	bool truncate = n > 0 && (in[0] & 1);
	size_t len = 0;

	if (n > 0)
		in++, n--;
	while (n > 0) {
		struct inotify_event ev = { 0 };
		ev.wd = (int)(take(&in, &n) % 12) - 1; /* -1..10: the armed ones and others */
		uint8_t m = take(&in, &n);
		for (unsigned b = 0; b < 8; b++) /* a few bits from the list, or any bits */
			if (m & (1u << b))
				ev.mask |= masks[(b * 5 + take(&in, &n)) % (sizeof(masks) / sizeof(*masks))];
		if (m == 0xff)
			ev.mask = (uint32_t)take(&in, &n) << 24 | (uint32_t)take(&in, &n) << 16 |
				  (uint32_t)take(&in, &n) << 8 | take(&in, &n);
		ev.cookie = take(&in, &n);
		size_t name = take(&in, &n) % 48;
		if (name > n)
			name = n;
		ev.len = name ? (uint32_t)((name + 1 + 15) / 16 * 16) : 0;
		if (len + sizeof(ev) + ev.len > BUF_MAX)
			break;
		memcpy(out + len, &ev, sizeof(ev));
		memset(out + len + sizeof(ev), 0, ev.len);
		memcpy(out + len + sizeof(ev), in, name);
		in += name, n -= name;
		len += sizeof(ev) + ev.len;
	}
	if (truncate && len >= sizeof(struct inotify_event))
		len -= 1 + len % 7;
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[BUF_MAX];
	int pipefd[2];

	if (!w)
		arm();
	raw_end = (const char *)data + size;
	int pr = watch_parse_events((const char *)data, size, check_raw, NULL);
	FUZZ_CHECK(pr == 0 || pr == -EIO, "watch_parse_events returned %d", pr);
	size_t len = build(data, size, buf);
	FUZZ_CHECK(pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2");
	FUZZ_CHECK(fcntl(pipefd[1], F_SETPIPE_SZ, 65536) >= 0, "F_SETPIPE_SZ");
	FUZZ_CHECK(len == 0 || write(pipefd[1], buf, len) == (ssize_t)len, "write");
	/* the write end stays open: an empty pipe then reads EAGAIN, as an empty inotify queue
	 * does (at EOF read() returns 0, which inotify never does, and watch_read() would spin) */
	int fd = watch_inotify_source(w)->fd;
	FUZZ_CHECK(dup2(pipefd[0], fd) == fd, "dup2");
	close(pipefd[0]);

	changed = errors = overflows = 0;
	bool rearm = false;
	int r = watch_read(w, &rearm);
	FUZZ_CHECK(r == 0 || r == -EIO, "watch_read returned %d", r);
	FUZZ_CHECK(overflows <= 1, "%zu overflow reports for one read", overflows);
	if (overflows)
		FUZZ_CHECK(changed >= N_PATHS, "an overflow reported %zu of %d paths", changed, N_PATHS);

	close(pipefd[1]);
	/* the real inotify fd back: the paths made dirty are planned again on the real tree */
	FUZZ_CHECK(dup2(real_fd, fd) == fd, "dup2 back");
	if (overflows) /* its re-arm ran on the pipe: again, on the real fd */
		FUZZ_CHECK(watch_arm(w) > 0, "re-arm");
	else if (rearm)
		FUZZ_CHECK(watch_update(w) > 0, "update");
	char *now = watch_dump(w);
	FUZZ_CHECK(now && strcmp(now, planned) == 0, "updated set:\n%s\nplanned from scratch:\n%s",
		   now, planned);
	free(now);
	FUZZ_CHECK(watch_arm(w) > 0, "re-arm");
	return 0;
}
