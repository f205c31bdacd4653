/* fuzz_proc: proc_stat_parse and proc_status_parse on arbitrary bytes (the buffers are exactly
 * the input's size, so ASan sees any read past them), and a property: any comm the kernel can
 * print (up to 63 bytes of anything but NUL: spaces, ')', newlines...) inside an otherwise
 * well-formed stat line is parsed back exactly, with the numeric fields around it (the
 * identity a scan needs, and the CPU and memory ones /metrics shows).
 * The first byte picks the mode. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "proc.h"

static void raw_stat(const uint8_t *data, size_t size)
{
	ProcStat st;
	memset(&st, 0x5a, sizeof(st));
	ProcStat before = st;

	int r = proc_stat_parse((const char *)data, size, &st);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL, "proc_stat_parse returned %d", r);
		FUZZ_CHECK(memcmp(&st, &before, sizeof(st)) == 0, "out-parameter written on failure");
		return;
	}
	FUZZ_CHECK(st.pid > 0, "pid %d accepted", (int)st.pid);
	FUZZ_CHECK(st.ppid >= 0, "ppid %d accepted", (int)st.ppid);
	FUZZ_CHECK(memchr(st.comm, '\0', sizeof(st.comm)) != NULL, "comm not NUL-terminated");
}

static void raw_status(const uint8_t *data, size_t size)
{
	ProcStatus s;
	memset(&s, 0x5a, sizeof(s));
	ProcStatus before = s;

	int r = proc_status_parse((const char *)data, size, &s);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL, "proc_status_parse returned %d", r);
		FUZZ_CHECK(memcmp(&s, &before, sizeof(s)) == 0, "out-parameter written on failure");
	}
}

static uint64_t take(const uint8_t **p, size_t *n, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes && *n > 0; i++, (*p)++, (*n)--)
		v = (v << 8) | **p;
	return v;
}

/* A line as Linux 6.x prints it, with the input's comm and numbers. */
static void roundtrip_stat(const uint8_t *data, size_t size)
{
	pid_t pid = (pid_t)(take(&data, &size, 4) % INT_MAX) + 1;
	pid_t ppid = (pid_t)(take(&data, &size, 4) % ((uint64_t)INT_MAX + 1));
	unsigned flags = (unsigned)take(&data, &size, 4);
	unsigned long long start = take(&data, &size, 8);
	/* from the numbers above, so that the committed inputs keep their comm */
	unsigned long long utime = start ^ (0x5bd1e995ULL * flags);
	unsigned long long rss = (unsigned long long)ppid * 4099;
	char state = "RSDZTtXxKWPI"[take(&data, &size, 1) % 12];
	char comm[PROC_COMM_MAX], line[1024];
	size_t n = 0;

	for (; n < size && n < PROC_COMM_MAX - 1; n++)
		comm[n] = data[n] ? (char)data[n] : '\x01';
	comm[n] = '\0';
	int len = snprintf(line, sizeof(line),
			   "%d (%s) %c %d 4242 4242 0 -1 %u 2212 0 0 0 %llu 5 0 0 20 0 1 0 %llu "
			   "8605696 %llu 18446744073709551615 94358233776128 94358233798893 "
			   "140723635467264 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94358233812144 "
			   "94358233813632 94358265421824 140723635474011 140723635474036 "
			   "140723635474036 140723635478507 0\n",
			   (int)pid, comm, state, (int)ppid, flags, utime, start, rss);
	ProcStat st;
	int r = proc_stat_parse(line, (size_t)len, &st);
	FUZZ_CHECK(r == 0, "a well-formed line refused (%d): %s", r, line);
	FUZZ_CHECK(strcmp(st.comm, comm) == 0, "comm \"%s\" read as \"%s\"", comm, st.comm);
	FUZZ_CHECK(st.utime == utime && st.stime == 5 && st.vsize == 8605696 && st.rss == rss,
		   "CPU or memory fields misread around comm \"%s\": utime %llu/%llu rss %llu/%llu",
		   comm, st.utime, utime, st.rss, rss);
	FUZZ_CHECK(st.pid == pid && st.ppid == ppid && st.flags == flags && st.starttime == start &&
			   st.state == state,
		   "fields misread around comm \"%s\": pid %d/%d ppid %d/%d flags %u/%u start %llu/%llu",
		   comm, (int)st.pid, (int)pid, (int)st.ppid, (int)ppid, st.flags, flags, st.starttime,
		   start);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* a copy of exactly the rest, so that a read past it is a heap overflow ASan reports */
	size_t n = size - 1;
	uint8_t *rest = malloc(n ? n : 1);
	memcpy(rest, data + 1, n);
	switch (data[0] % 3) {
	case 0:
		raw_stat(rest, n);
		break;
	case 1:
		raw_status(rest, n);
		break;
	default:
		roundtrip_stat(rest, n);
		break;
	}
	free(rest);
	return 0;
}
