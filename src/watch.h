/* watch.h: inotify on the directories that decide what a set of paths resolves to and holds. */
#ifndef SIGRELOAD_WATCH_H
#define SIGRELOAD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define WATCH_MAX_DIRS 4096 /* distinct directories, all paths together */

typedef struct Watch Watch;

/* A path to follow, and who is told when what it resolves to may have changed. */
typedef struct WatchPath {
	const char *path; /* absolute */
	unsigned owner;
} WatchPath;

typedef struct WatchOps {
	/* Something under path may have changed (mask: the inotify event; IN_Q_OVERFLOW after an
	 * overflow, 0 after a mount change). Called once per event per interested path. */
	void (*changed)(unsigned owner, const char *path, const char *dir, const char *name,
			uint32_t mask, void *userdata);
	/* A directory that path needs could not be watched (err: a negative errno). */
	void (*error)(unsigned owner, const char *path, const char *dir, int err, void *userdata);
	/* The kernel's queue overflowed: once, before every path is reported changed. */
	void (*overflow)(void *userdata);
	void *userdata;
} WatchOps;

int watch_new(const WatchOps *ops, Watch **out);
void watch_free(Watch *w);

/* The inotify fd (EPOLLIN) and /proc/self/mountinfo (EPOLLPRI; NULL if unavailable). */
Source *watch_inotify_source(Watch *w);
Source *watch_mounts_source(Watch *w);

/* Replaces the paths followed (copied) and arms the watches for them (watches the new paths
 * share with the old are kept). Returns what watch_arm() returns. */
int watch_set(Watch *w, const WatchPath *paths, size_t n);

/* Plans every path again and gives every watch its mask again: after events were lost. Problems
 * with single directories go to ops->error; returns the number of watches, or -ENOMEM. */
int watch_arm(Watch *w);

/* Plans again only the paths the events read since concern (see watch_read), adding and
 * removing the watches whose need changed. Returns as watch_arm() does. */
int watch_update(Watch *w);

/* Reads what the inotify fd holds (one read: call again while it is readable), telling
 * ops->changed. *rearm says what some path resolves to may have moved: the caller runs
 * watch_update() before anything is hashed. An overflow re-arms at once and reports every path.
 * 0 or -errno. */
int watch_read(Watch *w, bool *rearm);

/* After the mount table changed (a bind mount over a watched directory): re-arm, report all. */
int watch_mounts_changed(Watch *w);

/* Walks the inotify records in buf (as read(2) returns them), calling fn for each; name is NULL
 * for events on the watched directory itself. -EIO when a record is cut short or its name not
 * terminated: nothing after it is trusted. Pure; the fuzzer's entry point. */
typedef void (*WatchEventFn)(int wd, uint32_t mask, const char *name, void *userdata);
int watch_parse_events(const char *buf, size_t len, WatchEventFn fn, void *userdata);

size_t watch_count(const Watch *w);
/* inotify events read so far. */
uint64_t watch_events(const Watch *w);

/* Whether every directory each path needs is watched; a path that does not exist yet counts
 * when the directory its missing name would appear in is. */
bool watch_all_armed(const Watch *w);

/* The watch set as text (malloc'd; NULL without memory): one line per directory, by inode, with
 * its mask and which path needs it and why, then whether each path is armed. Two Watches on the
 * same paths and the same tree describe themselves alike, however they got there: the tests'
 * way of checking an updated set against one planned from scratch. */
char *watch_dump(const Watch *w);

/* True when path is, or lies in, a mount of its own that looks like a Kubernetes subPath mount
 * (a file mounted alone, or a mount whose root is under volume-subpaths/). */
bool watch_subpath_mount(const char *path);

#endif
