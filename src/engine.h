/* engine.h: the policy: events → debounce → digest → targets → signals, and the rule file's
 * own reloads. Owns the watch set, the timer and the per-rule state. */
#ifndef SIGRELOAD_ENGINE_H
#define SIGRELOAD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "rules.h"

typedef struct Engine Engine;

typedef struct EngineOptions {
	const char *config_file; /* NULL: the rules came from the command line (no file to watch) */
	bool dry_run;
	bool can_kill_any; /* CAP_KILL is effective */
	/* set where the command line overrides the rule file */
	bool log_format_set, log_level_set;
	const char *metrics_listen; /* NULL: the rule file's */
	LogFormat log_format;
	LogLevel log_level;
} EngineOptions;

/* Takes ownership of rules (also on failure). Blocks TERM, INT and HUP and takes them from a
 * signalfd of its own on loop. */
int engine_new(const EngineOptions *opt, Rules *rules, Loop *loop, Engine **out);
void engine_free(Engine *e);

/* Arms the watches, takes the start-up digests, sends signal_on_start signals. Returns 0, 1
 * when a SIGTERM or SIGINT came meanwhile, or -errno. */
int engine_start(Engine *e);

/* The loop's dispatch: 0 to go on, 1 when asked to stop (SIGTERM, SIGINT), -errno on failure. */
int engine_dispatch(Source *src, uint32_t events, void *userdata);

#endif
