/* digest.h: SHA-256 of files and of a rule's whole tree: what "changed" means, as
 * sigreload.yaml(5) says under "What changed means". */
#ifndef SIGRELOAD_DIGEST_H
#define SIGRELOAD_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_LEN	 32
#define DIGEST_HEX_LEN	 (2 * DIGEST_LEN + 1)
#define DIGEST_MAX_FILES 10000 /* per rule */
#define DIGEST_MAX_DEPTH 32

typedef struct DigestEntry {
	char *name; /* as the user sees it: the given path, then names below it */
	unsigned char sha[DIGEST_LEN];
} DigestEntry;

typedef struct DigestList {
	DigestEntry *v;
	size_t n, cap;
} DigestList;

/* How often a long hash looks up from its work (see DigestHooks.tick). */
#define DIGEST_TICK_BYTES (8 * 1024 * 1024)
/* What is read of a file whose size is 0 (a /proc or /sys file): its size says nothing. */
#define DIGEST_PSEUDO_FILE_MAX (1024 * 1024)

typedef struct DigestHooks {
	/* Told about each thing left out of the digest and why ("not a regular file (FIFO)"). */
	void (*skip)(const char *name, const char *why, void *userdata);
	/* Told about each file or directory that exists but cannot be read (err: EACCES, say):
	 * it counts by its identity instead of its content (see digest_tree). */
	void (*unreadable)(const char *name, int err, void *userdata);
	/* Told where a digest failed (the file or directory, named as in the digest), just before
	 * the failure is returned. */
	void (*failed)(const char *name, int err, void *userdata);
	/* Called every DIGEST_TICK_BYTES read, so that a big file cannot keep an event loop from
	 * its urgent work; a nonzero return abandons the digest with -ECANCELED. */
	int (*tick)(void *userdata);
	void *userdata;
	/* A read error of a file's own (EIO, say) counts the file by its identity too, rather
	 * than failing the digest: a caller's last resort after retries. */
	bool identity_on_error;
} DigestHooks;

/* SHA-256 of everything readable from fd, streamed through a fixed buffer. 0 or -errno. */
int digest_fd(int fd, unsigned char out[DIGEST_LEN]);

/* SHA-256 of a regular file's content (never opens anything else), or of a buffer. */
int digest_file(const char *path, unsigned char out[DIGEST_LEN]);
void digest_buf(const void *buf, size_t len, unsigned char out[DIGEST_LEN]);

/* Appends the regular files reachable from path to list: the file itself, or every file below
 * a directory, following symlinks, skipping names that start with '.', reading a directory that
 * holds "..data" (a ConfigMap or Secret volume) through that link in one consistent step. A
 * file is read up to the size it had when opened (a growing log ends). A file or directory that
 * exists but may not be read (a Secret with defaultMode 0400, another uid) counts by its
 * identity: its name, inode, ctime and size, and the ..data target it was found through, all
 * of which the kubelet changes on every update. Below path, what cannot be read for another
 * reason of its own (a FIFO, a loop) is reported and skipped; path itself must be found.
 * Returns 0; -ENOENT if path (or its symlink's target) is missing;
 * -EINVAL if it is neither a regular file nor a directory; -EAGAIN if files vanished while it
 * was read; -E2BIG past DIGEST_MAX_FILES; -ECANCELED from the tick; other -errno. hooks may
 * be NULL. */
int digest_tree(const char *path, DigestList *list, const DigestHooks *hooks);

/* The rule digest over paths: walks each (retrying a walk that raced a change), sorts by name,
 * drops duplicates, then hashes the sorted sha256sum-format lines. list receives the entries.
 * On failure *bad (if not NULL) is the index of the path that failed. */
int digest_paths(char *const *paths, size_t n, DigestList *list, unsigned char total[DIGEST_LEN],
		 const DigestHooks *hooks, size_t *bad);

/* SHA-256 of the sorted entries' lines: the digest of `sigreload hash`'s per-file output. */
int digest_total(const DigestList *list, unsigned char out[DIGEST_LEN]);

void digest_list_sort(DigestList *list);
void digest_list_done(DigestList *list);

/* The line sha256sum prints for this entry (with its '\' escaping of '\\', '\n', '\r' in names),
 * newline included. Returns a malloc'd string or NULL. */
char *digest_line(const DigestEntry *e);

char *digest_hex(const unsigned char sha[DIGEST_LEN], char out[DIGEST_HEX_LEN]);

#endif
