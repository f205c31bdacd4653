/* Digests: SHA-256 vectors, sha256sum lines, the rule digest, walks over real trees. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "digest.h"

/* SHA-256 in one call, independent of digest.c's streaming. */
static void sha256(const void *data, size_t len, unsigned char out[DIGEST_LEN])
{
	assert_true(EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL));
}

static const char *hex_of(const unsigned char sha[DIGEST_LEN])
{
	static char buf[DIGEST_HEX_LEN];
	return digest_hex(sha, buf);
}

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("digest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* FIPS 180-2 appendix B and the usual empty-string vector. */
static void test_sha256_vectors(void **state)
{
	static const struct {
		const char *in;
		size_t repeat;
		const char *hex;
	} cases[] = {
		{ "", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
		  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
		{ "a", 1000000,
		  "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0" },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		size_t n = strlen(cases[i].in), len = n * cases[i].repeat;
		_cleanup_free_ char *data = malloc(len + 1);
		unsigned char sha[DIGEST_LEN];
		assert_non_null(data);
		for (size_t r = 0; r < cases[i].repeat; r++)
			memcpy(data + r * n, cases[i].in, n);
		_cleanup_close_ int fd = memfd_with(data, len);
		assert_int_equal(digest_fd(fd, sha), 0);
		assert_string_equal(hex_of(sha), cases[i].hex);
	}
}

/* Sizes around the read chunk, through a file and through a pipe (no size, no seeking). */
static void test_digest_fd_streaming(void **state)
{
	static const size_t sizes[] = { 1, 4095, 4096, 131071, 131072, 131073, 262144, 300001 };
	(void)state;

	for (size_t i = 0; i < ELEMS(sizes); i++) {
		_cleanup_free_ unsigned char *data = malloc(sizes[i]);
		unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
		assert_non_null(data);
		for (size_t j = 0; j < sizes[i]; j++)
			data[j] = (unsigned char)(j * 2654435761u >> 13);
		sha256(data, sizes[i], want);
		_cleanup_close_ int fd = memfd_with(data, sizes[i]);
		assert_int_equal(digest_fd(fd, got), 0);
		assert_memory_equal(got, want, DIGEST_LEN);
	}

	int p[2];
	unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "hello\n", 6), 6);
	close(p[1]);
	assert_int_equal(digest_fd(p[0], got), 0);
	close(p[0]);
	sha256("hello\n", 6, want);
	assert_memory_equal(got, want, DIGEST_LEN);
}

static void test_digest_fd_errors(void **state)
{
	unsigned char sha[DIGEST_LEN];
	(void)state;

	assert_int_equal(digest_fd(-1, sha), -EBADF);
	_cleanup_close_ int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(digest_fd(dir, sha), -EISDIR);
}

static void test_digest_line(void **state)
{
	static const struct {
		const char *name;
		bool escaped; /* sha256sum's mark: the line starts with '\\' */
		const char *shown;
	} cases[] = {
		{ "/etc/app/a.yaml", false, "/etc/app/a.yaml" },
		{ "with space", false, "with space" },
		{ "", false, "" },
		{ "back\\slash", true, "back\\\\slash" },
		{ "new\nline", true, "new\\nline" },
		{ "carriage\rreturn", true, "carriage\\rreturn" },
		{ "\\\n\r", true, "\\\\\\n\\r" },
		{ "tab\there", false, "tab\there" },
		{ "caf\xc3\xa9 \xff", false, "caf\xc3\xa9 \xff" },
	};
	DigestEntry e = { 0 };
	(void)state;

	for (size_t i = 0; i < DIGEST_LEN; i++)
		e.sha[i] = (unsigned char)(i * 8 + 1);
	const char *hex = "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9";
	assert_string_equal(hex_of(e.sha), hex);
	for (size_t i = 0; i < ELEMS(cases); i++) {
		e.name = (char *)cases[i].name;
		_cleanup_free_ char *line = digest_line(&e);
		_cleanup_free_ char *want =
		    xasprintf("%s%s  %s\n", cases[i].escaped ? "\\" : "", hex, cases[i].shown);
		assert_string_equal(line, want);
	}
}

static void add_entry(DigestList *l, const char *name, const char *content)
{
	DigestEntry *v = reallocarray(l->v, l->n + 1, sizeof(*v));

	assert_non_null(v);
	l->v = v;
	l->cap = l->n + 1;
	l->v[l->n].name = strdup(name);
	assert_non_null(l->v[l->n].name);
	sha256(content, strlen(content), l->v[l->n].sha);
	l->n++;
}

/* The rule digest is SHA-256 of the sha256sum lines, in order: written out here by hand. */
static void test_digest_total(void **state)
{
	DigestList l = { 0 };
	unsigned char got[DIGEST_LEN], want[DIGEST_LEN], sha_x[DIGEST_LEN], sha_y[DIGEST_LEN];
	char text[512], hx[DIGEST_HEX_LEN], hy[DIGEST_HEX_LEN];
	(void)state;

	assert_int_equal(digest_total(&l, got), 0);
	sha256("", 0, want);
	assert_memory_equal(got, want, DIGEST_LEN); /* nothing at all: the empty string's */

	add_entry(&l, "/v/a", "x");
	add_entry(&l, "/v/b\nc", "y");
	sha256("x", 1, sha_x);
	sha256("y", 1, sha_y);
	int n = snprintf(text, sizeof(text), "%s  /v/a\n\\%s  /v/b\\nc\n", digest_hex(sha_x, hx),
			 digest_hex(sha_y, hy));
	sha256(text, (size_t)n, want);
	assert_int_equal(digest_total(&l, got), 0);
	assert_memory_equal(got, want, DIGEST_LEN);
	digest_list_done(&l);
}

static void test_digest_list_sort(void **state)
{
	static const char *const in[] = { "/v/b", "/v/a/x",	 "/v/a.x", "/v/B", "/v/b",
					  "/v/a", "/v/\xc3\xa9", "/v/a/x", "/v/b" };
	static const char *const want[] = { "/v/B",   "/v/a", "/v/a.x",
					    "/v/a/x", "/v/b", "/v/\xc3\xa9" };
	DigestList l = { 0 };
	(void)state;

	for (size_t i = 0; i < ELEMS(in); i++)
		add_entry(&l, in[i], "same");
	digest_list_sort(&l);
	assert_int_equal(l.n, ELEMS(want));
	for (size_t i = 0; i < ELEMS(want); i++)
		assert_string_equal(l.v[i].name, want[i]); /* bytewise, like LC_ALL=C sort */
	digest_list_sort(&l); /* sorting again changes nothing */
	assert_int_equal(l.n, ELEMS(want));
	digest_list_done(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	digest_list_sort(&l); /* an empty list is fine */
}

static void put(const char *root, const char *rel, const char *content)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", root, rel);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
}

static void dir(const char *root, const char *rel)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", root, rel);

	if (mkdir(path, 0755) < 0)
		fail_msg("cannot mkdir %s: %s", path, strerror(errno));
}

static void link_to(const char *root, const char *rel, const char *target)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", root, rel);

	if (symlink(target, path) < 0)
		fail_msg("cannot symlink %s: %s", path, strerror(errno));
}

typedef struct Skipped {
	char names[32][256];
	char whys[32][128];
	size_t n;
} Skipped;

static void on_skip(const char *name, const char *why, void *userdata)
{
	Skipped *s = userdata;

	assert_true(s->n < ELEMS(s->names));
	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
	snprintf(s->whys[s->n], sizeof(s->whys[0]), "%s", why);
	s->n++;
}

static const char *skip_reason(const Skipped *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->whys[i];
	return NULL;
}

/* Walks root into a sorted list: "REL=content-sha" per file, REL relative to root. */
static void walk(const char *root, DigestList *l, Skipped *skipped)
{
	*l = (DigestList){ 0 };
	if (skipped)
		*skipped = (Skipped){ 0 };
	int r = digest_tree(
	    root, l, &(DigestHooks){ .skip = skipped ? on_skip : NULL, .userdata = skipped });
	if (r != 0)
		fail_msg("digest_tree(%s) = %d", root, r);
	digest_list_sort(l);
}

static void assert_entries(const char *root, const DigestList *l, const char *const *want, size_t n)
{
	size_t rl = strlen(root);

	for (size_t i = 0; i < l->n && i < n; i++) {
		const char *name = want[i], *content = strchr(name, '=') + 1;
		unsigned char sha[DIGEST_LEN];
		if (strncmp(l->v[i].name, root, rl) != 0 || l->v[i].name[rl] != '/' ||
		    strncmp(l->v[i].name + rl + 1, name, (size_t)(content - 1 - name)) != 0 ||
		    l->v[i].name[rl + 1 + (size_t)(content - 1 - name)] != '\0')
			fail_msg("entry %zu is %s, want %s/%.*s", i, l->v[i].name, root,
				 (int)(content - 1 - name), name);
		sha256(content, strlen(content), sha);
		assert_memory_equal(l->v[i].sha, sha, DIGEST_LEN);
	}
	if (l->n != n)
		fail_msg("%zu entries, want %zu (first extra: %s)", l->n, n,
			 l->n > n ? l->v[n].name : want[l->n]);
}

static void test_tree_plain(void **state)
{
	const char *root = *state;
	static const char *const want[] = {
		"a.conf=alpha",	   "b b=spaces",  "link-dir/c=gamma",	"link-dir/deeper/d=delta",
		"link-file=alpha", "sub/c=gamma", "sub/deeper/d=delta", "z\\n=escaped",
	};
	DigestList l;
	Skipped s;

	put(root, "a.conf", "alpha");
	put(root, "b b", "spaces");
	put(root, "z\\n", "escaped");
	dir(root, "sub");
	put(root, "sub/c", "gamma");
	dir(root, "sub/deeper");
	put(root, "sub/deeper/d", "delta");
	link_to(root, "link-file", "a.conf");
	link_to(root, "link-dir", "sub");
	/* left out: dot-names, dangling links, loops */
	put(root, ".hidden", "never");
	dir(root, ".git");
	put(root, ".git/config", "never");
	put(root, "sub/.swp", "never");
	link_to(root, "dangling", "nowhere");
	link_to(root, "loop1", "loop2");
	link_to(root, "loop2", "loop1");
	link_to(root, "sub/up", "..");

	walk(root, &l, &s);
	assert_entries(root, &l, want, ELEMS(want));
	_cleanup_free_ char *dangling = xasprintf("%s/dangling", root);
	_cleanup_free_ char *loop1 = xasprintf("%s/loop1", root);
	_cleanup_free_ char *up = xasprintf("%s/sub/up", root);
	_cleanup_free_ char *link_up = xasprintf("%s/link-dir/up", root);
	assert_string_equal(skip_reason(&s, dangling), "dangling symlink, skipping");
	assert_string_equal(skip_reason(&s, loop1), "symlink loop, skipping");
	assert_string_equal(skip_reason(&s, up),
			    "directory loop (a symlink to one of its parents), skipping");
	assert_string_equal(skip_reason(&s, link_up),
			    "directory loop (a symlink to one of its parents), skipping");
	assert_int_equal(s.n, 5); /* loop2 too; never a dot-name */
	digest_list_done(&l);

	/* the path as given names the entries: trailing slashes do not double */
	_cleanup_free_ char *slashes = xasprintf("%s///", root);
	walk(slashes, &l, NULL);
	assert_entries(root, &l, want, ELEMS(want));
	digest_list_done(&l);
}

/* A FIFO is reported and skipped, never opened: opening it would block (or, non-blocking,
 * show up as IN_OPEN on a watch of the FIFO, which is what this test looks for). */
static void test_tree_fifo_never_opened(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *fifo = xasprintf("%s/pipe", root);
	_cleanup_close_ int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	DigestList l;
	Skipped s;

	put(root, "a", "alpha");
	assert_int_equal(mkfifo(fifo, 0644), 0);
	link_to(root, "link-to-pipe", "pipe");
	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, fifo, IN_OPEN | IN_ACCESS | IN_CLOSE) >= 0);

	alarm(10); /* if a blocking open slipped in, die here rather than hang the run */
	walk(root, &l, &s);
	assert_int_equal(l.n, 1);
	assert_string_equal(skip_reason(&s, fifo), "not a regular file (FIFO), skipping");
	_cleanup_free_ char *link = xasprintf("%s/link-to-pipe", root);
	assert_string_equal(skip_reason(&s, link), "not a regular file (FIFO), skipping");
	digest_list_done(&l);

	/* the FIFO as the rule's path itself */
	assert_int_equal(digest_tree(fifo, &l, &(DigestHooks){ .skip = on_skip, .userdata = &s }),
			 -EINVAL);
	assert_int_equal(l.n, 0);
	alarm(0);
	assert_int_equal(read(in, buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);

	/* and the watch does see an open: this test would catch one */
	_cleanup_close_ int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(read(in, buf, sizeof(buf)) > 0);
	assert_true(((struct inotify_event *)buf)->mask & IN_OPEN);
}

static void test_tree_errors(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *missing = xasprintf("%s/missing", root);
	_cleanup_free_ char *dangling = xasprintf("%s/dangling", root);
	_cleanup_free_ char *file = xasprintf("%s/file", root);
	DigestList l = { 0 };

	link_to(root, "dangling", "nowhere");
	put(root, "file", "content");
	assert_int_equal(digest_tree(missing, &l, NULL), -ENOENT);
	assert_int_equal(digest_tree(dangling, &l, NULL), -ENOENT);
	assert_int_equal(l.n, 0);

	/* a file as the path: one entry, named as given */
	assert_int_equal(digest_tree(file, &l, NULL), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].name, file);
	digest_list_done(&l);
}

static void test_tree_limits(void **state)
{
	const char *root = *state;
	char rel[4096] = "d";
	DigestList l = { 0 };
	Skipped s = { 0 };

	/* DIGEST_MAX_DEPTH directories below the root are walked; one more is not */
	dir(root, rel);
	for (int i = 1; i <= DIGEST_MAX_DEPTH; i++) {
		put(root, strcat(rel, "/f"), "x");
		rel[strlen(rel) - 2] = '\0';
		dir(root, strcat(rel, "/d"));
	}
	assert_int_equal(digest_tree(root, &l, &(DigestHooks){ .skip = on_skip, .userdata = &s }),
			 0);
	assert_int_equal(l.n, DIGEST_MAX_DEPTH - 1);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.whys[0], "more than 32 directories deep, skipping");
	digest_list_done(&l);

	/* DIGEST_MAX_FILES files per rule */
	dir(root, "many");
	for (int i = 0; i < DIGEST_MAX_FILES - DIGEST_MAX_DEPTH + 1; i++) {
		snprintf(rel, sizeof(rel), "many/%d", i);
		put(root, rel, "");
	}
	assert_int_equal(digest_tree(root, &l, NULL), 0);
	assert_int_equal(l.n, DIGEST_MAX_FILES);
	digest_list_done(&l);
	put(root, "one-too-many", "");
	assert_int_equal(digest_tree(root, &l, NULL), -E2BIG);
	digest_list_done(&l);
}

/* Writes "KEY=content" keys into vol/tsdir, with the sub-directories a KEY with '/' needs. */
static void write_keys(const char *vol, const char *tsdir, const char *const *keys, size_t n)
{
	dir(vol, tsdir);
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(keys[i], '=');
		_cleanup_free_ char *rel =
		    xasprintf("%s/%.*s", tsdir, (int)(eq - keys[i]), keys[i]);
		for (char *slash = strchr(rel + strlen(tsdir) + 1, '/'); slash;
		     slash = strchr(slash + 1, '/')) {
			struct stat st;
			*slash = '\0';
			_cleanup_free_ char *full = xasprintf("%s/%s", vol, rel);
			if (stat(full, &st) < 0)
				dir(vol, rel);
			*slash = '/';
		}
		put(vol, rel, eq + 1);
	}
}

/* A ConfigMap volume as the kubelet's AtomicWriter lays it out (REFERENCE.md §1): the keys in
 * ..TS, ..data -> ..TS, and one top-level link per first path component, KEY -> ..data/KEY. */
static void configmap(const char *vol, const char *ts, const char *const *keys, size_t n)
{
	_cleanup_free_ char *tsdir = xasprintf("..%s", ts);

	write_keys(vol, tsdir, keys, n);
	link_to(vol, "..data", tsdir);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *top = strndup(keys[i], strcspn(keys[i], "=/"));
		_cleanup_free_ char *target = xasprintf("..data/%s", top);
		_cleanup_free_ char *path = xasprintf("%s/%s", vol, top);
		struct stat st;
		if (lstat(path, &st) < 0)
			link_to(vol, top, target);
	}
}

/* The kubelet's update to the same keys: a new ..TS, ..data_tmp renamed over ..data, the old
 * directory removed. */
static void configmap_swap(const char *vol, const char *old_ts, const char *ts,
			   const char *const *keys, size_t n)
{
	_cleanup_free_ char *tsdir = xasprintf("..%s", ts);
	_cleanup_free_ char *tmp = xasprintf("%s/..data_tmp", vol);
	_cleanup_free_ char *data = xasprintf("%s/..data", vol);
	_cleanup_free_ char *old = xasprintf("%s/..%s", vol, old_ts);

	write_keys(vol, tsdir, keys, n);
	assert_int_equal(symlink(tsdir, tmp), 0);
	assert_int_equal(rename(tmp, data), 0);
	assert_int_equal(remove_tree(old), 0);
}

static void assert_no_dotdot(const DigestList *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (strstr(l->v[i].name, "/.."))
			fail_msg("%s: a name in the digest holds a '..' component", l->v[i].name);
}

static void rule_digest(const char *path, unsigned char total[DIGEST_LEN], DigestList *l)
{
	char *paths[] = { (char *)path };

	*l = (DigestList){ 0 };
	assert_int_equal(digest_paths(paths, 1, l, total, NULL, NULL), 0);
}

static void test_tree_configmap(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *vol = xasprintf("%s/vol", root);
	static const char *const keys[] = { "a.yaml=alpha: 1\n", "b.yaml=beta: 2\n",
					    "sub/x.conf=x = 3\n" };
	static const char *const want[] = { "a.yaml=alpha: 1\n", "b.yaml=beta: 2\n",
					    "sub/x.conf=x = 3\n" };
	unsigned char plain[DIGEST_LEN], cm[DIGEST_LEN], swapped[DIGEST_LEN];
	DigestList l;

	/* a plain directory with the same keys and content */
	dir(root, "vol");
	dir(vol, "sub");
	put(vol, "a.yaml", "alpha: 1\n");
	put(vol, "b.yaml", "beta: 2\n");
	put(vol, "sub/x.conf", "x = 3\n");
	rule_digest(vol, plain, &l);
	assert_entries(vol, &l, want, ELEMS(want));
	digest_list_done(&l);
	assert_int_equal(remove_tree(vol), 0);

	/* the same data as a ConfigMap volume: same entries, same digest */
	dir(root, "vol");
	configmap(vol, "2026_08_22_10_00_00.1234567890", keys, ELEMS(keys));
	rule_digest(vol, cm, &l);
	assert_entries(vol, &l, want, ELEMS(want));
	assert_no_dotdot(&l);
	digest_list_done(&l);
	assert_memory_equal(cm, plain, DIGEST_LEN);

	/* an update to identical data (a new timestamped directory): the digest stays */
	configmap_swap(vol, "2026_08_22_10_00_00.1234567890", "2026_08_22_10_05_00.42", keys,
		       ELEMS(keys));
	rule_digest(vol, swapped, &l);
	assert_entries(vol, &l, want, ELEMS(want));
	assert_no_dotdot(&l);
	digest_list_done(&l);
	assert_memory_equal(swapped, plain, DIGEST_LEN);

	/* a key's content changes: the digest changes, the names stay */
	static const char *const changed[] = { "a.yaml=alpha: 2\n", "b.yaml=beta: 2\n",
					       "sub/x.conf=x = 3\n" };
	configmap_swap(vol, "2026_08_22_10_05_00.42", "2026_08_22_10_06_00.000000007", changed,
		       ELEMS(changed));
	rule_digest(vol, swapped, &l);
	assert_entries(vol, &l, changed, ELEMS(changed));
	assert_no_dotdot(&l);
	digest_list_done(&l);
	assert_memory_not_equal(swapped, plain, DIGEST_LEN);
}

/* The rule digest over several paths: sorted, duplicates (overlapping paths) counted once. */
static void test_digest_paths(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *a = xasprintf("%s/a", root);
	_cleanup_free_ char *sub = xasprintf("%s/sub", root);
	_cleanup_free_ char *subf = xasprintf("%s/sub/f", root);
	_cleanup_free_ char *missing = xasprintf("%s/missing", root);
	unsigned char total[DIGEST_LEN], again[DIGEST_LEN], want[DIGEST_LEN];
	DigestList l = { 0 };

	put(root, "a", "A");
	dir(root, "sub");
	put(root, "sub/f", "F");
	put(root, "sub/e", "E");
	char *paths[] = { sub, a, subf };
	assert_int_equal(digest_paths(paths, ELEMS(paths), &l, total, NULL, NULL), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].name, a);
	assert_string_equal(l.v[2].name, subf);
	assert_int_equal(digest_total(&l, want), 0);
	assert_memory_equal(total, want, DIGEST_LEN);
	digest_list_done(&l);

	/* the order of the paths does not matter */
	char *reordered[] = { subf, a, sub };
	assert_int_equal(digest_paths(reordered, ELEMS(reordered), &l, again, NULL, NULL), 0);
	assert_memory_equal(again, total, DIGEST_LEN);
	digest_list_done(&l);

	/* a missing path fails the whole digest, and leaves no list behind */
	char *with_missing[] = { a, missing };
	assert_int_equal(digest_paths(with_missing, 2, &l, again, NULL, NULL), -ENOENT);
	assert_int_equal(l.n, 0);
	assert_null(l.v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_digest_fd_streaming),
		cmocka_unit_test(test_digest_fd_errors),
		cmocka_unit_test(test_digest_line),
		cmocka_unit_test(test_digest_total),
		cmocka_unit_test(test_digest_list_sort),
		cmocka_unit_test_setup_teardown(test_tree_plain, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_tree_fifo_never_opened, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_tree_errors, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_tree_limits, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_tree_configmap, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_digest_paths, tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
