/* creds: run a program with the credentials runc gives a non-root Kubernetes container.
 *
 *   creds [--uid N] [--gid N] [--groups GIDS] [--caps LIST] [--no-new-privs] [--show] [--]
 *         PROG [ARG]...
 *
 * As containerd and CRI-O set them up for `runAsUser: N, capabilities: {drop: [ALL], add: LIST}`
 * (docs/SECURITY-MODES.md): the bounding set is LIST only; the uid and gids become N, the
 * supplementary groups GIDS (comma-separated: the pod's fsGroup and supplementalGroups; none by
 * default), the capabilities kept across the switch (PR_SET_KEEPCAPS); permitted =
 * effective = LIST; inheritable and ambient empty (so a plain binary loses LIST at execve, as in
 * Kubernetes, unlike podman and `setpriv --ambient-caps`); no_new_privs with --no-new-privs
 * (allowPrivilegeEscalation: false). Then execv(PROG). Must start as root.
 *
 * LIST: comma-separated names without CAP_ (kill, net_bind_service, ...) or numbers; "" or
 * "none" is the empty set (the default). --uid/--gid default to 65532. --show prints the
 * resulting "CapInh: ...", CapPrm, CapEff, CapBnd, CapAmb, NoNewPrivs, Uid and Gid lines of
 * /proc/self/status to stderr just before the execve.
 * Exit status: PROG's, or 127 with "creds: cannot execute PROG: <strerror> (errno N)" on stderr
 * when execve fails, 125 on a usage or set-up error. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXIT_SETUP 125
#define EXIT_EXEC  127

static const struct {
	const char *name;
	int cap;
} cap_names[] = {
	{ "chown", CAP_CHOWN },
	{ "dac_override", CAP_DAC_OVERRIDE },
	{ "dac_read_search", CAP_DAC_READ_SEARCH },
	{ "fowner", CAP_FOWNER },
	{ "fsetid", CAP_FSETID },
	{ "kill", CAP_KILL },
	{ "setgid", CAP_SETGID },
	{ "setuid", CAP_SETUID },
	{ "setpcap", CAP_SETPCAP },
	{ "net_bind_service", CAP_NET_BIND_SERVICE },
	{ "net_raw", CAP_NET_RAW },
	{ "sys_chroot", CAP_SYS_CHROOT },
	{ "sys_ptrace", CAP_SYS_PTRACE },
	{ "sys_admin", CAP_SYS_ADMIN },
	{ "mknod", CAP_MKNOD },
	{ "audit_write", CAP_AUDIT_WRITE },
	{ "setfcap", CAP_SETFCAP },
};

static void die(const char *what)
{
	fprintf(stderr, "creds: %s: %s\n", what, strerror(errno));
	exit(EXIT_SETUP);
}

static void usage(const char *msg)
{
	fprintf(stderr,
		"creds: %s\nusage: creds [--uid N] [--gid N] [--groups GIDS] [--caps LIST] "
		"[--no-new-privs] [--show] [--] PROG [ARG]...\n",
		msg);
	exit(EXIT_SETUP);
}

static unsigned long number(const char *s, unsigned long max, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		usage(what);
	return v;
}

static int cap_parse(const char *s)
{
	if (strncasecmp(s, "cap_", 4) == 0)
		s += 4;
	for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (strcasecmp(s, cap_names[i].name) == 0)
			return cap_names[i].cap;
	return (int)number(s, 63, "unknown capability in --caps");
}

static uint64_t caps_parse(const char *list)
{
	uint64_t set = 0;
	char buf[512], *save = NULL;

	if (strcmp(list, "none") == 0)
		return 0;
	if (strlen(list) >= sizeof(buf))
		usage("--caps list too long");
	strcpy(buf, list);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		set |= UINT64_C(1) << cap_parse(t);
	return set;
}

/* "2000,3000" into gids; returns how many. */
static size_t groups_parse(const char *list, gid_t *gids, size_t max)
{
	char buf[512], *save = NULL;
	size_t n = 0;

	if (strlen(list) >= sizeof(buf))
		usage("--groups list too long");
	strcpy(buf, list);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n == max)
			usage("too many --groups");
		gids[n++] = (gid_t)number(t, UINT32_MAX - 1, "bad gid in --groups");
	}
	return n;
}

static int cap_last(void)
{
	int last = CAP_LAST_CAP;
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");

	if (f) {
		if (fscanf(f, "%d", &last) != 1)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	return last;
}

/* The bounding set is per thread and can only shrink: drop everything not in `keep`. */
static void bounding_keep(uint64_t keep)
{
	for (int c = 0; c <= cap_last(); c++)
		if (!(keep & (UINT64_C(1) << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			die("PR_CAPBSET_DROP");
}

static void caps_set(uint64_t set)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = { 0 };

	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
		d[i].permitted = d[i].effective = (uint32_t)(set >> (32 * i));
		d[i].inheritable = 0;
	}
	if (syscall(SYS_capset, &h, d) < 0)
		die("capset");
}

static void show(void)
{
	static const char *const keys[] = { "Uid:",    "Gid:",	  "Groups:",
					    "CapInh:", "CapPrm:", "CapEff:",
					    "CapBnd:", "CapAmb:", "NoNewPrivs:" };
	char line[512];
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		die("/proc/self/status");
	while (fgets(line, sizeof(line), f))
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strncmp(line, keys[i], strlen(keys[i])) == 0)
				fputs(line, stderr);
	fclose(f);
}

int main(int argc, char **argv)
{
	unsigned long uid = 65532, gid = 65532;
	uint64_t caps = 0;
	gid_t groups[32];
	size_t n_groups = 0;
	bool nnp = false, verbose = false;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--no-new-privs") == 0) {
			nnp = true;
		} else if (strcmp(argv[i], "--show") == 0) {
			verbose = true;
		} else if (i + 1 >= argc) {
			usage("missing value");
		} else if (strcmp(argv[i], "--uid") == 0) {
			uid = number(argv[++i], UINT32_MAX - 1, "bad --uid");
		} else if (strcmp(argv[i], "--gid") == 0) {
			gid = number(argv[++i], UINT32_MAX - 1, "bad --gid");
		} else if (strcmp(argv[i], "--groups") == 0) {
			n_groups =
			    groups_parse(argv[++i], groups, sizeof(groups) / sizeof(groups[0]));
		} else if (strcmp(argv[i], "--caps") == 0) {
			caps = caps_parse(argv[++i]);
		} else {
			usage("unknown option");
		}
	}
	if (i >= argc)
		usage("no program");
	if (geteuid() != 0)
		usage("must start as root");

	bounding_keep(caps);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		die("PR_SET_KEEPCAPS");
	if (setgroups(n_groups, groups) < 0)
		die("setgroups");
	if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0)
		die("setresgid");
	if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
		die("setresuid");
	/* setresuid away from 0 cleared the effective set (permitted survives KEEPCAPS): set both,
	 * which also drops every permitted capability not in caps. */
	caps_set(caps);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		die("PR_CAP_AMBIENT_CLEAR_ALL");
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		die("PR_SET_KEEPCAPS");
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("PR_SET_NO_NEW_PRIVS");
	if (verbose)
		show();

	execv(argv[i], argv + i);
	fprintf(stderr, "creds: cannot execute %s: %s (errno %d)\n", argv[i], strerror(errno),
		errno);
	return EXIT_EXEC;
}
