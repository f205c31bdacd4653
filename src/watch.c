/* watch.c: the inotify watch set. Files are never watched themselves (a watch on a file dies
 * with the kubelet's first update); the directories in which each path is looked up, component
 * by component and through every symlink, are. Any event that can change what a path resolves
 * to re-computes the whole set, which is cheap and leaves no case to special-case. */
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

#define MAX_SYMLINKS 40
#define MAX_DEPTH    32
#define ARM_RETRIES  3

/* A directory entry's appearance, disappearance or renaming. */
#define MASK_ENTRY                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |     \
	 IN_ATTRIB)
/* ... and a file's content. */
#define MASK_CONTENT (MASK_ENTRY | IN_CLOSE_WRITE | IN_MODIFY)
/* Events after which a path may resolve differently. */
#define MASK_STRUCTURE                                                                             \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |     \
	 IN_IGNORED | IN_UNMOUNT)
#define MASK_SELF (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)

typedef struct Interest {
	size_t path; /* index into Watch.paths */
	char *name; /* the name looked up here; NULL: any name (a directory whose files count) */
} Interest;

typedef struct Dir {
	int wd;
	dev_t dev;
	ino_t ino;
	uint32_t mask;
	char *path;
	Interest *v;
	size_t n, cap;
} Dir;

typedef struct DirSet {
	Dir *v;
	size_t n, cap;
} DirSet;

typedef struct PathState {
	char *path;
	unsigned owner;
	bool armed;
} PathState;

struct Watch {
	Source inotify;
	Source mounts;
	WatchOps ops;
	PathState *paths;
	size_t n_paths;
	DirSet dirs; /* sorted by wd */
	bool rearm;
	uint64_t events;
};

static void dir_done(Dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d->path);
}

static void dirset_done(DirSet *s)
{
	for (size_t i = 0; i < s->n; i++)
		dir_done(&s->v[i]);
	free(s->v);
	*s = (DirSet){ 0 };
}

/* Records that path i needs dir watched with mask, for name (NULL: any). */
static int plan_add(DirSet *plan, const char *dir, const char *name, size_t i, uint32_t mask)
{
	struct stat st;
	Dir *d = NULL;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0; /* gone already: the event that removed it brings another re-arm */
	for (size_t k = 0; k < plan->n && !d; k++)
		if (plan->v[k].dev == st.st_dev && plan->v[k].ino == st.st_ino)
			d = &plan->v[k];
	if (!d) {
		if (plan->n >= WATCH_MAX_DIRS)
			return -E2BIG;
		if (ARRAY_RESERVE(plan->v, plan->cap, plan->n) < 0)
			return -ENOMEM;
		d = &plan->v[plan->n];
		*d = (Dir){ .wd = -1, .dev = st.st_dev, .ino = st.st_ino, .path = strdup(dir) };
		if (!d->path)
			return -ENOMEM;
		plan->n++;
	}
	d->mask |= mask;
	/* One interest per path and directory where it can: "any name" covers the named ones. */
	size_t kept = 0;
	for (size_t k = 0; k < d->n; k++) {
		Interest *in = &d->v[k];
		if (in->path == i && (!in->name || (name && strcmp(in->name, name) == 0)))
			return 0;
		if (in->path == i && !name)
			free(in->name);
		else
			d->v[kept++] = *in;
	}
	d->n = kept;
	if (ARRAY_RESERVE(d->v, d->cap, d->n) < 0)
		return -ENOMEM;
	d->v[d->n] = (Interest){ .path = i, .name = name ? strdup(name) : NULL };
	if (name && !d->v[d->n].name)
		return -ENOMEM;
	d->n++;
	return 0;
}

typedef enum { KIND_MISSING, KIND_FILE, KIND_DIR } Kind;

typedef struct Planner {
	DirSet *plan;
	size_t path; /* index of the path being planned */
	bool in_volume; /* below a ..data link: dot-names are keys, as the digest reads them */
	size_t depth;
	dev_t dev[MAX_DEPTH];
	ino_t ino[MAX_DEPTH];
} Planner;

static int join(char out[PATH_MAX], const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Resolves rest relative to directory cur as the kernel would, recording each directory where a
 * name is looked up. out: the directory or file it ends at (undefined when missing). */
static int resolve(Planner *p, const char *start, const char *rest_in, char out[PATH_MAX],
		   Kind *kind)
{
	char cur[PATH_MAX], rest[PATH_MAX], full[PATH_MAX], target[PATH_MAX], name[NAME_MAX + 1];
	int links = 0, r;
	struct stat st;

	if (strlen(start) >= sizeof(cur) || strlen(rest_in) >= sizeof(rest))
		return -ENAMETOOLONG;
	strcpy(cur, rest_in[0] == '/' ? "/" : start);
	strcpy(rest, rest_in);
	for (;;) {
		char *c = rest;
		while (*c == '/')
			c++;
		if (!*c) {
			strcpy(out, cur);
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
			if (name[1] == '.') {
				char *slash = strrchr(cur, '/');
				slash[slash == cur ? 1 : 0] = '\0';
			}
			memmove(rest, after, strlen(after) + 1);
			continue;
		}
		if ((r = plan_add(p->plan, cur, name, p->path, last ? MASK_CONTENT : MASK_ENTRY)) <
		    0)
			return r;
		if ((r = join(full, cur, name)) < 0)
			return r;
		if (lstat(full, &st) < 0) {
			if (errno == ENOENT || errno == ENOTDIR) {
				*kind = KIND_MISSING;
				return 0;
			}
			return -errno;
		}
		if (S_ISLNK(st.st_mode)) {
			if (++links > MAX_SYMLINKS)
				return -ELOOP;
			ssize_t len = readlink(full, target, sizeof(target) - 1);
			if (len < 0)
				return -errno;
			target[len] = '\0';
			size_t tail = strlen(after);
			if ((size_t)len + tail >= sizeof(rest))
				return -ENAMETOOLONG;
			memmove(rest + len, after, tail + 1); /* after lies inside rest */
			memcpy(rest, target, (size_t)len);
			if (target[0] == '/')
				strcpy(cur, "/");
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			strcpy(cur, full);
			memmove(rest, after, strlen(after) + 1);
			continue;
		}
		if (!last)
			return -ENOTDIR;
		strcpy(out, full);
		*kind = KIND_FILE;
		return 0;
	}
}

static int plan_tree(Planner *p, const char *dir);

/* Follows name in dir to whatever it ends at, planning a directory's tree. */
static int plan_entry(Planner *p, const char *dir, const char *name)
{
	char out[PATH_MAX];
	Kind kind;

	int r = resolve(p, dir, name, out, &kind);
	if (r == -ELOOP || r == -ENAMETOOLONG || r == -EACCES || r == -ENOTDIR)
		return 0; /* digest reports these; nothing more to watch */
	if (r < 0)
		return r;
	return kind == KIND_DIR ? plan_tree(p, out) : 0;
}

/* A directory whose files count: watched for any name, its subdirectories too, and an
 * AtomicWriter volume through its ..data link, as the digest reads it. */
static int plan_tree(Planner *p, const char *dir)
{
	struct stat st;
	struct dirent *de;
	int r;

	if (stat(dir, &st) < 0)
		return 0;
	for (size_t i = 0; i < p->depth; i++)
		if (p->dev[i] == st.st_dev && p->ino[i] == st.st_ino)
			return 0; /* a loop */
	if (p->depth >= MAX_DEPTH)
		return 0;
	if ((r = plan_add(p->plan, dir, NULL, p->path, MASK_CONTENT)) < 0)
		return r;
	p->dev[p->depth] = st.st_dev;
	p->ino[p->depth] = st.st_ino;
	p->depth++;

	char data[PATH_MAX];
	if (join(data, dir, "..data") == 0 && stat(data, &st) == 0 && S_ISDIR(st.st_mode)) {
		bool was = p->in_volume;
		p->in_volume = true;
		r = plan_entry(p, dir, "..data");
		p->in_volume = was;
	} else {
		_cleanup_closedir_ DIR *d = opendir(dir);
		while (d && (de = readdir(d)) && r >= 0) {
			const char *n = de->d_name;
			/* the digest's rule: see digest.c, hidden() */
			if (n[0] != '.' || (p->in_volume && n[1] != '.' && n[1] != '\0'))
				r = plan_entry(p, dir, n);
		}
	}
	p->depth--;
	return r;
}

static int plan_path(DirSet *plan, size_t i, const char *path)
{
	Planner p = { .plan = plan, .path = i };
	char out[PATH_MAX];
	Kind kind;

	int r = resolve(&p, "/", path, out, &kind);
	if (r == 0 && kind == KIND_DIR)
		r = plan_tree(&p, out);
	return r == -ELOOP || r == -ENOTDIR || r == -EACCES ? 0 : r;
}

static int dir_cmp(const void *a, const void *b)
{
	int x = ((const Dir *)a)->wd, y = ((const Dir *)b)->wd;
	return (x > y) - (x < y);
}

static Dir *find_wd(DirSet *s, int wd)
{
	Dir key = { .wd = wd };
	return s->n ? bsearch(&key, s->v, s->n, sizeof(*s->v), dir_cmp) : NULL;
}

static void report_error(Watch *w, size_t i, const char *dir, int err)
{
	w->paths[i].armed = false;
	if (w->ops.error)
		w->ops.error(w->paths[i].owner, w->paths[i].path, dir, err, w->ops.userdata);
}

/* One pass: plan, add watches, drop the stale. Sets w->rearm when a directory vanished under it. */
static int arm_once(Watch *w)
{
	DirSet plan = { 0 };
	int r = 0;

	for (size_t i = 0; i < w->n_paths; i++) {
		w->paths[i].armed = true;
		int e = plan_path(&plan, i, w->paths[i].path);
		if (e == -ENOMEM) {
			dirset_done(&plan);
			return e;
		}
		if (e < 0)
			report_error(w, i, w->paths[i].path, e);
	}
	for (size_t k = 0; k < plan.n; k++) {
		Dir *d = &plan.v[k];
		d->wd = inotify_add_watch(w->inotify.fd, d->path, d->mask | IN_ONLYDIR);
		if (d->wd >= 0)
			continue;
		if (errno == ENOENT || errno == ENOTDIR)
			w->rearm = true; /* replaced since planned: plan again */
		else
			for (size_t j = 0; j < d->n; j++)
				report_error(w, d->v[j].path, d->path, -errno);
	}
	/* Keep the watched ones; two planned paths may have met one inode through a race. */
	size_t n = 0;
	for (size_t k = 0; k < plan.n; k++) {
		if (plan.v[k].wd < 0)
			dir_done(&plan.v[k]);
		else
			plan.v[n++] = plan.v[k];
	}
	plan.n = n;
	if (plan.n > 1)
		qsort(plan.v, plan.n, sizeof(*plan.v), dir_cmp);
	for (size_t k = 0; k < w->dirs.n; k++)
		if (!find_wd(&plan, w->dirs.v[k].wd))
			inotify_rm_watch(w->inotify.fd, w->dirs.v[k].wd);
	dirset_done(&w->dirs);
	w->dirs = plan;
	return r;
}

int watch_arm(Watch *w)
{
	int r = 0;

	for (int attempt = 0; attempt < ARM_RETRIES; attempt++) {
		w->rearm = false;
		if ((r = arm_once(w)) < 0 || !w->rearm)
			break;
	}
	w->rearm = false;
	return r < 0 ? r : (int)w->dirs.n;
}

int watch_new(const WatchOps *ops, Watch **out)
{
	Watch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->ops = *ops;
	w->inotify =
	    (Source){ .type = SOURCE_INOTIFY, .fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC) };
	w->mounts = (Source){ .type = SOURCE_MOUNTS,
			      .fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC) };
	if (w->inotify.fd < 0) {
		int r = -errno;
		watch_free(w);
		return r;
	}
	*out = w;
	return 0;
}

static void paths_done(Watch *w)
{
	for (size_t i = 0; i < w->n_paths; i++)
		free(w->paths[i].path);
	free(w->paths);
	w->paths = NULL;
	w->n_paths = 0;
}

void watch_free(Watch *w)
{
	if (!w)
		return;
	if (w->inotify.fd >= 0)
		close(w->inotify.fd);
	if (w->mounts.fd >= 0)
		close(w->mounts.fd);
	dirset_done(&w->dirs);
	paths_done(w);
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
	PathState *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = (PathState){ .path = strdup(paths[i].path), .owner = paths[i].owner };
		if (!v[i].path) {
			for (size_t j = 0; j < i; j++)
				free(v[j].path);
			free(v);
			return -ENOMEM;
		}
	}
	paths_done(w);
	w->paths = v;
	w->n_paths = n;
	return watch_arm(w);
}

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
	bool rearm, overflow;
} ReadState;

/* Tells the paths interested in one event, and notes whether the structure may have changed. */
static void dispatch_event(int wd, uint32_t mask, const char *name, void *userdata)
{
	ReadState *rs = userdata;
	Watch *w = rs->w;
	Dir *d;

	w->events++;
	if (mask & IN_Q_OVERFLOW)
		rs->overflow = true;
	if (rs->overflow || !(d = find_wd(&w->dirs, wd)))
		return; /* reported wholesale below; or a watch removed by the last re-arm */
	for (size_t k = 0; k < d->n; k++) {
		const Interest *in = &d->v[k];
		bool self = (mask & MASK_SELF) != 0;
		/* In a directory whose files count, dot-names are the volume's internals: only
		 * ..data, swapped by the kubelet in one rename, says the content moved. */
		bool hit =
		    self || (in->name ? name && strcmp(name, in->name) == 0
				      : name && (name[0] != '.' || strcmp(name, "..data") == 0));
		if (!hit)
			continue;
		w->ops.changed(w->paths[in->path].owner, w->paths[in->path].path, d->path, name,
			       mask, w->ops.userdata);
		if ((mask & MASK_STRUCTURE) || ((mask & IN_ATTRIB) && (mask & IN_ISDIR)))
			rs->rearm = true;
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
	if (n > 0) {
		int r = watch_parse_events(buf, (size_t)n, dispatch_event, &rs);
		if (r < 0)
			return r;
	}
	if (rs.overflow) {
		/* Events were lost: only a full re-arm and re-evaluation are safe. */
		if (w->ops.overflow)
			w->ops.overflow(w->ops.userdata);
		int r = watch_arm(w);
		report_all(w, IN_Q_OVERFLOW);
		return r < 0 ? r : 0;
	}
	*rearm = rs.rearm;
	return 0;
}

int watch_mounts_changed(Watch *w)
{
	int r = watch_arm(w);

	report_all(w, 0);
	return r < 0 ? r : 0;
}

size_t watch_count(const Watch *w)
{
	return w->dirs.n;
}

uint64_t watch_events(const Watch *w)
{
	return w->events;
}

bool watch_path_armed(const Watch *w, size_t i)
{
	return i < w->n_paths && w->paths[i].armed;
}

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
		char root[PATH_MAX], mnt[PATH_MAX];
		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2)
			continue;
		unescape_octal(root);
		unescape_octal(mnt);
		size_t mlen = strlen(mnt);
		bool at = strcmp(mnt, path) == 0;
		bool under =
		    at || (strncmp(path, mnt, mlen) == 0 &&
			   (path[mlen] == '/' || (mlen == 1 && mnt[0] == '/')) && plen > mlen);
		found = (at && !is_dir) || (under && strstr(root, "/volume-subpaths/"));
	}
	return found;
}
