/* /proc/PID/stat and /proc/PID/status parsing, with hostile comm values and broken lines. */
#include "unit.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proc.h"

/* A stat line as Linux 6.x prints it: comm in parentheses, then fields 3 to 52. */
static int make_stat(char *buf, size_t size, const char *pid, const char *comm, const char *state,
		     const char *ppid, const char *flags, const char *starttime)
{
	return snprintf(buf, size,
			"%s (%s) %s %s 4242 4242 0 -1 %s 2212 0 0 0 3 5 0 0 20 0 1 0 %s "
			"8605696 1184 18446744073709551615 94358233776128 94358233798893 "
			"140723635467264 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94358233812144 "
			"94358233813632 94358265421824 140723635474011 140723635474036 "
			"140723635474036 140723635478507 0\n",
			pid, comm, state, ppid, flags, starttime);
}

static void test_stat_comm(void **state)
{
	static const char *const comms[] = {
		"nginx",
		"a) (b", /* the classic: ") (" inside comm */
		")",
		"((",
		"(",
		"))",
		"x) R 2 3 4", /* fake fields: only the last ')' ends comm */
		"a b c",
		"a\nb", /* the kernel prints comm raw in stat */
		"123456789012345", /* TASK_COMM_LEN - 1 */
		"",
		"abc) ",
		" ",
		"\t",
		"caf\xc3\xa9",
		"\xff\xfe",
		"kworker/u16:3-events_unbound",
		"a23456789b23456789c23456789d23456789e23456789f23456789g23456789",
	};
	char line[1024];
	(void)state;

	for (size_t i = 0; i < ELEMS(comms); i++) {
		ProcStat st;
		int n =
		    make_stat(line, sizeof(line), "4242", comms[i], "S", "17", "4194560", "98765");
		int r = proc_stat_parse(line, (size_t)n, &st);
		if (r != 0)
			fail_msg("comm \"%s\": proc_stat_parse = %d", comms[i], r);
		assert_string_equal(st.comm, comms[i]);
		assert_int_equal(st.pid, 4242);
		assert_int_equal(st.ppid, 17);
		assert_int_equal(st.state, 'S');
		assert_int_equal(st.flags, 4194560);
		assert_int_equal(st.starttime, 98765);
	}
}

static void test_stat_comm_too_long(void **state)
{
	char comm[PROC_COMM_MAX + 1], line[1024];
	ProcStat st = { .pid = 99 };
	(void)state;

	memset(comm, 'x', PROC_COMM_MAX);
	comm[PROC_COMM_MAX] = '\0';
	int n = make_stat(line, sizeof(line), "1", comm, "S", "0", "0", "1");
	assert_int_equal(proc_stat_parse(line, (size_t)n, &st), -EINVAL);
	assert_int_equal(st.pid, 99); /* untouched on failure */
}

static void test_stat_fields(void **state)
{
	static const struct {
		const char *pid, *state, *ppid, *flags, *starttime;
		int ret;
		pid_t want_pid, want_ppid;
		unsigned want_flags;
		unsigned long long want_start;
	} cases[] = {
		{ "1", "S", "0", "0", "0", 0, 1, 0, 0, 0 },
		{ "2147483647", "R", "2147483647", "4294967295", "18446744073709551615", 0, INT_MAX,
		  INT_MAX, UINT_MAX, ULLONG_MAX },
		{ "18446744073709551610", "S", "1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "2147483648", "S", "1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "0", "S", "1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "-1", "S", "1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "12a", "S", "1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "", "S", "1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "2147483648", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "-1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "1", "4294967296", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "1", "0x10", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "1", "0", "18446744073709551616", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "1", "0", "99999999999999999999999", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "1", "0", "-5", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "1", "0", "", -EINVAL, 0, 0, 0, 0 },
		{ "5", "", "1", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "", "0", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "S", "1", "", "1", -EINVAL, 0, 0, 0, 0 },
		{ "5", "Z", "1", "0", "7", 0, 5, 1, 0, 7 },
		{ "5", "I", "2", "2097152", "7", 0, 5, 2, 2097152, 7 },
	};
	char line[1024];
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		ProcStat st = { .pid = 99 };
		int n = make_stat(line, sizeof(line), cases[i].pid, "comm", cases[i].state,
				  cases[i].ppid, cases[i].flags, cases[i].starttime);
		int r = proc_stat_parse(line, (size_t)n, &st);
		if (r != cases[i].ret)
			fail_msg("case %zu (pid %s ppid %s flags %s start %s): %d, want %d", i,
				 cases[i].pid, cases[i].ppid, cases[i].flags, cases[i].starttime, r,
				 cases[i].ret);
		if (r < 0) {
			assert_int_equal(st.pid, 99);
			continue;
		}
		assert_int_equal(st.pid, cases[i].want_pid);
		assert_int_equal(st.ppid, cases[i].want_ppid);
		assert_int_equal(st.state, cases[i].state[0]);
		assert_int_equal(st.flags, cases[i].want_flags);
		assert_true(st.starttime == cases[i].want_start);
	}
}

/* Every prefix of a line that ends before field 22 is complete is refused: a short read must
 * never give a process a wrong start time, its identity. */
static void test_stat_truncated(void **state)
{
	char line[1024];
	(void)state;

	int n = make_stat(line, sizeof(line), "4242", "a) (b", "S", "17", "4194560", "98765");
	const char *start = strstr(line, " 98765 ") + 1;
	size_t complete = (size_t)(start - line) + strlen("98765 ");
	for (size_t len = 0; len < (size_t)n; len++) {
		ProcStat st = { .pid = 99 };
		int r = proc_stat_parse(line, len, &st);
		if (len < complete && r != -EINVAL)
			fail_msg("a line cut to %zu bytes parsed (starttime %llu): \"%.*s\"", len,
				 st.starttime, (int)len, line);
		if (len >= complete && (r != 0 || st.starttime != 98765))
			fail_msg("a line of %zu bytes (all fields up to 22) gave %d", len, r);
	}
}

static void test_stat_malformed(void **state)
{
	static const char *const lines[] = {
		"",
		"4242",
		"4242 ",
		"4242 (",
		"4242 (x",
		"4242 x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
		"4242(x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
		" 4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
		"4242 )x( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
		"(x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
		/* field 4 (ppid), 9 (flags) or 22 (starttime) is not a number */
		"4242 (x) S - 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
		"4242 (x) S 1 2 3 4 5 6x 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
		"4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1x 20 21 22\n",
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(lines); i++) {
		ProcStat st = { .pid = 99 };
		int r = proc_stat_parse(lines[i], strlen(lines[i]), &st);
		if (r != -EINVAL)
			fail_msg("\"%s\" parsed (%d)", lines[i], r);
		assert_int_equal(st.pid, 99);
	}
}

/* The parser reads len bytes, not up to a NUL: what follows is not part of the line. */
static void test_stat_len(void **state)
{
	static const char buf[] = "7 (a) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 "
				  "22\n) S 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9";
	ProcStat st;
	(void)state;

	assert_int_equal(proc_stat_parse(buf, strchr(buf, '\n') + 1 - buf, &st), 0);
	assert_string_equal(st.comm, "a");
	assert_int_equal(st.ppid, 1);
	assert_int_equal(st.flags, 6); /* field 9 */
	assert_int_equal(st.starttime, 19); /* field 22 */
}

static const char status_head[] = "Name:\tnginx\n"
				  "Umask:\t0022\n"
				  "State:\tS (sleeping)\n"
				  "Tgid:\t4242\n"
				  "Pid:\t4242\n"
				  "PPid:\t1\n";

/* A status file with the given values after "Uid:" etc.; NULL leaves that line out. */
static size_t status_text(char *buf, size_t size, const char *uid, const char *blk, const char *ign,
			  const char *cgt)
{
	FILE *f = fmemopen(buf, size, "w");

	assert_non_null(f);
	fputs(status_head, f);
	if (uid)
		fprintf(f, "Uid:%s\n", uid);
	fputs("Gid:\t101\t101\t101\t101\nSigQ:\t0/63438\nSigPnd:\t0000000000000000\n"
	      "ShdPnd:\t0000000000000000\n",
	      f);
	if (blk)
		fprintf(f, "SigBlk:%s\n", blk);
	if (ign)
		fprintf(f, "SigIgn:%s\n", ign);
	if (cgt)
		fprintf(f, "SigCgt:%s\n", cgt);
	fputs("CapInh:\t0000000000000000\nvoluntary_ctxt_switches:\t12\n", f);
	long n = ftell(f);
	fclose(f);
	return (size_t)n;
}

static void test_status(void **state)
{
	static const struct {
		const char *uid, *blk, *ign, *cgt;
		int ret;
		uid_t want_uid;
		uint64_t want_blk, want_ign, want_cgt;
	} cases[] = {
		{ "\t101\t101\t101\t101", "\t0000000000000000", "\t0000000000001000",
		  "\t0000000184004a03", 0, 101, 0, 0x1000, 0x184004a03ULL },
		{ "\t0\t0\t0\t0", "\tfffffffe7ffbfeff", "\t0000000000000000", "\tffffffffffffffff",
		  0, 0, 0xfffffffe7ffbfeffULL, 0, UINT64_MAX },
		{ "\t4294967295\t0\t0\t0", "\t0", "\t1", "\tABCDEF", 0, 4294967295u, 0, 1,
		  0xabcdef },
		{ " 65532 65532 65532 65532", " 0", " 0", " 4a03", 0, 65532, 0, 0, 0x4a03 },
		/* the real uid is the first of the four */
		{ "\t1000\t0\t0\t0", "\t0", "\t0", "\t1", 0, 1000, 0, 0, 1 },
		/* missing lines */
		{ NULL, "\t0", "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", NULL, "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t0", NULL, "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t0", "\t0", NULL, -EINVAL, 0, 0, 0, 0 },
		/* bad values */
		{ "\t4294967296\t0\t0\t0", "\t0", "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t-1\t0\t0\t0", "\t0", "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t", "\t0", "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\troot", "\t0", "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t", "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t0", "\tzzzz", "\t0", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t0", "\t0", "\t00000000000000000", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t0", "\t0", "\t12zz", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t0", "\t0", "\t0x4a03", -EINVAL, 0, 0, 0, 0 },
		{ "\t0\t0\t0\t0", "\t-1", "\t0", "\t0", -EINVAL, 0, 0, 0, 0 },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		char buf[2048];
		size_t n = status_text(buf, sizeof(buf), cases[i].uid, cases[i].blk, cases[i].ign,
				       cases[i].cgt);
		ProcStatus st = { .uid = 99 };
		int r = proc_status_parse(buf, n, &st);
		if (r != cases[i].ret)
			fail_msg("case %zu: proc_status_parse = %d, want %d:\n%s", i, r,
				 cases[i].ret, buf);
		if (r < 0) {
			assert_int_equal(st.uid, 99); /* untouched on failure */
			continue;
		}
		assert_int_equal(st.uid, cases[i].want_uid);
		assert_true(st.sig_blk == cases[i].want_blk);
		assert_true(st.sig_ign == cases[i].want_ign);
		assert_true(st.sig_cgt == cases[i].want_cgt);
	}
}

/* The kernel's order puts Name first: a line forged into it (if the kernel ever printed a
 * newline there) comes before the real one, and the real one wins. */
static void test_status_forged_line(void **state)
{
	static const char buf[] = "Name:\tevil\nUid:\t0\t0\t0\t0\nSigCgt:\tffffffffffffffff\n"
				  "Uid:\t1000\t1000\t1000\t1000\nSigBlk:\t0\nSigIgn:\t0\n"
				  "SigCgt:\t0000000000000000\n";
	ProcStatus st;
	(void)state;

	assert_int_equal(proc_status_parse(buf, sizeof(buf) - 1, &st), 0);
	assert_int_equal(st.uid, 1000);
	assert_true(st.sig_cgt == 0);
}

/* The last line needs no newline, and bytes past len are not read. */
static void test_status_len(void **state)
{
	static const char buf[] = "Uid:\t7\t7\t7\t7\nSigBlk:\t1\nSigIgn:\t2\nSigCgt:\t3"
				  "f\nUid:\t0\n";
	ProcStatus st;
	(void)state;

	assert_int_equal(proc_status_parse(buf, strchr(buf, 'f') - buf, &st), 0);
	assert_int_equal(st.uid, 7);
	assert_true(st.sig_cgt == 3);
	assert_int_equal(proc_status_parse(buf, strchr(buf, 'f') - buf - 1, &st), -EINVAL);
}

/* The CPU and memory fields /metrics shows (14, 15, 23, 24): there when the line has them
 * whole, 0 when it stops before them or inside them, which a scan never needs. */
static void test_stat_cpu_memory(void **state)
{
	char line[1024];
	ProcStat st;
	(void)state;

	int n = make_stat(line, sizeof(line), "4242", "a) (b", "S", "17", "0", "98765");
	assert_int_equal(proc_stat_parse(line, (size_t)n, &st), 0);
	assert_true(st.utime == 3 && st.stime == 5);
	assert_true(st.vsize == 8605696 && st.rss == 1184);
	size_t cut = (size_t)(strstr(line, " 1184 ") - line) + 3; /* inside rss */
	assert_int_equal(proc_stat_parse(line, cut, &st), 0);
	assert_true(st.starttime == 98765 && st.vsize == 0 && st.rss == 0);
	cut = (size_t)(strstr(line, " 8605696 ") - line) + 1; /* right after starttime */
	assert_int_equal(proc_stat_parse(line, cut, &st), 0);
	assert_true(st.utime == 3 && st.vsize == 0);
}

/* The real files of this process parse, and agree with what the kernel says elsewhere. */
static void test_read_self(void **state)
{
	ProcStat st;
	ProcStatus status;
	(void)state;

	assert_int_equal(proc_read_stat(getpid(), &st), 0);
	assert_int_equal(st.pid, getpid());
	assert_int_equal(st.ppid, getppid());
	assert_true(st.state == 'R' || st.state == 'S');
	assert_string_equal(st.comm, "test_proc");
	assert_int_equal(proc_read_status(getpid(), &status), 0);
	assert_int_equal(status.uid, getuid());
	ProcStat self;
	assert_int_equal(proc_read_self(&self), 0);
	assert_int_equal(self.pid, getpid());
	assert_true(self.vsize > 0 && self.rss > 0);
	assert_int_equal(proc_read_stat(INT_MAX, &st), -ENOENT);
	assert_int_equal(proc_read_status(INT_MAX, &status), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stat_comm),      cmocka_unit_test(test_stat_comm_too_long),
		cmocka_unit_test(test_stat_fields),    cmocka_unit_test(test_stat_truncated),
		cmocka_unit_test(test_stat_malformed), cmocka_unit_test(test_stat_len),
		cmocka_unit_test(test_status),	       cmocka_unit_test(test_status_forged_line),
		cmocka_unit_test(test_status_len),     cmocka_unit_test(test_stat_cpu_memory),
		cmocka_unit_test(test_read_self),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
