/* The inotify record parser: what the kernel hands read(2), whole or cut short. */
#include "unit.h"

#include <errno.h>
#include <sys/inotify.h>

#include "watch.h"

typedef struct Seen {
	int n;
	int wd[8];
	uint32_t mask[8];
	char name[8][32];
} Seen;

static void collect(int wd, uint32_t mask, const char *name, void *userdata)
{
	Seen *s = userdata;

	if (s->n >= 8)
		return;
	s->wd[s->n] = wd;
	s->mask[s->n] = mask;
	snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name ? name : "(null)");
	s->n++;
}

/* Appends one record with name padded to pad bytes (0: no name) at buf + *len. */
static void put(char *buf, size_t *len, int wd, uint32_t mask, const char *name, uint32_t pad)
{
	struct inotify_event ev = { .wd = wd, .mask = mask, .len = pad };

	memcpy(buf + *len, &ev, sizeof(ev));
	*len += sizeof(ev);
	memset(buf + *len, 0, pad);
	if (name)
		memcpy(buf + *len, name, strlen(name));
	*len += pad;
}

static void test_records(void **state)
{
	char raw[512] __attribute__((aligned(8)));
	size_t len = 0;
	Seen s = { 0 };
	(void)state;

	put(raw, &len, 1, IN_CLOSE_WRITE, "app.conf", 16);
	put(raw, &len, 2, IN_DELETE_SELF, NULL, 0);
	put(raw, &len, 3, IN_MOVED_TO, "..data", 16);
	put(raw, &len, 4, IN_CREATE, "", 16); /* an all-NUL name is no name */
	assert_int_equal(watch_parse_events(raw, len, collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.wd[0], 1);
	assert_int_equal(s.mask[0], IN_CLOSE_WRITE);
	assert_string_equal(s.name[0], "app.conf");
	assert_string_equal(s.name[1], "(null)");
	assert_string_equal(s.name[2], "..data");
	assert_string_equal(s.name[3], "(null)");

	/* the same bytes one off alignment: parsed the same */
	char shifted[520];
	memcpy(shifted + 1, raw, len);
	s = (Seen){ 0 };
	assert_int_equal(watch_parse_events(shifted + 1, len, collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.name[2], "..data");
}

static void test_broken(void **state)
{
	char raw[256] __attribute__((aligned(8)));
	size_t len = 0;
	Seen s = { 0 };
	(void)state;

	put(raw, &len, 1, IN_MODIFY, "a", 16);
	put(raw, &len, 2, IN_MODIFY, "b", 16);
	/* cut inside the second record's header, then inside its name */
	for (size_t cut = len - 16 - sizeof(struct inotify_event) + 1; cut < len; cut++) {
		s = (Seen){ 0 };
		assert_int_equal(watch_parse_events(raw, cut, collect, &s), -EIO);
		assert_int_equal(s.n, 1); /* what came before the broken record was delivered */
	}
	/* a name with no NUL in its length */
	len = 0;
	put(raw, &len, 1, IN_MODIFY, "0123456789abcdef", 16);
	s = (Seen){ 0 };
	assert_int_equal(watch_parse_events(raw, len, collect, &s), -EIO);
	assert_int_equal(s.n, 0);
	/* a length that runs past the buffer */
	struct inotify_event ev = { .wd = 1, .mask = IN_MODIFY, .len = 0xffffffffu };
	memcpy(raw, &ev, sizeof(ev));
	assert_int_equal(watch_parse_events(raw, sizeof(ev) + 8, collect, &s), -EIO);
	assert_int_equal(watch_parse_events(raw, 0, collect, &s), 0); /* nothing is fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_broken),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
