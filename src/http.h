/* http.h: /metrics, /healthz and /readyz over libmicrohttpd, driven by sigreload's own loop. */
#ifndef SIGRELOAD_HTTP_H
#define SIGRELOAD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define HTTP_MAX_CONNECTIONS	   32
#define HTTP_MAX_PER_IP		   16
#define HTTP_TIMEOUT_S		   10
#define HTTP_MEMORY_PER_CONNECTION 16384 /* the request line and headers must fit */
/* A request's line and headers must all arrive within this, counted from the connection's
 * accept (or the end of its previous request): libmicrohttpd's timeout counts idle time only,
 * so a client sending one byte every few seconds would hold its slot forever. */
#define HTTP_REQUEST_DEADLINE_S 5
/* Slots kept free for a probe: past this many connections, a new one closes the oldest that
 * has no request in progress. */
#define HTTP_SPARE_CONNECTIONS 4

typedef struct HttpHandlers {
	/* The exposition, malloc'd; NULL answers 500. */
	char *(*metrics)(void *userdata, size_t *len);
	/* Whether sigreload is ready; *why says why not. */
	bool (*ready)(void *userdata, const char **why);
	void *userdata;
} HttpHandlers;

typedef struct Http Http;

/* Binds addr (the metrics_listen syntax). On failure returns -errno and err says what failed. */
int http_new(const char *addr, const HttpHandlers *h, Http **out, char *err, size_t errsize);
void http_free(Http *h);

Source *http_source(Http *h);
/* The bound address, as "127.0.0.1:9533" or "[::]:9533". */
const char *http_address(const Http *h);

/* Runs what is ready: new connections, requests, responses, timeouts. */
void http_dispatch(Http *h);

/* When http_dispatch must run again for timeouts (CLOCK_MONOTONIC ns), or 0 for never. */
uint64_t http_deadline(Http *h);

#endif
