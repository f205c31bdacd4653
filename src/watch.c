/* watch.c: the inotify watch set. For every path, what decides what it resolves to and holds is
 * watched, and no more: each directory on the way by itself (it can change only by being moved
 * or removed, never replaced while it holds the next name), the directory in which a symlink, a
 * missing name or the path's file is looked up (for that name), and the directories whose files
 * count (for any key). Files are never watched themselves: a watch on a file dies with the
 * kubelet's first update. An event re-plans only the paths it concerns. */
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "array.h"
#include "cleanup.h"
#include "volume.h"

#define MAX_SYMLINKS 40
#define MAX_DEPTH    32
#define ARM_RETRIES  3
#define NO_NAME	     UINT32_MAX

/* The directory itself moved, or removed (a rename over an empty one included). Not IN_ATTRIB:
 * the kernel would report it for every entry of the directory too (a busy /tmp's touches). */
#define MASK_SELF (IN_DELETE_SELF | IN_MOVE_SELF)
/* Names appearing, disappearing or renamed. */
#define MASK_MOVES (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)
/* ... and files' content, mode and times (an unreadable file made readable counts). */
#define MASK_CONTENT (MASK_SELF | MASK_MOVES | IN_ATTRIB | IN_CLOSE_WRITE | IN_MODIFY)
/* The kernel dropped the watch: its directory is gone, or its file system. */
#define MASK_GONE (IN_DELETE_SELF | IN_IGNORED | IN_UNMOUNT)

/* Why a path needs a directory watched, from the cheapest mask to the widest. */
typedef enum Why {
	WHY_THROUGH, /* the path goes through it */
	WHY_DENIED, /* ... and stops there: we may not look inside, until its mode changes */
	WHY_NAME, /* a symlink or a missing name is looked up in it */
	WHY_FILE, /* the path's file is in it */
	WHY_TREE, /* its files count: the directory the path names, or one below it */
	WHY_VOLUME, /* the same below a volume's ..data, where ".env" is a key */
	WHY_N
} Why;

static uint32_t why_mask(Why why)
{
	switch (why) {
	case WHY_THROUGH:
		return MASK_SELF;
	case WHY_DENIED:
		return MASK_SELF | IN_ATTRIB;
	case WHY_NAME:
		return MASK_SELF | MASK_MOVES;
	default:
		return MASK_CONTENT;
	}
}

static const char *const why_names[WHY_N] = {
	"through", "denied", "name", "file", "tree", "volume"
};

/* Which need of which path a directory serves (the back-reference of a Need). */
typedef struct Interest {
	uint32_t path, need;
} Interest;

typedef struct Dir {
	int wd; /* -1: not watched (not yet, could not be, or the kernel dropped it) */
	dev_t dev;
	ino_t ino;
	uint32_t mask; /* as the kernel has it */
	bool touched; /* its needs changed since the kernel was last told */
	char *path; /* the latest path it was planned at: where inotify_add_watch finds it */
	unsigned count[WHY_N];
	/* the needs of the directory itself apart: events with a name (the busy ones) never look
	 * at them */
	Interest *self, *named;
	size_t n_self, cap_self, n_named, cap_named;
} Dir;

/* One directory a path needs watched, and why. */
typedef struct Need {
	Dir *dir;
	uint32_t slot; /* its Interest in dir->self (see why_self()) or dir->named */
	uint32_t name; /* WHY_NAME, WHY_FILE: offset of the name in PathState.names */
	Why why;
} Need;

typedef struct PathState {
	char *path;
	unsigned owner;
	bool armed; /* planned, and every directory it needs is watched */
	bool failed; /* a problem was reported since it was last planned */
	bool dirty; /* to be planned again */
	uint64_t told; /* the event it was last told of: once per event */
	Need *v;
	size_t n, cap;
	char *names;
	size_t names_len, names_cap;
} PathState;

/* Dir pointers sorted by a key, for lookups by inode (planning) and by wd (events). */
typedef int (*DirCmp)(const Dir *a, const Dir *b);
typedef struct DirIndex {
	Dir **v;
	size_t n, cap;
	DirCmp cmp;
} DirIndex;

struct Watch {
	Source inotify;
	Source mounts;
	WatchOps ops;
	PathState *paths;
	size_t n_paths, n_unarmed;
	DirIndex by_inode, by_wd; /* every Dir; those watched */
	Dir **touched; /* room for every Dir: each is in it at most once */
	size_t n_touched, cap_touched;
	uint32_t *dirty, *round; /* room for every path, each at most once */
	size_t n_dirty;
	dev_t root_dev;
	ino_t root_ino;
	uint64_t events, seq;
};

/* ---- the directory table --------------------------------------------------------------- */

static int cmp_inode(const Dir *a, const Dir *b)
{
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	return (a->ino > b->ino) - (a->ino < b->ino);
}

static int cmp_wd(const Dir *a, const Dir *b)
{
	return (a->wd > b->wd) - (a->wd < b->wd);
}

/* The first position whose Dir is not below key. */
static size_t index_lower(const DirIndex *x, const Dir *key)
{
	size_t lo = 0, hi = x->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->cmp(x->v[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static Dir *index_find(const DirIndex *x, const Dir *key)
{
	size_t i = index_lower(x, key);
	return i < x->n && x->cmp(x->v[i], key) == 0 ? x->v[i] : NULL;
}

static int index_insert(DirIndex *x, Dir *d)
{
	if (ARRAY_RESERVE(x->v, x->cap, x->n) < 0)
		return -ENOMEM;
	size_t i = index_lower(x, d);
	memmove(x->v + i + 1, x->v + i, (x->n - i) * sizeof(*x->v));
	x->v[i] = d;
	x->n++;
	return 0;
}

static void index_remove(DirIndex *x, const Dir *d)
{
	size_t i = index_lower(x, d);

	if (i < x->n && x->v[i] == d) {
		memmove(x->v + i, x->v + i + 1, (x->n - i - 1) * sizeof(*x->v));
		x->n--;
	}
}

static Dir *find_wd(const Watch *w, int wd)
{
	Dir key = { .wd = wd };
	return index_find(&w->by_wd, &key);
}

static void dir_free(Dir *d)
{
	if (!d)
		return;
	free(d->self);
	free(d->named);
	free(d->path);
	free(d);
}

static bool dir_unused(const Dir *d)
{
	return d->n_self == 0 && d->n_named == 0;
}

static uint32_t dir_mask(const Dir *d)
{
	uint32_t mask = 0;

	for (int why = 0; why < WHY_N; why++)
		if (d->count[why])
			mask |= why_mask((Why)why);
	return mask;
}

static bool why_self(Why why)
{
	return why == WHY_THROUGH || why == WHY_DENIED;
}

/* Notes that the kernel may need telling about d: done after the plans, in sync_dirs(). */
static void touch(Watch *w, Dir *d)
{
	if (!d->touched) {
		w->touched[w->n_touched++] = d;
		d->touched = true;
	}
}

static void mark_dirty(Watch *w, uint32_t i)
{
	if (!w->paths[i].dirty) {
		w->dirty[w->n_dirty++] = i;
		w->paths[i].dirty = true;
	}
}

static void dirty_all(Watch *w, const Dir *d)
{
	for (size_t k = 0; k < d->n_self; k++)
		mark_dirty(w, d->self[k].path);
	for (size_t k = 0; k < d->n_named; k++)
		mark_dirty(w, d->named[k].path);
}

static void set_armed(Watch *w, uint32_t i, bool armed)
{
	if (w->paths[i].armed != armed)
		w->n_unarmed += armed ? -1 : 1;
	w->paths[i].armed = armed;
}

static void report_error(Watch *w, uint32_t i, const char *dir, int err)
{
	w->paths[i].failed = true;
	set_armed(w, i, false);
	if (w->ops.error)
		w->ops.error(w->paths[i].owner, w->paths[i].path, dir, err, w->ops.userdata);
}

/* ---- needs of one path ------------------------------------------------------------------ */

/* A new Dir in the table, with room made for it in the wd index and the touched list, which
 * then never fail to take it. */
static int dir_new(Watch *w, const char *path, dev_t dev, ino_t ino, Dir **out)
{
	Dir *d;

	if (w->by_inode.n >= WATCH_MAX_DIRS)
		return -E2BIG;
	if (ARRAY_RESERVE(w->by_wd.v, w->by_wd.cap, w->by_inode.n) < 0 ||
	    ARRAY_RESERVE(w->touched, w->cap_touched, w->by_inode.n) < 0 ||
	    !(d = calloc(1, sizeof(*d))))
		return -ENOMEM;
	*d = (Dir){ .wd = -1, .dev = dev, .ino = ino, .path = strdup(path) };
	if (!d->path || index_insert(&w->by_inode, d) < 0) {
		dir_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

/* Records that path i needs the directory at dir (dev, ino) watched, and why; name for
 * WHY_NAME and WHY_FILE. */
static int need_add(Watch *w, uint32_t i, const char *dir, dev_t dev, ino_t ino, Why why,
		    const char *name)
{
	PathState *ps = &w->paths[i];
	Dir key = { .dev = dev, .ino = ino };
	Dir *d = index_find(&w->by_inode, &key);
	int r;

	if (!d && (r = dir_new(w, dir, dev, ino, &d)) < 0)
		return r;
	touch(w, d); /* first: a new Dir that ends up unneeded is dropped at the next sync */
	if (strcmp(d->path, dir) != 0) {
		char *p = strdup(dir); /* the old path may lead nowhere now */
		if (!p)
			return -ENOMEM;
		free(d->path);
		d->path = p;
	}
	uint32_t off = NO_NAME;
	if (name) {
		size_t len = strlen(name) + 1;
		while (ps->names_len + len > ps->names_cap)
			if (ARRAY_RESERVE(ps->names, ps->names_cap, ps->names_cap) < 0)
				return -ENOMEM;
		off = (uint32_t)ps->names_len;
		memcpy(ps->names + off, name, len);
		ps->names_len += len;
	}
	bool self = why_self(why);
	if (ARRAY_RESERVE(ps->v, ps->cap, ps->n) < 0 ||
	    (self ? ARRAY_RESERVE(d->self, d->cap_self, d->n_self)
		  : ARRAY_RESERVE(d->named, d->cap_named, d->n_named)) < 0)
		return -ENOMEM;
	Interest in = { .path = i, .need = (uint32_t)ps->n };
	size_t slot = self ? d->n_self++ : d->n_named++;
	(self ? d->self : d->named)[slot] = in;
	ps->v[ps->n++] = (Need){ .dir = d, .slot = (uint32_t)slot, .name = off, .why = why };
	d->count[why]++;
	return 0;
}

/* Drops every need of path i. Directories no path needs stay in the table until sync_dirs(),
 * so that a plan made meanwhile finds them (and their watches) again. */
static void needs_drop(Watch *w, uint32_t i)
{
	PathState *ps = &w->paths[i];

	for (size_t k = 0; k < ps->n; k++) {
		Need *n = &ps->v[k];
		Dir *d = n->dir;
		bool self = why_self(n->why);
		Interest *v = self ? d->self : d->named;
		size_t last = self ? --d->n_self : --d->n_named;
		if (n->slot != last) {
			v[n->slot] = v[last];
			w->paths[v[last].path].v[v[last].need].slot = n->slot;
		}
		d->count[n->why]--;
		touch(w, d);
	}
	ps->n = 0;
	ps->names_len = 0;
	ps->failed = false;
}

/* ---- planning: what one path needs ------------------------------------------------------ */

typedef enum Kind { KIND_MISSING, KIND_FILE, KIND_DIR } Kind;

/* A directory during resolution. */
typedef struct Cursor {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
} Cursor;

typedef struct Planner {
	Watch *w;
	uint32_t path; /* index of the path being planned */
	bool below_data; /* below a ..data link: dot-names are keys, as the digest reads them */
	size_t depth;
	dev_t dev[MAX_DEPTH];
	ino_t ino[MAX_DEPTH];
} Planner;

static int join(char out[PATH_MAX], const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

static int need(Planner *p, const Cursor *dir, Why why, const char *name)
{
	return need_add(p->w, p->path, dir->path, dir->dev, dir->ino, why, name);
}

/* We may not look into dir: its mode change is the event that lets us. */
static int denied(Planner *p, const Cursor *dir)
{
	int r = need(p, dir, WHY_DENIED, NULL);
	return r < 0 ? r : -EACCES;
}

static void cursor_root(const Planner *p, Cursor *c)
{
	strcpy(c->path, "/");
	c->dev = p->w->root_dev;
	c->ino = p->w->root_ino;
}

/* ".." of a directory reached without symlinks in its path: its path without the last name. */
static int cursor_up(Cursor *c)
{
	struct stat st;
	char *slash = strrchr(c->path, '/');

	slash[slash == c->path ? 1 : 0] = '\0';
	if (stat(c->path, &st) < 0)
		return -errno;
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	return 0;
}

/* rest becomes the target of the symlink at full, then what followed it (after, which lies
 * inside rest); an absolute target starts again at the root. */
static int follow(const Planner *p, Cursor *cur, const char *full, char rest[PATH_MAX],
		  const char *after)
{
	char target[PATH_MAX];
	ssize_t len = readlink(full, target, sizeof(target) - 1);

	if (len < 0)
		return -errno;
	size_t tail = strlen(after);
	if ((size_t)len + tail >= PATH_MAX)
		return -ENAMETOOLONG;
	memmove(rest + len, after, tail + 1);
	memcpy(rest, target, (size_t)len);
	if (target[0] == '/')
		cursor_root(p, cur);
	return 0;
}

/* Resolves rest from the directory cur as the kernel would, recording what each lookup needs
 * watched; cur ends where the resolution does (a directory, or the file's path). */
static int resolve(Planner *p, Cursor *cur, const char *rest_in, Kind *kind)
{
	char rest[PATH_MAX], full[PATH_MAX], name[NAME_MAX + 1];
	int links = 0, r;
	struct stat st;

	if (strlen(rest_in) >= sizeof(rest))
		return -ENAMETOOLONG;
	strcpy(rest, rest_in);
	if (rest[0] == '/')
		cursor_root(p, cur);
	for (;;) {
		char *c = rest + strspn(rest, "/");
		if (!*c) {
			*kind = KIND_DIR;
			return 0;
		}
		size_t n = strcspn(c, "/");
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(name, c, n);
		name[n] = '\0';
		const char *after = c + n;
		bool last = after[strspn(after, "/")] == '\0';

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
			if (name[1] == '.' && (r = cursor_up(cur)) < 0)
				return r;
			memmove(rest, after, strlen(after) + 1);
			continue;
		}
		if ((r = join(full, cur->path, name)) < 0)
			return r;
		if (lstat(full, &st) < 0) {
			if (errno == EACCES)
				return denied(p, cur);
			if (errno != ENOENT && errno != ENOTDIR)
				return -errno;
			*kind = KIND_MISSING;
			return need(p, cur, WHY_NAME, name); /* its creation must be seen */
		}
		if (S_ISDIR(st.st_mode)) {
			/* Replacing it means moving or removing it: it is not empty, or the path
			 * ends here (and then the plan watches it for any name anyway). */
			if ((r = need_add(p->w, p->path, full, st.st_dev, st.st_ino, WHY_THROUGH,
					  NULL)) < 0)
				return r;
			*cur = (Cursor){ .dev = st.st_dev, .ino = st.st_ino };
			strcpy(cur->path, full);
			memmove(rest, after, strlen(after) + 1);
			continue;
		}
		/* A symlink is retargeted by a rename over it, which only its directory sees. */
		if ((r = need(p, cur, S_ISLNK(st.st_mode) || !last ? WHY_NAME : WHY_FILE, name)) <
		    0)
			return r;
		if (S_ISLNK(st.st_mode)) {
			if (++links > MAX_SYMLINKS)
				return -ELOOP;
			if ((r = follow(p, cur, full, rest, after)) < 0)
				return r;
			continue;
		}
		if (!last)
			return -ENOTDIR;
		strcpy(cur->path, full);
		*kind = KIND_FILE;
		return 0;
	}
}

/* Errors the digest reports: nothing more to watch there. */
static bool dead_end(int r)
{
	return r == -ELOOP || r == -ENAMETOOLONG || r == -EACCES || r == -ENOTDIR;
}

static int plan_tree(Planner *p, const Cursor *dir);

/* Follows name in dir to whatever it ends at, planning a directory's tree. */
static int plan_entry(Planner *p, const Cursor *dir, const char *name)
{
	Cursor c = *dir;
	Kind kind;

	int r = resolve(p, &c, name, &kind);
	if (r < 0)
		return dead_end(r) ? 0 : r;
	return kind == KIND_DIR ? plan_tree(p, &c) : 0;
}

/* A volume's ..data, followed as the digest reads it: true when it ends at a directory, whose
 * tree then holds the keys. */
static int plan_volume(Planner *p, const Cursor *dir, bool *volume)
{
	char data[PATH_MAX];
	struct stat st;
	Cursor c = *dir;
	Kind kind;
	int r;

	*volume = false;
	if (join(data, dir->path, VOLUME_DATA) < 0)
		return 0;
	if (lstat(data, &st) < 0)
		return errno == EACCES ? denied(p, dir)
				       : 0; /* none: the tree's watch sees it come */
	bool was = p->below_data;
	p->below_data = true;
	r = resolve(p, &c, VOLUME_DATA, &kind);
	if (r == 0 && kind == KIND_DIR) {
		*volume = true;
		r = plan_tree(p, &c);
	}
	p->below_data = was;
	return r < 0 && dead_end(r) ? 0 : r;
}

/* A directory whose files count: watched for any key, its subdirectories too; an AtomicWriter
 * volume only through its ..data link, as the digest reads it. */
static int plan_tree(Planner *p, const Cursor *dir)
{
	bool volume;
	int r;

	for (size_t i = 0; i < p->depth; i++)
		if (p->dev[i] == dir->dev && p->ino[i] == dir->ino)
			return 0; /* a loop */
	if (p->depth >= MAX_DEPTH)
		return 0;
	p->dev[p->depth] = dir->dev;
	p->ino[p->depth] = dir->ino;
	p->depth++;
	r = plan_volume(p, dir, &volume);
	if (r == 0 && !volume)
		r = need(p, dir, p->below_data ? WHY_VOLUME : WHY_TREE, NULL);
	if (r == 0 && !volume) {
		_cleanup_closedir_ DIR *d = opendir(dir->path);
		struct dirent *de;
		if (!d && errno == EACCES)
			r = denied(p, dir);
		while (d && r >= 0 && (de = readdir(d))) {
			/* a file needs nothing the tree's watch does not give */
			if (volume_hidden(de->d_name, p->below_data) || de->d_type == DT_REG)
				continue;
			r = plan_entry(p, dir, de->d_name);
		}
	}
	p->depth--;
	return r;
}

static int plan_path(Watch *w, uint32_t i)
{
	Planner p = { .w = w, .path = i };
	Cursor cur;
	Kind kind;

	cursor_root(&p, &cur);
	int r = resolve(&p, &cur, w->paths[i].path, &kind);
	if (r == 0 && kind == KIND_DIR)
		r = plan_tree(&p, &cur);
	return r == -ELOOP || r == -ENOTDIR || r == -EACCES ? 0 : r;
}

/* ---- the kernel's side ------------------------------------------------------------------ */

static void dir_drop(Watch *w, Dir *d)
{
	if (d->wd >= 0) {
		inotify_rm_watch(w->inotify.fd, d->wd);
		index_remove(&w->by_wd, d);
	}
	index_remove(&w->by_inode, d);
	dir_free(d);
}

/* Gives the kernel d's mask. A directory replaced between the plan and the watch (the watch
 * landed on another inode, or found nothing) makes its paths dirty: planned again. */
static void dir_watch(Watch *w, Dir *d, uint32_t mask)
{
	struct stat st;

	int wd = inotify_add_watch(w->inotify.fd, d->path, mask | IN_ONLYDIR | IN_DONT_FOLLOW);
	if (wd < 0) {
		int err = errno;
		if (err == ENOENT || err == ENOTDIR)
			dirty_all(w, d);
		else
			for (size_t k = 0; k < d->n_self + d->n_named; k++)
				report_error(w,
					     k < d->n_self ? d->self[k].path
							   : d->named[k - d->n_self].path,
					     d->path, -err);
		return;
	}
	if (wd == d->wd) {
		d->mask = mask;
		return;
	}
	Dir *other = find_wd(w, wd);
	if (other || lstat(d->path, &st) < 0 || st.st_dev != d->dev || st.st_ino != d->ino) {
		if (other) {
			other->mask = 0; /* ours overwrote its mask: given back below */
			dirty_all(w, other);
			touch(w, other);
		} else {
			inotify_rm_watch(w->inotify.fd, wd);
		}
		dirty_all(w, d);
		return;
	}
	if (d->wd >= 0) { /* its inode number came back on a new directory: the old watch is dead */
		inotify_rm_watch(w->inotify.fd, d->wd);
		index_remove(&w->by_wd, d);
	}
	d->wd = wd;
	d->mask = mask;
	(void)index_insert(&w->by_wd, d); /* room made by dir_new() */
}

/* Brings the kernel's watches in line with the needs of the touched directories: adds, changes
 * masks, removes the unneeded. */
static void sync_dirs(Watch *w)
{
	/* dir_watch() may touch more: walked by index */
	for (size_t k = 0; k < w->n_touched; k++) {
		Dir *d = w->touched[k];
		d->touched = false;
		if (dir_unused(d))
			dir_drop(w, d);
		else if (d->wd < 0 || d->mask != dir_mask(d))
			dir_watch(w, d, dir_mask(d));
	}
	w->n_touched = 0;
}

/* Gives back what path i's arrays hold beyond its needs: thousands of paths are kept between
 * events, each planned once, and most need no more than a handful of directories. */
static void needs_fit(PathState *ps)
{
	Need *v = ps->n < ps->cap ? reallocarray(ps->v, ps->n ? ps->n : 1, sizeof(*v)) : NULL;
	char *names = ps->names_len < ps->names_cap ? realloc(ps->names, ps->names_len + 1) : NULL;

	if (v) {
		ps->v = v;
		ps->cap = ps->n ? ps->n : 1;
	}
	if (names) {
		ps->names = names;
		ps->names_cap = ps->names_len + 1;
	}
}

/* Plans the paths in round again: their old needs dropped, the new recorded. Without memory,
 * the path half planned and those not reached are left dirty. */
static int plan_round(Watch *w, const uint32_t *round, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		uint32_t i = round[k];
		needs_drop(w, i);
		int r = plan_path(w, i);
		if (r == -ENOMEM)
			return r;
		w->paths[i].dirty = false;
		needs_fit(&w->paths[i]);
		if (r < 0)
			report_error(w, i, w->paths[i].path, r);
	}
	return 0;
}

/* Plans the dirty paths again and syncs; a directory replaced meanwhile makes another round. */
static int update(Watch *w)
{
	for (int attempt = 0; attempt < ARM_RETRIES && w->n_dirty; attempt++) {
		size_t n = w->n_dirty;
		uint32_t *round = w->dirty;
		w->dirty = w->round;
		w->round = round;
		w->n_dirty = 0;
		int r = plan_round(w, round, n);
		sync_dirs(w); /* after a failure too: what was planned is consistent */
		if (r < 0) {
			for (size_t k = 0; k < n; k++)
				if (w->paths[round[k]].dirty) {
					w->paths[round[k]].dirty = false;
					mark_dirty(w, round[k]);
				}
			return r;
		}
		for (size_t k = 0; k < n; k++) {
			PathState *ps = &w->paths[round[k]];
			bool armed = !ps->failed;
			for (size_t j = 0; j < ps->n && armed; j++)
				armed = ps->v[j].dir->wd >= 0;
			set_armed(w, round[k], armed);
		}
	}
	for (size_t k = 0; k < w->n_dirty; k++)
		w->paths[w->dirty[k]].dirty = false; /* still racing: the next event plans them */
	w->n_dirty = 0;
	return (int)w->by_wd.n;
}

int watch_update(Watch *w)
{
	return update(w);
}

int watch_arm(Watch *w)
{
	for (size_t k = 0; k < w->by_inode.n; k++)
		w->by_inode.v[k]->mask = 0; /* every watch given its mask again */
	for (size_t i = 0; i < w->n_paths; i++)
		mark_dirty(w, (uint32_t)i);
	return update(w);
}

/* ---- life cycle ------------------------------------------------------------------------- */

DEFINE_CLEANUP_FUNC(Watch, watch_free)

int watch_new(const WatchOps *ops, Watch **out)
{
	_cleanup_(watch_freep) Watch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->ops = *ops;
	w->by_inode.cmp = cmp_inode;
	w->by_wd.cmp = cmp_wd;
	w->inotify =
	    (Source){ .type = SOURCE_INOTIFY, .fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) };
	w->mounts = (Source){ .type = SOURCE_MOUNTS,
			      .fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC) };
	struct stat root;
	if (w->inotify.fd < 0 || stat("/", &root) < 0)
		return -errno;
	w->root_dev = root.st_dev;
	w->root_ino = root.st_ino;
	*out = TAKE_PTR(w);
	return 0;
}

static void paths_done(Watch *w)
{
	for (size_t i = 0; i < w->n_paths; i++) {
		needs_drop(w, (uint32_t)i);
		free(w->paths[i].path);
		free(w->paths[i].v);
		free(w->paths[i].names);
	}
	free(w->paths);
	w->paths = NULL;
	w->n_paths = w->n_unarmed = 0;
}

void watch_free(Watch *w)
{
	if (!w)
		return;
	if (w->inotify.fd >= 0)
		close(w->inotify.fd);
	if (w->mounts.fd >= 0)
		close(w->mounts.fd);
	paths_done(w);
	for (size_t k = 0; k < w->by_inode.n; k++)
		dir_free(w->by_inode.v[k]);
	free(w->by_inode.v);
	free(w->by_wd.v);
	free(w->touched);
	free(w->dirty);
	free(w->round);
	free(w);
}

Source *watch_inotify_source(Watch *w)
{
	return &w->inotify;
}

Source *watch_mounts_source(Watch *w)
{
	return w->mounts.fd >= 0 ? &w->mounts : NULL;
}

int watch_set(Watch *w, const WatchPath *paths, size_t n)
{
	_cleanup_free_ PathState *v = calloc(n ? n : 1, sizeof(*v));
	_cleanup_free_ uint32_t *dirty = calloc(n ? n : 1, sizeof(*dirty));
	_cleanup_free_ uint32_t *round = calloc(n ? n : 1, sizeof(*round));

	if (!v || !dirty || !round || n > UINT32_MAX)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		/* unarmed until planned */
		v[i] = (PathState){ .path = strdup(paths[i].path), .owner = paths[i].owner };
		if (!v[i].path) {
			for (size_t j = 0; j < i; j++)
				free(v[j].path);
			return -ENOMEM;
		}
	}
	/* the directories stay (unneeded until planned again): watches shared with the new
	 * paths are kept, not removed and added back */
	paths_done(w);
	free(w->dirty);
	free(w->round);
	w->dirty = TAKE_PTR(dirty);
	w->round = TAKE_PTR(round);
	w->n_dirty = 0;
	w->paths = TAKE_PTR(v);
	w->n_paths = w->n_unarmed = n;
	return watch_arm(w);
}

/* ---- events ----------------------------------------------------------------------------- */

static void report_all(Watch *w, uint32_t mask)
{
	for (size_t i = 0; i < w->n_paths; i++)
		w->ops.changed(w->paths[i].owner, w->paths[i].path, NULL, NULL, mask,
			       w->ops.userdata);
}

int watch_parse_events(const char *buf, size_t len, WatchEventFn fn, void *userdata)
{
	for (size_t off = 0; off < len;) {
		struct inotify_event ev; /* copied out: a record need not be aligned here */

		if (len - off < sizeof(ev))
			return -EIO;
		memcpy(&ev, buf + off, sizeof(ev));
		off += sizeof(ev);
		if (ev.len > len - off)
			return -EIO; /* the kernel never splits a record: a broken read */
		const char *name = buf + off;
		if (ev.len && !memchr(name, '\0', ev.len))
			return -EIO;
		off += ev.len;
		fn(ev.wd, ev.mask, ev.len && *name ? name : NULL, userdata);
	}
	return 0;
}

typedef struct ReadState {
	Watch *w;
	bool overflow;
} ReadState;

/* Tells path i of one event, once however many of its needs the event meets. */
static void tell(Watch *w, uint32_t i, const Dir *d, const char *name, uint32_t mask)
{
	PathState *ps = &w->paths[i];

	if (ps->told == w->seq)
		return;
	ps->told = w->seq;
	w->ops.changed(ps->owner, ps->path, d->path, name, mask, w->ops.userdata);
}

/* Whether a name that appeared in a tree can change its plan: a directory or a symlink can
 * lead somewhere, a file cannot (what disappears is seen by the needs it met: its own watch for
 * a directory, its name for a symlink). */
static bool leads_somewhere(const Dir *d, const char *name, uint32_t mask)
{
	char full[PATH_MAX];
	struct stat st;

	if (!(mask & (IN_CREATE | IN_MOVED_TO)))
		return false;
	if (mask & IN_ISDIR)
		return true;
	return join(full, d->path, name) == 0 && lstat(full, &st) == 0 && !S_ISREG(st.st_mode);
}

/* The watched directory itself moved, went, or changed its mode: every path that needs it. */
static void dispatch_self(Watch *w, Dir *d, uint32_t mask)
{
	for (size_t k = 0; k < d->n_self; k++) {
		tell(w, d->self[k].path, d, NULL, mask);
		mark_dirty(w, d->self[k].path);
	}
	for (size_t k = 0; k < d->n_named; k++) {
		tell(w, d->named[k].path, d, NULL, mask);
		mark_dirty(w, d->named[k].path);
	}
	if (mask & MASK_GONE) {
		index_remove(&w->by_wd, d);
		d->wd = -1;
		d->mask = 0;
	}
}

/* Tells the paths interested in one event, and marks those whose plan it may change. */
static void dispatch_event(int wd, uint32_t mask, const char *name, void *userdata)
{
	ReadState *rs = userdata;
	Watch *w = rs->w;
	Dir *d;

	w->events++;
	if (mask & IN_Q_OVERFLOW)
		rs->overflow = true;
	if (rs->overflow || !(d = find_wd(w, wd)))
		return; /* reported wholesale below; or a watch removed by the last re-plan */
	w->seq++;
	if (!name) {
		dispatch_self(w, d, mask);
		return;
	}
	int leads = -1; /* leads_somewhere(), asked once */
	for (size_t k = 0; k < d->n_named; k++) {
		const Interest *in = &d->named[k];
		const PathState *ps = &w->paths[in->path];
		const Need *n = &ps->v[in->need];
		bool dirty;
		if (n->why == WHY_NAME || n->why == WHY_FILE) {
			if (strcmp(name, ps->names + n->name) != 0)
				continue;
			dirty = (mask & MASK_MOVES) != 0;
		} else {
			/* a volume's internals come and go: only its ..data swap says it changed */
			if (volume_hidden(name, n->why == WHY_VOLUME) &&
			    strcmp(name, VOLUME_DATA) != 0)
				continue;
			if (leads < 0)
				leads = leads_somewhere(d, name, mask);
			dirty = leads;
		}
		tell(w, in->path, d, name, mask);
		if (dirty)
			mark_dirty(w, in->path);
	}
}

int watch_read(Watch *w, bool *rearm)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ReadState rs = { .w = w };

	/* One read a turn: epoll is level-triggered, so what is left comes on the next one, after
	 * the signalfd and the timers had theirs. Reading to EAGAIN would let events that come as
	 * fast as they are handled (a log written into a watched directory) starve the loop. */
	ssize_t n;
	do
		n = read(w->inotify.fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN)
		return -errno;
	int r = n > 0 ? watch_parse_events(buf, (size_t)n, dispatch_event, &rs) : 0;
	if (rs.overflow) {
		/* Events were lost: only a full re-arm and re-evaluation are safe. */
		if (w->ops.overflow)
			w->ops.overflow(w->ops.userdata);
		int a = watch_arm(w);
		report_all(w, IN_Q_OVERFLOW);
		return r < 0 ? r : a < 0 ? a : 0;
	}
	/* also after a broken record: the events before it made their paths dirty */
	*rearm = w->n_dirty > 0;
	return r;
}

int watch_mounts_changed(Watch *w)
{
	int r = watch_arm(w);

	report_all(w, 0);
	return r < 0 ? r : 0;
}

size_t watch_count(const Watch *w)
{
	return w->by_wd.n;
}

uint64_t watch_events(const Watch *w)
{
	return w->events;
}

bool watch_all_armed(const Watch *w)
{
	return w->n_unarmed == 0;
}

/* ---- a description, for tests ----------------------------------------------------------- */

static int interest_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dump_dir(FILE *f, const Watch *w, const Dir *d)
{
	size_t n = d->n_self + d->n_named;
	_cleanup_free_ char **lines = calloc(n ? n : 1, sizeof(*lines));
	int r = 0;

	if (!lines)
		return -ENOMEM;
	for (size_t k = 0; k < n && r == 0; k++) {
		const Interest *in = k < d->n_self ? &d->self[k] : &d->named[k - d->n_self];
		const PathState *ps = &w->paths[in->path];
		const Need *need = &ps->v[in->need];
		if (asprintf(&lines[k], " %u:%s%s%s", in->path, why_names[need->why],
			     need->name == NO_NAME ? "" : ":",
			     need->name == NO_NAME ? "" : ps->names + need->name) < 0) {
			lines[k] = NULL;
			r = -ENOMEM;
		}
	}
	if (r == 0) {
		qsort(lines, n, sizeof(*lines), interest_cmp);
		fprintf(f, "%ju:%ju %s mask=%#x", (uintmax_t)d->dev, (uintmax_t)d->ino,
			d->wd >= 0 ? "watched" : "unwatched", d->wd >= 0 ? d->mask : 0);
		for (size_t k = 0; k < n; k++)
			fputs(lines[k], f);
		fputc('\n', f);
	}
	for (size_t k = 0; k < n; k++)
		free(lines[k]);
	return r;
}

char *watch_dump(const Watch *w)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	int r = 0;

	if (!f)
		return NULL;
	for (size_t k = 0; k < w->by_inode.n && r == 0; k++) /* sorted by inode */
		r = dump_dir(f, w, w->by_inode.v[k]);
	for (size_t i = 0; i < w->n_paths; i++)
		fprintf(f, "path %zu %s\n", i, w->paths[i].armed ? "armed" : "unarmed");
	if (fclose(f) != 0 || r < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- subPath mounts --------------------------------------------------------------------- */

/* mountinfo escapes blanks and backslashes as \ooo. */
static void unescape_octal(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* The root and the mount point of a mountinfo line ("id parent major:minor root mountpoint
 * ..."), cut out in place and unescaped; false for a line without them. Not sscanf: this runs
 * for every line and every rule path at start-up. */
static bool mount_fields(char *line, char **root, char **mnt)
{
	char *p = line;

	for (int i = 0; i < 3; i++) {
		if (!(p = strchr(p, ' ')))
			return false;
		p++;
	}
	*root = p;
	if (!(p = strchr(p, ' ')))
		return false;
	*p++ = '\0';
	*mnt = p;
	p[strcspn(p, " \n")] = '\0';
	unescape_octal(*root);
	unescape_octal(*mnt);
	return true;
}

bool watch_subpath_mount(const char *path)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t size = 0, plen = strlen(path);
	struct stat st;
	bool found = false;

	if (!f)
		return false;
	bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	while (!found && getline(&line, &size, f) > 0) {
		char *root, *mnt;
		if (!mount_fields(line, &root, &mnt))
			continue;
		size_t mlen = strlen(mnt);
		bool at = strcmp(mnt, path) == 0;
		bool under =
		    at || (strncmp(path, mnt, mlen) == 0 &&
			   (path[mlen] == '/' || (mlen == 1 && mnt[0] == '/')) && plen > mlen);
		found = (at && !is_dir) || (under && strstr(root, "/volume-subpaths/"));
	}
	return found;
}
