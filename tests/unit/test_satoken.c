/* Projected service-account tokens: told apart from legacy tokens and other JWTs, found in a
 * volume's keys. */
#include "unit.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "satoken.h"

#define HEADER "{\"alg\":\"RS256\",\"kid\":\"3YsF9xQ\"}"
/* the claims of a token from the TokenRequest API, as the kubelet projects it */
#define PROJECTED                                                                                  \
	"{\"aud\":[\"https://kubernetes.default.svc.cluster.local\"],\"exp\":1798761600,"          \
	"\"iat\":1798758000,\"iss\":\"https://kubernetes.default.svc.cluster.local\","             \
	"\"kubernetes.io\":{\"namespace\":\"web\",\"pod\":{\"name\":\"web-0\",\"uid\":\"1b6c\"},"  \
	"\"serviceaccount\":{\"name\":\"default\",\"uid\":\"8f2e\"},\"warnafter\":1798761242},"    \
	"\"nbf\":1798758000,\"sub\":\"system:serviceaccount:web:default\"}"
/* a token from a kubernetes.io/service-account-token Secret: no expiry, never rotated */
#define LEGACY                                                                                     \
	"{\"iss\":\"kubernetes/serviceaccount\",\"kubernetes.io/serviceaccount/"                   \
	"namespace\":\"web\","                                                                     \
	"\"kubernetes.io/serviceaccount/service-account.name\":\"default\","                       \
	"\"sub\":\"system:serviceaccount:web:default\"}"

static char *b64url(const char *in)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t len = strlen(in), n = 0;
	char *out = malloc(len * 4 / 3 + 4);
	unsigned bits = 0, nbits = 0;

	assert_non_null(out);
	for (size_t i = 0; i < len; i++) {
		bits = (bits << 8) | (unsigned char)in[i];
		for (nbits += 8; nbits >= 6; nbits -= 6)
			out[n++] = abc[(bits >> (nbits - 6)) & 63];
	}
	if (nbits)
		out[n++] = abc[(bits << (6 - nbits)) & 63];
	out[n] = '\0';
	return out;
}

/* header.claims.signature, then suffix */
static char *jwt(const char *claims, const char *suffix)
{
	char *h = b64url(HEADER), *c = b64url(claims);
	char *t = xasprintf("%s.%s.c2lnbmF0dXJl%s", h, c, suffix);
	free(h);
	free(c);
	return t;
}

static void test_is_projected(void **state)
{
	static const struct {
		const char *what, *claims, *suffix;
		bool want;
	} cases[] = {
		{ "a projected token", PROJECTED, "", true },
		{ "with a newline", PROJECTED, "\n", true },
		{ "a legacy Secret token", LEGACY, "", false },
		{ "another issuer's JWT", "{\"iss\":\"https://vault\",\"exp\":1,\"sub\":\"x\"}", "",
		  false },
		{ "no expiry", "{\"kubernetes.io\":{\"namespace\":\"web\"}}", "", false },
		{ "a fourth segment", PROJECTED, ".eyJ9", false },
		{ "text after it", PROJECTED, " and more", false },
	};
	(void)state;

	for (size_t i = 0; i < ELEMS(cases); i++) {
		char *t = jwt(cases[i].claims, cases[i].suffix);
		if (satoken_is_projected(t, strlen(t)) != cases[i].want)
			fail_msg("%s: not %s", cases[i].what, cases[i].want ? "found" : "refused");
		free(t);
	}
	static const char *const junk[] = {
		"",
		"eyJ",
		"eyJ..",
		"hello world\n",
		"eyJhbGciOiJub25lIn0.eyJleHAiOjF9",
		"eyJhbGciOiJub25lIn0.e*J.x",
		"apiVersion: v1\nkind: Config\n",
	};
	for (size_t i = 0; i < ELEMS(junk); i++)
		if (satoken_is_projected(junk[i], strlen(junk[i])))
			fail_msg("\"%s\" taken for a token", junk[i]);

	/* claims larger than a token can be: refused, never overrun */
	char *big = malloc(40000);
	assert_non_null(big);
	memset(big, 'a', 39999);
	big[39999] = '\0';
	char *t = jwt(big, "");
	assert_false(satoken_is_projected(t, strlen(t)));
	free(t);
	free(big);
}

static void put(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

/* A volume as the kubelet writes it: keys in a timestamped directory, ..data linking to it. */
static char *volume(const char *dir, const char *name, const char *token_claims)
{
	char *vol = xasprintf("%s/%s", dir, name),
	     *ts = xasprintf("%s/..2026_11_22_10_00_00.42", vol);
	char *key = xasprintf("%s/ca.crt", ts);

	assert_int_equal(mkdir(vol, 0755), 0);
	assert_int_equal(mkdir(ts, 0755), 0);
	put(key, "-----BEGIN CERTIFICATE-----\n");
	free(key);
	key = xasprintf("%s/app.conf", ts);
	put(key, "listen 80;\n");
	free(key);
	if (token_claims) {
		char *t = jwt(token_claims, "");
		key = xasprintf("%s/token", ts);
		put(key, t);
		free(key);
		free(t);
	}
	key = xasprintf("%s/..data", vol);
	assert_int_equal(symlink("..2026_11_22_10_00_00.42", key), 0);
	free(key);
	free(ts);
	return vol;
}

static void test_find(void **state)
{
	const char *dir = *state;
	char found[PATH_MAX] = "";
	char *projected = volume(dir, "projected", PROJECTED),
	     *legacy = volume(dir, "legacy", LEGACY), *plain = volume(dir, "plain", NULL);
	char *token = xasprintf("%s/token", projected), *conf = xasprintf("%s/app.conf", projected);
	char *want = xasprintf("%s/token", projected);

	assert_int_equal(symlink("..data/token", token), 0);
	assert_int_equal(satoken_find(projected, found, sizeof(found)), 1);
	assert_string_equal(found, want);
	assert_int_equal(satoken_find(token, found, sizeof(found)), 1); /* the token itself */
	assert_string_equal(found, token);
	assert_int_equal(satoken_find(conf, found, sizeof(found)), 0); /* another key: no swap */
	assert_int_equal(satoken_find(legacy, found, sizeof(found)), 0);
	assert_int_equal(satoken_find(plain, found, sizeof(found)), 0);
	assert_int_equal(satoken_find(dir, found, sizeof(found)), 0); /* no ..data of its own */
	char *missing = xasprintf("%s/not-yet", dir);
	assert_int_equal(satoken_find(missing, found, sizeof(found)), 0);
	free(missing);
	free(want);
	free(conf);
	free(token);
	free(plain);
	free(legacy);
	free(projected);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_projected),
		cmocka_unit_test_setup_teardown(test_find, tmpdir_setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
