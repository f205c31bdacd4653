/* satoken.h: recognising a projected service-account token, which the kubelet rotates hourly. */
#ifndef SIGRELOAD_SATOKEN_H
#define SIGRELOAD_SATOKEN_H

#include <stdbool.h>
#include <stddef.h>

/* What a user can do about a rule whose paths take in such a token. */
#define SATOKEN_HINT                                                                               \
	"the kubelet rotates this token about every hour (at 80% of its expirationSeconds), "      \
	"and each rotation reloads the targets: list the files the app reads in paths instead, "   \
	"or mount the token in a volume of its own"

/* Whether buf holds a token the kubelet projects and rotates: a JWT whose claims carry the
 * "kubernetes.io" claim of a bound service-account token and an expiry. (A legacy token from
 * a Secret has neither, and never changes.) Pure. */
bool satoken_is_projected(const char *buf, size_t len);

/* Whether path, a rule's path, takes in such a token: path itself, or a key of the volume
 * path is (a directory with ..data). Returns 1 with the token's path in found, 0 when not (or
 * nothing there to read), or -errno. Reads at most SATOKEN_MAX_KEYS keys of 16 KiB each. */
#define SATOKEN_MAX_KEYS 1024
int satoken_find(const char *path, char *found, size_t size);

#endif
