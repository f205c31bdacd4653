/* main.c: sigreload's table of contents: arguments, subcommands, exit codes. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "caps.h"
#include "cleanup.h"
#include "cmreload.h"
#include "digest.h"
#include "engine.h"
#include "log.h"
#include "loop.h"
#include "match.h"
#include "proc.h"
#include "rules.h"
#include "sandbox.h"
#include "satoken.h"
#include "signame.h"
#include "utf8.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

typedef struct Options {
	const char *command;
	const char *config;
	bool dry_run;
	bool no_seccomp;
	const char *log_format, *log_level, *metrics_listen; /* NULL: from the rule file */
	char **args;
	int n_args;
	CmReload cm; /* configmap-reload's flags, used instead of a rule file when given */
	bool cmreload;
} Options;

static const char usage_text[] =
    "Usage:\n"
    "  sigreload [run] [-c FILE] [--dry-run] [--log-format logfmt|json]\n"
    "                  [--log-level debug|info|warn|error] [--metrics-listen ADDR]\n"
    "                  [--no-seccomp]\n"
    "  sigreload check -c FILE          validate the rule file and print the resolved plan\n"
    "  sigreload match -c FILE [RULE]   list the processes each rule would signal now\n"
    "  sigreload hash PATH...           print the digests sigreload computes for PATHs\n"
    "  sigreload [run|check] -volume-dir=DIR... -webhook-url=URL... [-webhook-method=POST]\n"
    "                  [-webhook-status-code=200] [-webhook-retries=1]\n"
    "                  [-web.listen-address=:9533]   configmap-reload's flags, instead of -c\n"
    "  sigreload --help | --version\n"
    "\n"
    "Watches files mounted from ConfigMaps and Secrets and, when their content changes,\n"
    "signals the processes its rules name (shareProcessNamespace: true).\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE        rule file (default: $SIGRELOAD_CONFIG, else " RULES_DEFAULT_FILE
    ")\n"
    "      --dry-run            do everything but send signals; log what would be sent\n"
    "      --log-format FORMAT  logfmt or json (overrides log_format)\n"
    "      --log-level LEVEL    debug, info, warn or error (overrides log_level)\n"
    "      --metrics-listen ADDR  \":9533\", \"127.0.0.1:9533\", or \"\" to disable\n"
    "      --no-seccomp         run without the seccomp filter (for debugging, e.g. strace)\n"
    "  -h, --help               show this help\n"
    "  -V, --version            show the version\n"
    "\n"
    "Exit status: 0 clean, 1 runtime failure, 2 usage error or invalid rule file.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sigreload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'sigreload --help'.\n", stderr);
	return EXIT_USAGE;
}

enum { OPT_DRY_RUN = 256, OPT_LOG_FORMAT, OPT_LOG_LEVEL, OPT_METRICS_LISTEN, OPT_NO_SECCOMP };

static const struct option longopts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 },
};

/* The command word, when argv[1] is one: -1 to go on (argv past it), or an exit code. */
static int take_command(int *argc, char ***argv, Options *o)
{
	static const char *const commands[] = { "run", "check", "match", "hash" };

	o->command = "run";
	if (*argc < 2 || (*argv)[1][0] == '-')
		return -1;
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp((*argv)[1], commands[i]) == 0)
			o->command = commands[i];
	if (strcmp(o->command, (*argv)[1]) != 0)
		return usage_error("unknown command '%s'", (*argv)[1]);
	(*argv)++, (*argc)--;
	return -1;
}

/* One option getopt_long returned: -1 to go on, or an exit code. */
static int take_option(int c, int argc, char **argv, Options *o)
{
	LogFormat format;
	LogLevel level;
	ListenAddr addr;

	switch (c) {
	case 'c':
		if (!*optarg)
			return usage_error("-c needs a file name, not an empty string");
		o->config = optarg;
		return -1;
	case OPT_DRY_RUN:
		o->dry_run = true;
		return -1;
	case OPT_NO_SECCOMP:
		o->no_seccomp = true;
		return -1;
	case OPT_LOG_FORMAT:
		if (log_format_parse(optarg, &format) < 0)
			return usage_error("--log-format must be logfmt or json, not '%s'", optarg);
		o->log_format = optarg;
		return -1;
	case OPT_LOG_LEVEL:
		if (log_level_parse(optarg, &level) < 0)
			return usage_error(
			    "--log-level must be debug, info, warn or error, not '%s'", optarg);
		o->log_level = optarg;
		return -1;
	case OPT_METRICS_LISTEN:
		if (*optarg && addr_parse(optarg, &addr) < 0)
			return usage_error("--metrics-listen '%s' is not an address such as :9533",
					   optarg);
		o->metrics_listen = optarg;
		return -1;
	case 'h':
		fputs(usage_text, stdout);
		return EXIT_OK;
	case 'V':
		printf("sigreload %s\n", SIGRELOAD_VERSION);
		return EXIT_OK;
	case ':': /* a long option is argv's; after a short one musl leaves optind past argc */
		if (optind <= argc && !strncmp(argv[optind - 1], "--", 2))
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		return usage_error("option '-%c' needs a value", optopt);
	default:
		/* within a cluster ("-xy") argv[optind - 1] is not the option itself */
		if (optopt)
			return usage_error("unknown option '-%c'", optopt);
		return usage_error("unknown option '%s'", argv[optind - 1]);
	}
}

/* Returns -1 to go on, or the exit code to leave with. */
static int parse_args(int argc, char **argv, Options *o)
{
	char err[256];
	int c, r;

	if ((r = take_command(&argc, &argv, o)) >= 0)
		return r;
	int taken = cmreload_take(&argc, argv, &o->cm, err, sizeof(err));
	if (taken < 0)
		return usage_error("%s", taken == -ENOMEM ? "out of memory" : err);
	o->cmreload = taken > 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:hV", longopts, NULL)) != -1)
		if ((r = take_option(c, argc, argv, o)) >= 0)
			return r;
	o->args = argv + optind;
	o->n_args = argc - optind;
	if (o->cmreload && o->config)
		return usage_error(
		    "-c and configmap-reload's flags (-volume-dir, -webhook-url, ...) "
		    "exclude each other");
	if (o->cmreload && (!strcmp(o->command, "match") || !strcmp(o->command, "hash")))
		return usage_error("%s does not take configmap-reload's flags", o->command);
	if (!o->config)
		o->config = getenv("SIGRELOAD_CONFIG");
	if (!o->config || !*o->config)
		o->config = RULES_DEFAULT_FILE;
	return -1;
}

static Rules *load_or_report(const Options *o)
{
	const char *file = o->cmreload ? CMRELOAD_SOURCE : o->config;
	RulesErrors errs;
	Rules *rules = NULL;

	int r =
	    o->cmreload ? cmreload_load(&o->cm, &rules, &errs) : rules_load(file, &rules, &errs);
	/* the errors come escaped; the file name is input too: a newline must not forge a line */
	_cleanup_free_ char *name = utf8_escape(file);
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s%s\n", o->cmreload ? "sigreload: " : "", errs.v[i]);
	size_t n = errs.n - errs.truncated; /* the "too many errors" line is not one */
	if (r == -EINVAL)
		fprintf(stderr, "sigreload: %s %s %zu%s error%s: nothing was loaded\n",
			name ? name : "the rule file", o->cmreload ? "have" : "has", n,
			errs.truncated ? " or more" : "", n == 1 ? "" : "s");
	else if (r == -ENOMEM)
		fprintf(stderr, "sigreload: out of memory\n");
	rules_errors_done(&errs);
	return r < 0 ? NULL : rules;
}

static int print_cell(FILE *f, const char *s, bool last);

/* Pitfalls in what the paths hold now: a check run in the pod sees its volumes. */
static void check_paths(const Rules *rules)
{
	char token[PATH_MAX];

	for (size_t i = 0; i < rules->n; i++)
		for (size_t j = 0; j < rules->v[i].n_paths; j++) {
			if (satoken_find(rules->v[i].paths[j], token, sizeof(token)) != 1)
				continue;
			fprintf(stderr, "sigreload: warning: rule %s: ", rules->v[i].name);
			print_cell(stderr, token, false);
			fprintf(stderr, " is a projected service-account token: %s\n",
				SATOKEN_HINT);
		}
}

static int cmd_check(const Options *o)
{
	Rules *rules;

	if (o->n_args > 0)
		return usage_error("check takes no arguments, got '%s'", o->args[0]);
	if (!(rules = load_or_report(o)))
		return EXIT_USAGE;
	rules_print(rules, stdout);
	fflush(stdout);
	check_paths(rules);
	rules_free(rules);
	return EXIT_OK;
}

/* A value for one column (or a name in a message): quoted, with C escapes, if it holds
 * control bytes, quotes or (unless it is the last column) blanks. Returns the width printed;
 * with f NULL, prints nothing and only measures. */
static int print_cell(FILE *f, const char *s, bool last)
{
	bool quote = !*s && !last;
	int width = 2;

	for (const unsigned char *c = (const unsigned char *)s; *c && !quote; c++)
		quote = (*c <= ' ' && !last) || *c == '"' || *c == '\\' || *c < 0x20 || *c == 0x7f;
	if (!quote)
		return (f && fputs(s, f) < 0) ? 0 : (int)strlen(s);
	if (f)
		fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		char esc[8] = { (char)*c };
		if (*c == '"' || *c == '\\')
			snprintf(esc, sizeof(esc), "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			snprintf(esc, sizeof(esc), "\\x%02x", *c);
		width += (int)strlen(esc);
		if (f)
			fputs(esc, f);
	}
	if (f)
		fputc('"', f);
	return width;
}

/* A cell padded to width, then the two blanks between columns. */
static void print_cell_padded(FILE *f, const char *s, int width)
{
	int w = print_cell(f, s, false);
	fprintf(f, "%*s", (w < width ? width - w : 0) + 2, "");
}

static void print_uid(FILE *f, const Target *t)
{
	char uid[16] = "?";

	if (t->uid_known)
		snprintf(uid, sizeof(uid), "%u", (unsigned)t->uid);
	fprintf(f, "%7d  %7d  %10s  ", (int)t->pid, (int)t->ppid, uid);
}

/* A quantity in four characters or so: 512, 12K, 3.4M, 1.2G (bytes) or 9s, 12m, 3h, 5d. */
static const char *compact(double v, const char *const *units, const double *steps, char buf[16])
{
	size_t i = 0;

	while (units[i + 1] && v >= steps[i + 1])
		i++;
	v /= steps[i];
	snprintf(buf, 16, v < 10 && i > 0 ? "%.1f%s" : "%.0f%s", v, units[i]);
	return buf;
}

/* What the target weighs now, as /metrics sums it per rule: RSS, CPU, threads, fds (- when
 * another uid's fd table is hidden), age. */
static void print_figures(const Target *t)
{
	static const char *const bytes[] = { "", "K", "M", "G", NULL }, *const times[] = { "s", "m",
											   "h", "d",
											   NULL };
	static const double bstep[] = { 1, 1024, 1048576, 1073741824 },
			    tstep[] = { 1, 60, 3600, 86400 };
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	char rss[16], age[16], fds[16] = "-", cpu[16];
	ProcStat st;

	if (proc_read_stat(t->pid, &st) < 0 || st.starttime != t->starttime) {
		printf("%6s  %7s  %4s  %5s  %5s  ", "-", "-", "-", "-", "-");
		return;
	}
	int n = proc_count_fds(t->pid);
	if (n >= 0)
		snprintf(fds, sizeof(fds), "%d", n);
	snprintf(cpu, sizeof(cpu), "%.2f", (double)(st.utime + st.stime) / (double)tick);
	printf("%6s  %7s  %4u  %5s  %5s  ",
	       compact((double)st.rss * (double)page, bytes, bstep, rss), cpu, st.threads, fds,
	       compact((double)proc_age_ns(st.starttime) / 1e9, times, tstep, age));
}

static void print_match_row(const Rule *r, const Target *t, int name_width, int comm_width)
{
	printf("%-*s  ", name_width, r->name);
	print_uid(stdout, t);
	printf("%-6s  ", t->leader ? "yes" : "no");
	print_figures(t);
	print_cell_padded(stdout, t->comm, comm_width);
	print_cell(stdout, t->cmdline ? t->cmdline : "", true);
	putchar('\n');
}

/* For a rule that would signal nobody: the processes nearest to it, and the keys they fail,
 * so that nobody has to compare the rule with ps by eye. */
static int print_nearest(const Rule *r)
{
	CandidateList l = { 0 };
	char fails[128];
	int fails_width = 5, comm_width = 4;

	int res = match_nearest(r->match, r->leaders_only, 5, &l);
	if (res < 0)
		return res;
	if (l.n == 0)
		fprintf(stderr, "sigreload: rule %s: no process comes near it either\n", r->name);
	for (size_t i = 0; i < l.n; i++) {
		int w = (int)strlen(match_fails_format(l.v[i].fails, false, fails, sizeof(fails)));
		fails_width = w > fails_width ? w : fails_width;
		w = print_cell(NULL, l.v[i].t.comm, false);
		comm_width = w > comm_width ? w : comm_width;
	}
	if (l.n > 0)
		fprintf(stderr,
			"sigreload: rule %s: the nearest processes, and the keys of the rule they "
			"fail:\n  %7s  %7s  %10s  %-*s  %-*s  %s\n",
			r->name, "PID", "PPID", "UID", fails_width, "FAILS", comm_width, "COMM",
			"CMDLINE");
	for (size_t i = 0; i < l.n; i++) {
		fputs("  ", stderr);
		print_uid(stderr, &l.v[i].t);
		print_cell_padded(stderr,
				  match_fails_format(l.v[i].fails, false, fails, sizeof(fails)),
				  fails_width);
		print_cell_padded(stderr, l.v[i].t.comm, comm_width);
		print_cell(stderr, l.v[i].t.cmdline, true);
		fputc('\n', stderr);
	}
	candidate_list_done(&l);
	return 0;
}

/* Returns how many of its matches the rule would signal. */
static size_t print_match_summary(const Rule *r, const TargetList *l)
{
	size_t leaders = 0;
	char sig[SIGNAME_MAX];

	for (size_t i = 0; i < l->n; i++)
		leaders += l->v[i].leader;
	if (l->n == 0)
		fprintf(stderr,
			"sigreload: rule %s matches none of the %zu process%s visible here\n",
			r->name, l->scan.visited, l->scan.visited == 1 ? "" : "es");
	else
		fprintf(stderr, "sigreload: rule %s: %zu of %zu matching process%s would get %s\n",
			r->name, leaders, l->n, l->n == 1 ? "" : "es",
			signame_format(r->signal, sig));
	if (l->exe_denied > 0)
		fprintf(stderr,
			"sigreload: rule %s: the exe of %zu process%s is unreadable (another uid): "
			"match by comm or cmdline, or add capability SYS_PTRACE\n",
			r->name, l->exe_denied, l->exe_denied == 1 ? "" : "es");
	return leaders;
}

static int cmd_match(const Options *o)
{
	_cleanup_(rules_freep) Rules *rules = NULL;
	_cleanup_free_ const Matcher **m = NULL;
	_cleanup_free_ bool *leaders_only = NULL;
	_cleanup_free_ TargetList *lists = NULL;
	_cleanup_free_ const Rule **chosen = NULL;
	size_t n = 0;
	int name_width = 4, comm_width = 15, r;

	if (o->n_args > 1)
		return usage_error("match takes at most one rule name, got '%s' too", o->args[1]);
	if (!(rules = load_or_report(o)))
		return EXIT_USAGE;
	if (o->n_args == 1 && !rules_find(rules, o->args[0])) {
		fprintf(stderr, "sigreload: %s has no rule named '%s'; its rules are:", rules->file,
			o->args[0]);
		for (size_t i = 0; i < rules->n; i++)
			fprintf(stderr, " %s", rules->v[i].name);
		fputc('\n', stderr);
		return EXIT_USAGE;
	}
	m = calloc(rules->n, sizeof(*m));
	leaders_only = calloc(rules->n, sizeof(*leaders_only));
	lists = calloc(rules->n, sizeof(*lists));
	chosen = calloc(rules->n, sizeof(*chosen));
	if (!m || !leaders_only || !lists || !chosen)
		return EXIT_RUNTIME;
	for (size_t i = 0; i < rules->n; i++)
		if (o->n_args == 0 || rules_find(rules, o->args[0]) == &rules->v[i]) {
			chosen[n] = &rules->v[i];
			m[n] = rules->v[i].match;
			leaders_only[n] = rules->v[i].leaders_only;
			n++;
		}
	/* one scan for every rule; the columns sized to what they hold */
	r = match_find_many(m, leaders_only, n, true, lists);
	for (size_t i = 0; r == 0 && i < n; i++) {
		int w = (int)strlen(chosen[i]->name);
		name_width = w > name_width ? w : name_width;
		for (size_t j = 0; j < lists[i].n; j++) {
			w = print_cell(NULL, lists[i].v[j].comm, false);
			comm_width = w > comm_width ? w : comm_width;
		}
	}
	if (r == 0)
		printf("%-*s  %7s  %7s  %10s  %-6s  %6s  %7s  %4s  %5s  %5s  %-*s  %s\n",
		       name_width, "RULE", "PID", "PPID", "UID", "SIGNAL", "RSS", "CPU", "THR",
		       "FDS", "AGE", comm_width, "COMM", "CMDLINE");
	for (size_t i = 0; r == 0 && i < n; i++)
		for (size_t j = 0; j < lists[i].n; j++)
			print_match_row(chosen[i], &lists[i].v[j], name_width, comm_width);
	fflush(stdout);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (print_match_summary(chosen[i], &lists[i]) == 0 && lists[i].scan.visited > 0)
			r = print_nearest(chosen[i]);
	if (r == 0 && (getpid() == 1 || (n > 0 && lists[0].scan.seen <= 1)))
		fprintf(stderr, "sigreload: no process is visible here but sigreload itself: "
				"is shareProcessNamespace: true set on the pod?\n");
	for (size_t i = 0; i < n; i++)
		target_list_done(&lists[i]);
	if (r < 0) {
		fprintf(stderr, "sigreload: cannot scan /proc: %s\n", strerror(-r));
		return EXIT_RUNTIME;
	}
	return EXIT_OK;
}

static void hash_skip(const char *name, const char *why, void *userdata)
{
	(void)userdata;
	fputs("sigreload: ", stderr);
	print_cell(stderr, name, true); /* a newline in a name must not split the message */
	fprintf(stderr, ": %s\n", why);
}

static void hash_unreadable(const char *name, int err, void *userdata)
{
	char why[128];

	snprintf(why, sizeof(why),
		 "cannot read it (%s): counted by its identity (inode, ctime, size)",
		 strerror(err));
	hash_skip(name, why, userdata);
}

/* A rule digest as a '#' line: a comment to sha256sum -c, so the output stays checkable. */
static int print_digest_comment(const char *label, const char *name, const unsigned char *sha)
{
	DigestEntry e = { .name = (char *)name };
	memcpy(e.sha, sha, DIGEST_LEN);
	_cleanup_free_ char *line = digest_line(&e);

	if (!line)
		return -ENOMEM;
	printf("# %s %s", label, line);
	return 0;
}

static int cmd_hash(const Options *o)
{
	unsigned char total[DIGEST_LEN];
	DigestList all = { 0 };
	int status = EXIT_OK;

	if (o->n_args == 0)
		return usage_error("hash needs at least one PATH");
	for (int i = 0; i < o->n_args; i++) {
		DigestList l = { 0 };
		int r = digest_paths(
		    &o->args[i], 1, &l, total,
		    &(DigestHooks){ .skip = hash_skip, .unreadable = hash_unreadable }, NULL);
		if (r < 0) {
			status = EXIT_RUNTIME;
			if (r == -EINVAL)
				continue; /* hash_skip said what it is */
			fprintf(stderr, "sigreload: %s: %s\n", o->args[i],
				r == -E2BIG ? "more files than a rule may watch (10000)"
					    : strerror(-r));
			continue;
		}
		for (size_t j = 0; j < l.n; j++) {
			_cleanup_free_ char *line = digest_line(&l.v[j]);
			if (!line)
				return EXIT_RUNTIME;
			fputs(line, stdout);
		}
		print_digest_comment("rule-digest", o->args[i], total);
		digest_list_done(&l);
	}
	if (o->n_args > 1 && status == EXIT_OK) {
		if (digest_paths(o->args, (size_t)o->n_args, &all, total, NULL, NULL) == 0)
			print_digest_comment("rule-digest-all", "(all paths above)", total);
		digest_list_done(&all);
	}
	return status;
}

/* Once every fd is open: from here on, only the system calls the loop needs. */
static void lock_down(const Options *o)
{
	int r;

	if (o->no_seccomp)
		log_warn("seccomp filter off", LF_STR("why", "--no-seccomp"));
	else if (!sandbox_supported())
		log_info("seccomp filter off", LF_STR("why", "sanitizer build"));
	else if ((r = sandbox_apply()) < 0)
		log_warn("seccomp filter not applied", LF_ERRNO(-r),
			 LF_STR("next", "running without it"));
	else
		log_info("seccomp filter on",
			 LF_STR("allowed", "read-only files, inotify, signals, HTTP"));
}

static int cmd_run(const Options *o)
{
	EngineOptions eo = { .config_file = o->cmreload ? NULL : o->config,
			     .dry_run = o->dry_run,
			     .metrics_listen = o->metrics_listen,
			     .can_kill_any = caps_raise_kill() };
	Loop *loop = NULL;
	Engine *engine = NULL;
	Rules *rules;
	int r;

	if (o->n_args > 0)
		return usage_error("run takes no arguments, got '%s'", o->args[0]);
	if (o->log_format)
		eo.log_format_set = log_format_parse(o->log_format, &eo.log_format) == 0;
	if (o->log_level)
		eo.log_level_set = log_level_parse(o->log_level, &eo.log_level) == 0;
	if (!(rules = load_or_report(o)))
		return EXIT_USAGE;
	signal(SIGPIPE, SIG_IGN); /* a client that hangs up is an error code, not a death */
	if ((r = loop_new(&loop)) < 0 || (r = engine_new(&eo, rules, loop, &engine)) < 0) {
		fprintf(stderr, "sigreload: cannot start: %s\n", strerror(-r));
		loop_free(loop);
		return EXIT_RUNTIME;
	}
	r = engine_start(engine);
	if (r == 0) {
		lock_down(o);
		r = loop_run(loop, engine_dispatch, engine);
	}
	engine_free(engine);
	loop_free(loop);
	return r == 1 ? EXIT_OK : EXIT_RUNTIME;
}

static int run_command(const Options *o)
{
	if (strcmp(o->command, "check") == 0)
		return cmd_check(o);
	if (strcmp(o->command, "match") == 0)
		return cmd_match(o);
	if (strcmp(o->command, "hash") == 0)
		return cmd_hash(o);
	return cmd_run(o);
}

int main(int argc, char **argv)
{
	Options o = { 0 };

	int r = parse_args(argc, argv, &o);
	if (r < 0)
		r = run_command(&o);
	cmreload_done(&o.cm);
	return r;
}
