/* caps.h: the one capability sigreload may use, CAP_KILL, made effective when it is permitted. */
#ifndef SIGRELOAD_CAPS_H
#define SIGRELOAD_CAPS_H

#include <stdbool.h>

/* The image's binary carries cap_kill in its permitted set only (cap_kill+p), so that it
 * starts even where KILL is not in the bounding set; here it is raised to effective when the
 * kernel granted it. Returns whether CAP_KILL is now effective. */
bool caps_raise_kill(void);

/* Whether CAP_KILL is effective: may this process signal another uid's? */
bool caps_have_kill(void);

#endif
