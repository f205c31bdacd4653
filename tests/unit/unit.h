/* unit.h: what every cmocka unit test needs. */
#ifndef SIGRELOAD_UNIT_H
#define SIGRELOAD_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first */
#include <cmocka.h>

#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#endif
