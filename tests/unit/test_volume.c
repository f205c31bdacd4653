/* Which names are keys: the rule the digest and the watches share. */
#include "unit.h"

#include <stdbool.h>

#include "volume.h"

static void test_keys(void **state)
{
	static const struct {
		const char *name;
		bool below_data, hidden;
	} cases[] = {
		{ "app.conf", false, false },
		{ "app.conf", true, false },
		{ ".env", false, true }, /* a dot file of a plain directory: .git, .swp */
		{ ".env", true, false }, /* a ConfigMap key may start with one dot */
		{ "..data", false, true },
		{ "..data", true, true },
		{ "..data_tmp", true, true },
		{ "..2026_01_01_00_00_00.123456789", false, true },
		{ "..2026_01_01_00_00_00.123456789", true, true },
		{ ".", true, true },
		{ "..", true, true },
		{ "x..y", false, false },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		if (volume_hidden(cases[i].name, cases[i].below_data) != cases[i].hidden)
			fail_msg("\"%s\" %s ..data: hidden should be %d", cases[i].name,
				 cases[i].below_data ? "below" : "outside", cases[i].hidden);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
