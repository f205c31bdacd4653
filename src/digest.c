/* digest.c: streaming SHA-256 (OpenSSL's libcrypto) over files and directory trees. */
#include "digest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
/* The low-level SHA-256 functions rather than EVP: an EVP fetch sets up OpenSSL 3's whole
 * default provider (a name map of every algorithm it has) for the one digest used here, which
 * tripled sigreload's resident memory (make bench: VmHWM 3.3 MiB against 1.2 MiB, static).
 * SHA256_Update runs the same SHA-NI/AVX code. OpenSSL 3 marks these functions deprecated:
 * the define keeps that a build-time note rather than a warning. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"
#include "cleanup.h"
#include "volume.h"

#define READ_CHUNK   (128 * 1024)
#define WALK_RETRIES 3

typedef struct Walk {
	DigestList *list;
	const DigestHooks *hooks;
	bool vanished;
	bool in_volume; /* below a ..data link, where only ..-names are the kubelet's */
	char data_target[NAME_MAX + 1]; /* where that ..data link pointed, "" outside a volume */
	size_t depth;
	dev_t dev[DIGEST_MAX_DEPTH];
	ino_t ino[DIGEST_MAX_DEPTH];
	char name[PATH_MAX];
} Walk;

/* SHA-256 of at most limit bytes of fd, ticking every DIGEST_TICK_BYTES. */
static int hash_fd(int fd, uint64_t limit, const DigestHooks *hooks, unsigned char out[DIGEST_LEN])
{
	static unsigned char buf[READ_CHUNK];
	uint64_t done = 0, next_tick = DIGEST_TICK_BYTES;
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	while (done < limit) {
		size_t want = limit - done < sizeof(buf) ? (size_t)(limit - done) : sizeof(buf);
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		SHA256_Update(&ctx, buf, (size_t)n);
		done += (uint64_t)n;
		if (done >= next_tick && hooks && hooks->tick) {
			next_tick += DIGEST_TICK_BYTES;
			if (hooks->tick(hooks->userdata))
				return -ECANCELED;
		}
	}
	SHA256_Final(out, &ctx);
	return 0;
}

int digest_fd(int fd, unsigned char out[DIGEST_LEN])
{
	return hash_fd(fd, UINT64_MAX, NULL, out);
}

int digest_file(const char *path, unsigned char out[DIGEST_LEN])
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return hash_fd(fd, st.st_size > 0 ? (uint64_t)st.st_size : DIGEST_PSEUDO_FILE_MAX, NULL,
		       out);
}

void digest_buf(const void *buf, size_t len, unsigned char out[DIGEST_LEN])
{
	SHA256_CTX ctx;

	/* not the one-shot SHA256(): in OpenSSL 3 it goes through EVP and its provider */
	SHA256_Init(&ctx);
	SHA256_Update(&ctx, buf, len);
	SHA256_Final(out, &ctx);
}

static int list_add(DigestList *l, const char *name, const unsigned char sha[DIGEST_LEN])
{
	if (l->n >= DIGEST_MAX_FILES)
		return -E2BIG;
	if (ARRAY_RESERVE(l->v, l->cap, l->n) < 0)
		return -ENOMEM;
	if (!(l->v[l->n].name = strdup(name)))
		return -ENOMEM;
	memcpy(l->v[l->n].sha, sha, DIGEST_LEN);
	l->n++;
	return 0;
}

static const char *file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return "FIFO";
	case S_IFSOCK:
		return "socket";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	default:
		return "unknown type";
	}
}

static void skip(Walk *w, const char *why)
{
	if (w->hooks && w->hooks->skip)
		w->hooks->skip(w->name, why, w->hooks->userdata);
}

/* The digest fails here: the caller is told where, then gets err. */
static int failed(Walk *w, int err)
{
	if (w->hooks && w->hooks->failed)
		w->hooks->failed(w->name, err, w->hooks->userdata);
	return -err;
}

/* Errors of the system rather than of a file: they pass, so the digest fails and is retried,
 * and a file never counts by its identity for them. */
static bool system_trouble(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS || err == EAGAIN ||
	       err == EINTR;
}

/* Whether a file that cannot be opened or read counts by its identity rather than failing. */
static bool counts_by_identity(const Walk *w, int err)
{
	return err == EACCES || err == EPERM ||
	       (w->hooks && w->hooks->identity_on_error && !system_trouble(err) && err != ENOENT &&
		err != ECANCELED);
}

/* A file (or directory) nobody lets us read counts by what identifies its version: the kubelet
 * gives every update new inodes and a new ..data target, so a rotation still changes the
 * digest. A touch changes it too (its ctime): a spurious reload is the price of not reading. */
static int add_identity(Walk *w, const struct stat *st, int err)
{
	unsigned char sha[DIGEST_LEN];
	char id[NAME_MAX + 160];

	int n = snprintf(id, sizeof(id), "unreadable\n%s\n%ju:%ju\n%jd.%09ld\n%jd\n",
			 w->data_target, (uintmax_t)st->st_dev, (uintmax_t)st->st_ino,
			 (intmax_t)st->st_ctim.tv_sec, st->st_ctim.tv_nsec, (intmax_t)st->st_size);
	digest_buf(id, (size_t)n < sizeof(id) ? (size_t)n : sizeof(id) - 1, sha);
	if (w->hooks && w->hooks->unreadable)
		w->hooks->unreadable(w->name, err, w->hooks->userdata);
	return list_add(w->list, w->name, sha);
}

/* Something that is not a file is never opened. Below the rule's path it is left out; as the
 * path itself it fails the digest (-EINVAL), so the rule is held rather than emptied. */
static int not_a_file(Walk *w, mode_t mode)
{
	char why[64];

	snprintf(why, sizeof(why), "not a regular file (%s)%s", file_kind(mode),
		 w->depth == 0 ? "" : ", skipping");
	skip(w, why);
	return w->depth == 0 ? -EINVAL : 0;
}

/* A name that cannot be read. Permissions, loops and overlong names are the tree's own: reported
 * and skipped, so that the rest still counts. Anything else (no fd left, no memory, I/O) is
 * passing trouble: the whole digest fails, and a partial one is never taken for a change.
 * ENOENT: the name vanished while we read (see Walk.vanished). */
static int fault(Walk *w, const char *what, int err)
{
	char why[128];

	if (w->depth == 0)
		return failed(w, err); /* the rule's path itself: nothing read, nothing changed */
	switch (err) {
	case ENOENT:
		w->vanished = true;
		return 0;
	case ELOOP:
		skip(w, "symlink loop, skipping");
		return 0;
	case EACCES:
	case EPERM:
	case ENAMETOOLONG:
		snprintf(why, sizeof(why), "cannot %s (%s), skipping", what, strerror(err));
		skip(w, why);
		return 0;
	default:
		return failed(w, err);
	}
}

/* Hashes dirfd/rel (rel may be an absolute path with dirfd AT_FDCWD) if it is still a regular
 * file when opened: a FIFO put there since the stat is never read, nor waited for. */
static int walk_file(Walk *w, int dirfd, const char *rel, const struct stat *seen)
{
	unsigned char sha[DIGEST_LEN];
	struct stat st;

	_cleanup_close_ int fd = openat(dirfd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && counts_by_identity(w, errno))
		return add_identity(w, seen, errno);
	if (fd < 0)
		return fault(w, "open", errno);
	if (fstat(fd, &st) < 0)
		return failed(w, errno);
	if (!S_ISREG(st.st_mode))
		return not_a_file(w, st.st_mode);
	/* Up to the size it has now: a file that grows while it is read still ends. */
	uint64_t limit = st.st_size > 0 ? (uint64_t)st.st_size : DIGEST_PSEUDO_FILE_MAX;
	int r = hash_fd(fd, limit, w->hooks, sha);
	if (r == -ECANCELED)
		return r;
	if (r < 0 && counts_by_identity(w, -r))
		return add_identity(w, &st, -r);
	if (r < 0)
		return fault(w, "read", -r);
	return list_add(w->list, w->name, sha);
}

static int walk_dir(Walk *w, int dirfd);

/* Visits one name of a directory: w->name already ends with it. */
static int walk_entry(Walk *w, int dirfd, const char *rel)
{
	struct stat st;

	if (fstatat(dirfd, rel, &st, 0) < 0) {
		int err = errno;
		if (err == ENOENT && fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			skip(w, "dangling symlink, skipping");
			return 0;
		}
		return fault(w, "stat", err);
	}
	if (S_ISREG(st.st_mode))
		return walk_file(w, dirfd, rel, &st);
	if (!S_ISDIR(st.st_mode))
		return not_a_file(w, st.st_mode);
	for (size_t i = 0; i < w->depth; i++)
		if (w->dev[i] == st.st_dev && w->ino[i] == st.st_ino) {
			skip(w, "directory loop (a symlink to one of its parents), skipping");
			return 0;
		}
	if (w->depth >= DIGEST_MAX_DEPTH) {
		skip(w, "more than 32 directories deep, skipping");
		return 0;
	}
	_cleanup_close_ int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && counts_by_identity(w, errno))
		return add_identity(w, &st, errno);
	if (fd < 0)
		return fault(w, "open the directory", errno);
	w->dev[w->depth] = st.st_dev;
	w->ino[w->depth] = st.st_ino;
	w->depth++;
	int r = walk_dir(w, fd);
	w->depth--;
	return r;
}

/* Dot-names are skipped (editors' swap files, the volume's ..data and ..2026_… internals),
 * except below ..data, where a key may start with one dot (".env") and only ..-names exist
 * for the kubelet's own use. */
static bool hidden(const Walk *w, const char *name)
{
	return volume_hidden(name, w->in_volume);
}

static int walk_names(Walk *w, int fd)
{
	size_t base = strlen(w->name);
	struct stat st;
	struct dirent *de;
	int r = 0;

	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup < 0)
		return -errno;
	_cleanup_closedir_ DIR *dir = fdopendir(dup);
	if (!dir) {
		int err = -errno;
		close(dup);
		return err;
	}
	while ((errno = 0, de = readdir(dir))) {
		if (hidden(w, de->d_name))
			continue;
		int n = snprintf(w->name + base, sizeof(w->name) - base, "%s%s",
				 base > 0 && w->name[base - 1] == '/' ? "" : "/", de->d_name);
		if (n < 0 || (size_t)n >= sizeof(w->name) - base) {
			w->name[base] = '\0';
			skip(w, "name longer than PATH_MAX below this directory, skipping");
			continue;
		}
		r = walk_entry(w, fd, de->d_name);
		w->name[base] = '\0';
		if (r < 0)
			return r;
	}
	if (errno != 0)
		return -errno;
	/* The directory was removed while we read it (the kubelet's step 9): start again. */
	if (fstat(fd, &st) == 0 && st.st_nlink == 0)
		w->vanished = true;
	return 0;
}

static int walk_dir(Walk *w, int dirfd)
{
	/* An AtomicWriter volume: its keys are the entries of the directory ..data points to, read
	 * through one fd so that a swap during the walk cannot mix two versions. */
	_cleanup_close_ int data = openat(dirfd, "..data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char outer[sizeof(w->data_target)];
	bool was = w->in_volume;

	if (data < 0)
		return walk_names(w, dirfd);
	memcpy(outer, w->data_target, sizeof(outer));
	/* read after the open: an unreadable key's identity may name a newer version than the one
	 * read, never an older one, and the next event brings the digest up to date */
	ssize_t n = readlinkat(dirfd, "..data", w->data_target, sizeof(w->data_target) - 1);
	w->data_target[n > 0 ? n : 0] = '\0';
	w->in_volume = true;
	int r = walk_names(w, data);
	w->in_volume = was;
	memcpy(w->data_target, outer, sizeof(outer));
	return r;
}

int digest_tree(const char *path, DigestList *list, const DigestHooks *hooks)
{
	Walk *w = calloc(1, sizeof(*w));
	struct stat st;
	int r;

	if (!w)
		return -ENOMEM;
	*w = (Walk){ .list = list, .hooks = hooks };
	if (strlen(path) >= sizeof(w->name)) {
		free(w);
		return -ENAMETOOLONG;
	}
	strcpy(w->name, path);
	if (stat(path, &st) < 0) {
		r = failed(w, errno);
	} else if (S_ISREG(st.st_mode)) {
		r = walk_file(w, AT_FDCWD, path, &st);
	} else if (S_ISDIR(st.st_mode)) {
		/* strip trailing slashes so that names read "/dir/x", not "/dir//x" */
		for (size_t n = strlen(w->name); n > 1 && w->name[n - 1] == '/'; n--)
			w->name[n - 1] = '\0';
		r = walk_entry(w, AT_FDCWD, path);
	} else {
		r = not_a_file(w, st.st_mode);
	}
	if (r == 0 && w->vanished)
		r = -EAGAIN;
	free(w);
	return r;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const DigestEntry *)a)->name, ((const DigestEntry *)b)->name);
}

void digest_list_sort(DigestList *l)
{
	size_t out = 0;

	if (l->n > 1) /* qsort(NULL, 0, ...) is undefined, and an empty rule has no list */
		qsort(l->v, l->n, sizeof(*l->v), entry_cmp);
	for (size_t i = 0; i < l->n; i++) {
		if (out > 0 && strcmp(l->v[out - 1].name, l->v[i].name) == 0) {
			free(l->v[i].name);
			continue;
		}
		l->v[out++] = l->v[i];
	}
	l->n = out;
}

void digest_list_done(DigestList *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	*l = (DigestList){ 0 };
}

char *digest_hex(const unsigned char sha[DIGEST_LEN], char out[DIGEST_HEX_LEN])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < DIGEST_LEN; i++) {
		out[2 * i] = hex[sha[i] >> 4];
		out[2 * i + 1] = hex[sha[i] & 15];
	}
	out[2 * DIGEST_LEN] = '\0';
	return out;
}

char *digest_line(const DigestEntry *e)
{
	size_t len = strlen(e->name);
	bool escape = strpbrk(e->name, "\\\n\r") != NULL;
	char *line = malloc(1 + DIGEST_HEX_LEN + 2 + 2 * len + 2), *p = line;

	if (!line)
		return NULL;
	if (escape)
		*p++ = '\\';
	digest_hex(e->sha, p);
	p += DIGEST_HEX_LEN - 1;
	*p++ = ' ';
	*p++ = ' ';
	for (const char *s = e->name; *s; s++) {
		if (escape && (*s == '\\' || *s == '\n' || *s == '\r')) {
			*p++ = '\\';
			*p++ = *s == '\\' ? '\\' : *s == '\n' ? 'n' : 'r';
		} else {
			*p++ = *s;
		}
	}
	*p++ = '\n';
	*p = '\0';
	return line;
}

int digest_total(const DigestList *l, unsigned char out[DIGEST_LEN])
{
	SHA256_CTX ctx;

	SHA256_Init(&ctx);
	for (size_t i = 0; i < l->n; i++) {
		_cleanup_free_ char *line = digest_line(&l->v[i]);
		if (!line)
			return -ENOMEM;
		SHA256_Update(&ctx, line, strlen(line));
	}
	SHA256_Final(out, &ctx);
	return 0;
}

int digest_paths(char *const *paths, size_t n, DigestList *list, unsigned char total[DIGEST_LEN],
		 const DigestHooks *hooks, size_t *bad)
{
	int r = 0;

	for (int attempt = 0; attempt < WALK_RETRIES; attempt++) {
		digest_list_done(list);
		for (size_t i = 0; i < n; i++)
			if ((r = digest_tree(paths[i], list, hooks)) < 0) {
				if (bad)
					*bad = i;
				break;
			}
		if (r != -EAGAIN)
			break;
	}
	if (r < 0) {
		digest_list_done(list);
		return r;
	}
	digest_list_sort(list);
	return digest_total(list, total);
}
