/* The inotify record parser, and the watch set on a real tree: an updated set is always the
 * one a plan from scratch makes, and a busy directory above a path never wakes it. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "watch.h"

typedef struct Seen {
	int n;
	int wd[8];
	uint32_t mask[8];
	char name[8][32];
} Seen;

static void collect(int wd, uint32_t mask, const char *name, void *userdata)
{
	Seen *s = userdata;

	if (s->n >= 8)
		return;
	s->wd[s->n] = wd;
	s->mask[s->n] = mask;
	snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name ? name : "(null)");
	s->n++;
}

/* Appends one record with name padded to pad bytes (0: no name) at buf + *len. */
static void put(char *buf, size_t *len, int wd, uint32_t mask, const char *name, uint32_t pad)
{
	struct inotify_event ev = { .wd = wd, .mask = mask, .len = pad };

	memcpy(buf + *len, &ev, sizeof(ev));
	*len += sizeof(ev);
	memset(buf + *len, 0, pad);
	if (name)
		memcpy(buf + *len, name, strlen(name));
	*len += pad;
}

static void test_records(void **state)
{
	char raw[512] __attribute__((aligned(8)));
	size_t len = 0;
	Seen s = { 0 };
	(void)state;

	put(raw, &len, 1, IN_CLOSE_WRITE, "app.conf", 16);
	put(raw, &len, 2, IN_DELETE_SELF, NULL, 0);
	put(raw, &len, 3, IN_MOVED_TO, "..data", 16);
	put(raw, &len, 4, IN_CREATE, "", 16); /* an all-NUL name is no name */
	assert_int_equal(watch_parse_events(raw, len, collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.wd[0], 1);
	assert_int_equal(s.mask[0], IN_CLOSE_WRITE);
	assert_string_equal(s.name[0], "app.conf");
	assert_string_equal(s.name[1], "(null)");
	assert_string_equal(s.name[2], "..data");
	assert_string_equal(s.name[3], "(null)");

	/* the same bytes one off alignment: parsed the same */
	char shifted[520];
	memcpy(shifted + 1, raw, len);
	s = (Seen){ 0 };
	assert_int_equal(watch_parse_events(shifted + 1, len, collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.name[2], "..data");
}

static void test_broken(void **state)
{
	char raw[256] __attribute__((aligned(8)));
	size_t len = 0;
	Seen s = { 0 };
	(void)state;

	put(raw, &len, 1, IN_MODIFY, "a", 16);
	put(raw, &len, 2, IN_MODIFY, "b", 16);
	/* cut inside the second record's header, then inside its name */
	for (size_t cut = len - 16 - sizeof(struct inotify_event) + 1; cut < len; cut++) {
		s = (Seen){ 0 };
		assert_int_equal(watch_parse_events(raw, cut, collect, &s), -EIO);
		assert_int_equal(s.n, 1); /* what came before the broken record was delivered */
	}
	/* a name with no NUL in its length */
	len = 0;
	put(raw, &len, 1, IN_MODIFY, "0123456789abcdef", 16);
	s = (Seen){ 0 };
	assert_int_equal(watch_parse_events(raw, len, collect, &s), -EIO);
	assert_int_equal(s.n, 0);
	/* a length that runs past the buffer */
	struct inotify_event ev = { .wd = 1, .mask = IN_MODIFY, .len = 0xffffffffu };
	memcpy(raw, &ev, sizeof(ev));
	assert_int_equal(watch_parse_events(raw, sizeof(ev) + 8, collect, &s), -EIO);
	assert_int_equal(watch_parse_events(raw, 0, collect, &s), 0); /* nothing is fine */
}

/* ---- the watch set on a real tree ------------------------------------------------------- */

static void ignore_change(unsigned owner, const char *path, const char *dir, const char *name,
			  uint32_t mask, void *userdata)
{
	(void)owner, (void)path, (void)dir, (void)name, (void)mask;
	(*(unsigned *)userdata)++;
}

static Watch *watch_on(char *const *paths, size_t n, unsigned *changes)
{
	WatchOps ops = { .changed = ignore_change, .userdata = changes };
	WatchPath wp[16];
	Watch *w;

	assert_true(n <= ELEMS(wp));
	for (size_t i = 0; i < n; i++)
		wp[i] = (WatchPath){ .path = paths[i], .owner = (unsigned)i };
	assert_int_equal(watch_new(&ops, &w), 0);
	assert_true(watch_set(w, wp, n) >= 0);
	return w;
}

static bool readable(Watch *w)
{
	struct pollfd p = { .fd = watch_inotify_source(w)->fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

/* What the engine does with a readable inotify fd, until it is drained. */
static void drain(Watch *w)
{
	while (readable(w)) {
		bool rearm = false;
		assert_int_equal(watch_read(w, &rearm), 0);
		if (rearm)
			assert_true(watch_update(w) >= 0);
	}
}

static char *at(const char *root, const char *rel)
{
	return xasprintf("%s/%s", root, rel);
}

static void put_file(const char *root, const char *rel, const char *content)
{
	_cleanup_free_ char *p = at(root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return; /* a random step: its parent may be missing, or a directory in its place */
	assert_true(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
	close(fd);
}

/* The kubelet's update of the volume at rel: a new ..TS with the keys, ..data_tmp renamed over
 * ..data, the old ..TS removed (REFERENCE.md §1). */
static void kubelet_swap(const char *root, const char *rel, unsigned version)
{
	_cleanup_free_ char *vol = at(root, rel), *ts = xasprintf("..ts_%u", version);
	_cleanup_free_ char *dir = xasprintf("%s/%s", vol, ts), *data = xasprintf("%s/..data", vol);
	_cleanup_free_ char *tmp = xasprintf("%s/..data_tmp", vol);
	char old[64] = "";

	if (mkdir(vol, 0755) < 0 && errno != EEXIST)
		return;
	ssize_t n = readlink(data, old, sizeof(old) - 1);
	old[n > 0 ? n : 0] = '\0';
	if (mkdir(dir, 0755) < 0)
		return;
	for (int k = 1; k <= 2; k++) {
		_cleanup_free_ char *key = xasprintf("%s/%s/k%d", rel, ts, k);
		put_file(root, key, ts);
		_cleanup_free_ char *top = xasprintf("%s/k%d", vol, k),
				    *target = xasprintf("..data/k%d", k);
		if (symlink(target, top) < 0 && errno != EEXIST)
			return;
	}
	if (symlink(ts, tmp) < 0 || rename(tmp, data) < 0)
		return;
	if (*old) {
		_cleanup_free_ char *gone = xasprintf("%s/%s", vol, old);
		remove_tree(gone);
	}
}

/* The names random steps use: a small set, so that they meet each other and the paths. */
static const char *const dirs[] = {
	"a", "a/b", "b", "b/b", "c", "m", "m/n", "t/s", "t/s/u", "t/d"
};
static const char *const files[] = {
	"a/b/f", "b/f", "b/b/f", "c/f", "m/n/o", "t/f", "t/s/g", ".x"
};
static const char *const links[] = { "l", "t/ln", "a/l2", "m" };
static const char *const targets[] = { "a", "b", "c", "a/b", "t", "t/s", "nowhere", "l" };

static uint32_t next(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17; /* xorshift64 */
	return (uint32_t)(*s >> 32);
}

static const char *pick(uint64_t *s, const char *const *v, size_t n)
{
	return v[next(s) % n];
}

#define PICK(s, v) pick(s, v, ELEMS(v))

/* One random step in root; *what says which. */
static void random_step(const char *root, uint64_t *s, unsigned step, char *what, size_t size)
{
	const char *a = PICK(s, dirs), *f = PICK(s, files), *l = PICK(s, links),
		   *t = PICK(s, targets);
	_cleanup_free_ char *pa = at(root, a), *pf = at(root, f), *pl = at(root, l),
			    *pt = at(root, t);
	_cleanup_free_ char *tmp = at(root, "tmp-link");
	const char *any = (const char *[]){ a, f, l }[next(s) % 3];
	const char *other =
	    (const char *[]){ PICK(s, dirs), PICK(s, files), PICK(s, links) }[next(s) % 3];
	_cleanup_free_ char *pany = at(root, any), *pother = at(root, other);

	switch (next(s) % 10) {
	case 0:
		snprintf(what, size, "mkdir %s", a);
		(void)mkdir(pa, 0755);
		break;
	case 1:
		snprintf(what, size, "rmdir %s", a);
		(void)rmdir(pa);
		break;
	case 2:
		snprintf(what, size, "rm -r %s", a);
		remove_tree(pa);
		break;
	case 3:
		snprintf(what, size, "rename %s %s", any, other);
		(void)rename(pany, pother);
		break;
	case 4:
		snprintf(what, size, "rename --exchange %s %s", any, other);
		(void)renameat2(AT_FDCWD, pany, AT_FDCWD, pother, RENAME_EXCHANGE);
		break;
	case 5:
		snprintf(what, size, "ln -sfn %s %s", pt, l);
		unlink(tmp);
		if (symlink(pt, tmp) == 0 && rename(tmp, pl) < 0)
			unlink(tmp);
		break;
	case 6:
		snprintf(what, size, "rm %s", any);
		(void)unlink(pany);
		break;
	case 7:
		snprintf(what, size, "write %s", f);
		put_file(root, f, what);
		break;
	case 8:
		snprintf(what, size, "kubelet swap vol");
		kubelet_swap(root, "vol", step);
		break;
	default:
		snprintf(what, size, "kubelet swap a/vol");
		kubelet_swap(root, "a/vol", step);
		break;
	}
}

/* After every step of random filesystem operations, the set updated from the events is the set
 * planned from scratch: no event missed, no watch left behind. */
static void test_updated_set_is_the_planned_one(void **state)
{
	const char *root = *state;
	const char *rel[] = {
		"vol", "vol/k1", "a/b/f", "l/b/f", "m/n/o", "t", "a", "a/vol/k2", "b"
	};
	char *paths[ELEMS(rel)];
	const char *env = getenv("SIGRELOAD_WATCH_SEED");
	uint64_t base = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	unsigned changes = 0;

	for (size_t i = 0; i < ELEMS(rel); i++)
		paths[i] = at(root, rel[i]);
	for (unsigned round = 0; round < 12; round++) {
		uint64_t seed = base + round, s = seed | 1;
		char log[24][96] = { { 0 } };
		_cleanup_free_ char *top = at(root, "t");
		remove_tree(root);
		assert_int_equal(mkdir(root, 0700), 0);
		for (size_t k = 0; k < 5; k++) {
			_cleanup_free_ char *d = at(root, dirs[k]);
			assert_int_equal(mkdir(d, 0755), 0);
		}
		assert_int_equal(mkdir(top, 0755), 0);
		Watch *w = watch_on(paths, ELEMS(paths), &changes);
		for (unsigned step = 0; step < 80; step++) {
			random_step(root, &s, step, log[step % 24], sizeof(log[0]));
			drain(w);
			Watch *fresh = watch_on(paths, ELEMS(paths), &changes);
			_cleanup_free_ char *got = watch_dump(w), *want = watch_dump(fresh);
			watch_free(fresh);
			if (strcmp(got, want) != 0) {
				fprintf(stderr,
					"seed %llu (SIGRELOAD_WATCH_SEED=%llu), step %u; the "
					"last steps:\n",
					(unsigned long long)seed, (unsigned long long)seed, step);
				for (unsigned k = step > 23 ? step - 23 : 0; k <= step; k++)
					fprintf(stderr, "  %u: %s\n", k, log[k % 24]);
				fprintf(stderr, "updated:\n%s\nplanned from scratch:\n%s\n", got,
					want);
				fail();
			}
		}
		watch_free(w);
	}
	for (size_t i = 0; i < ELEMS(paths); i++)
		free(paths[i]);
}

/* A directory above a watched volume, busy with names of its own, never wakes the watch; the
 * volume's own update does. */
static void test_busy_parent_wakes_nothing(void **state)
{
	const char *root = *state;
	_cleanup_free_ char *busy = at(root, "busy"), *app = at(root, "busy/app");
	_cleanup_free_ char *vol = at(root, "busy/app/vol");
	char *paths[] = { vol };
	unsigned changes = 0;

	assert_int_equal(mkdir(busy, 0755), 0);
	assert_int_equal(mkdir(app, 0755), 0);
	kubelet_swap(root, "busy/app/vol", 1);
	Watch *w = watch_on(paths, 1, &changes);
	for (int i = 0; i < 100; i++) {
		_cleanup_free_ char *f = xasprintf("busy/f%d", i),
				    *g = xasprintf("busy/app/g%d", i);
		_cleanup_free_ char *d = xasprintf("%s/d%d", busy, i);
		put_file(root, f, "x");
		put_file(root, g, "x");
		assert_int_equal(mkdir(d, 0755), 0);
		assert_int_equal(utimensat(AT_FDCWD, d, NULL, 0), 0);
		_cleanup_free_ char *pf = at(root, f), *pg = at(root, g);
		assert_int_equal(unlink(pf), 0);
		assert_int_equal(unlink(pg), 0);
		assert_int_equal(rmdir(d), 0);
	}
	assert_false(readable(w));
	assert_int_equal(watch_events(w), 0);
	kubelet_swap(root, "busy/app/vol", 2);
	assert_true(readable(w));
	drain(w);
	assert_true(changes > 0);
	watch_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_broken),
		cmocka_unit_test_setup_teardown(test_updated_set_is_the_planned_one, tmpdir_setup,
						tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_busy_parent_wakes_nothing, tmpdir_setup,
						tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
