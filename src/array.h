/* array.h: the one way a doubling array grows. */
#ifndef SIGRELOAD_ARRAY_H
#define SIGRELOAD_ARRAY_H

#include <errno.h>
#include <stdlib.h>

/* Makes room for element n of array v (a pointer lvalue) of capacity cap (a size_t lvalue),
 * doubling it: 0, or -ENOMEM with v and cap untouched. */
#define ARRAY_RESERVE(v, cap, n)                                                                   \
	({                                                                                         \
		int _r = 0;                                                                        \
		if ((n) >= (cap)) {                                                                \
			size_t _c = (cap) ? 2 * (cap) : 8;                                         \
			__typeof__(v) _v = reallocarray((v), _c, sizeof(*(v)));                    \
			if (_v) {                                                                  \
				(v) = _v;                                                          \
				(cap) = _c;                                                        \
			} else {                                                                   \
				_r = -ENOMEM;                                                      \
			}                                                                          \
		}                                                                                  \
		_r;                                                                                \
	})

#endif
