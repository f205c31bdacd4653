/* hosts.h: a name's addresses from a hosts(5) file, for a libcurl that would resolve names in a
 * thread (fetch.c). */
#ifndef SIGRELOAD_HOSTS_H
#define SIGRELOAD_HOSTS_H

#include <stddef.h>

#define HOSTS_FILE	"/etc/hosts"
#define HOSTS_MAX_BYTES (1024 * 1024) /* read further than this, a hosts file is not one */
#define HOSTS_MAX_ADDRS 8 /* addresses kept for one name */
/* The longest list hosts_find writes: bracketed IPv6 addresses and commas, and the NUL. */
#define HOSTS_LIST_MAX (HOSTS_MAX_ADDRS * 48)

/* The addresses the hosts-file text buf gives name (ASCII case ignored), in file order, at most
 * HOSTS_MAX_ADDRS, as curl's CURLOPT_RESOLVE lists them: "127.0.0.1,[::1]". Lines are
 * "ADDRESS NAME [ALIAS...]" with '#' comments; an address inet_pton does not take is skipped.
 * Returns how many were written into out (HOSTS_LIST_MAX bytes), 0 when none. */
int hosts_find(const char *buf, size_t len, const char *name, char out[HOSTS_LIST_MAX]);

/* The same from a file: -errno when it cannot be read, -EFBIG past HOSTS_MAX_BYTES. */
int hosts_lookup(const char *path, const char *name, char out[HOSTS_LIST_MAX]);

#endif
