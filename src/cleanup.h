/* cleanup.h: scope-bound release of memory, fds and streams (systemd's _cleanup_ idiom). */
#ifndef SIGRELOAD_CLEANUP_H
#define SIGRELOAD_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define _cleanup_(f)	   __attribute__((cleanup(f)))
#define _cleanup_free_	   _cleanup_(freep)
#define _cleanup_close_	   _cleanup_(closep)
#define _cleanup_fclose_   _cleanup_(fclosep)
#define _cleanup_closedir_ _cleanup_(closedirp)

/* type_freep(Type **p) for a destructor type_free(Type *p) that takes NULL: a constructor builds
 * into a _cleanup_(type_freep) local, and hands it out with TAKE_PTR once it is whole. */
#define DEFINE_CLEANUP_FUNC(type, func)                                                            \
	static inline void func##p(type **p)                                                       \
	{                                                                                          \
		func(*p);                                                                          \
	}

/* Hand a resource out of a _cleanup_ scope: returns it and leaves the variable empty. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -EBADF;                                                                     \
		_fd;                                                                               \
	})

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#endif
