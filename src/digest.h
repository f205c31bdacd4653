/* digest.h: SHA-256 of files and of a rule's whole tree, as SPEC §3 defines "changed". */
#ifndef SIGRELOAD_DIGEST_H
#define SIGRELOAD_DIGEST_H

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

/* Told about each thing left out of the digest and why ("not a regular file (FIFO)"). */
typedef void (*DigestSkipFn)(const char *name, const char *why, void *userdata);

/* SHA-256 of everything readable from fd, streamed through a fixed buffer. 0 or -errno. */
int digest_fd(int fd, unsigned char out[DIGEST_LEN]);

/* SHA-256 of a regular file's content (never opens anything else), or of a buffer. */
int digest_file(const char *path, unsigned char out[DIGEST_LEN]);
int digest_buf(const void *buf, size_t len, unsigned char out[DIGEST_LEN]);

/* Appends the regular files reachable from path to list: the file itself, or every file below
 * a directory, following symlinks, skipping names that start with '.', reading a directory that
 * holds "..data" (a ConfigMap or Secret volume) through that link in one consistent step.
 * Returns 0; -ENOENT if path (or its symlink's target) is missing; -EAGAIN if files vanished
 * while it was read; -E2BIG past DIGEST_MAX_FILES; other -errno from the kernel. */
int digest_tree(const char *path, DigestList *list, DigestSkipFn skip, void *userdata);

/* The rule digest over paths: walks each (retrying a walk that raced a change), sorts by name,
 * drops duplicates, then hashes the sorted sha256sum-format lines. list receives the entries. */
int digest_paths(char *const *paths, size_t n, DigestList *list, unsigned char total[DIGEST_LEN],
		 DigestSkipFn skip, void *userdata);

/* SHA-256 of the sorted entries' lines: the digest of `sigreload hash`'s per-file output. */
int digest_total(const DigestList *list, unsigned char out[DIGEST_LEN]);

void digest_list_sort(DigestList *list);
void digest_list_done(DigestList *list);

/* The line sha256sum prints for this entry (with its '\' escaping of '\\', '\n', '\r' in names),
 * newline included. Returns a malloc'd string or NULL. */
char *digest_line(const DigestEntry *e);

char *digest_hex(const unsigned char sha[DIGEST_LEN], char out[DIGEST_HEX_LEN]);

#endif
