/* libcurl-probe.c: links what sigreload's HTTP action calls from the image's static libcurl and
 * prints what that libcurl can do (tests/package/test_image.py builds it in the image's build
 * stage and runs it, under qemu for arm64). */
#include <curl/curl.h>
#include <stdio.h>

/* The multi interface driven by an event loop's sockets and timer, HTTPS with a private CA
 * and a client certificate, basic auth: referenced, so that the static link pulls them in.
 * Not called with arguments from the tests. */
int libcurl_probe_request(const char *url, const char *pem);
int libcurl_probe_request(const char *url, const char *pem)
{
	CURLM *multi = curl_multi_init();
	CURL *easy = curl_easy_init();
	int running = 0;

	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, NULL);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_CAINFO, pem);
	curl_easy_setopt(easy, CURLOPT_SSLCERT, pem);
	curl_easy_setopt(easy, CURLOPT_SSLKEY, pem);
	curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_multi_add_handle(multi, easy);
	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	curl_multi_remove_handle(multi, easy);
	curl_easy_cleanup(easy);
	curl_multi_cleanup(multi);
	return running;
}

int main(int argc, char **argv)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	printf("version %s\n", v->version);
	printf("ssl %s\n", v->ssl_version ? v->ssl_version : "none");
	printf("ares %s\n", v->ares ? v->ares : "none");
	printf("asynchdns %d\n", !!(v->features & CURL_VERSION_ASYNCHDNS));
	printf("protocols");
	for (const char *const *p = v->protocols; *p; p++)
		printf(" %s", *p);
	printf("\n");
	return argc > 2 ? libcurl_probe_request(argv[1], argv[2]) : 0;
}
