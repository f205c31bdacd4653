/* cmreload.h: configmap-reload's command line (-volume-dir, -webhook-url, ...), turned into the
 * rule file it means, so that its users swap the image and keep their args. */
#ifndef SIGRELOAD_CMRELOAD_H
#define SIGRELOAD_CMRELOAD_H

#include <stddef.h>

#include "rules.h"

#define CMRELOAD_SOURCE "configmap-reload's flags" /* the rule file's name in messages */

typedef struct CmReload {
	char **dirs, **urls; /* -volume-dir, -webhook-url: repeatable */
	size_t n_dirs, n_urls;
	const char *method, *status, *retries, *listen, *telemetry; /* NULL: not given */
} CmReload;

/* The rule file the flags mean, and for each of its lines the flag it comes from (a message
 * prefix such as "-volume-dir /etc/config", or NULL). */
typedef struct CmReloadText {
	char *text;
	char **origins;
	size_t n_lines;
} CmReloadText;

/* Takes configmap-reload's flags out of argv (*argc and argv updated, the rest kept in order
 * for getopt), spelt as Go's flag package takes them: -flag=value, -flag value, --flag=value,
 * --flag value. Returns how many it took (0: none), -EINVAL with err saying which flag lacks
 * its value, or -ENOMEM. */
int cmreload_take(int *argc, char **argv, CmReload *c, char *err, size_t errsize);

/* Writes the rule file. Checks what the rule parser could not name a flag for: both flags
 * given, the numbers, the listen address, the metrics path: -EINVAL with err. -ENOMEM. */
int cmreload_rules(const CmReload *c, CmReloadText *out, char *err, size_t errsize);
void cmreload_text_done(CmReloadText *t);

/* The rules the flags mean, through rules_parse (its checks and limits): 0, or -EINVAL with
 * every problem in errs as "FLAG: what is wrong", or -ENOMEM. */
int cmreload_load(const CmReload *c, Rules **out, RulesErrors *errs);

void cmreload_done(CmReload *c);

#endif
