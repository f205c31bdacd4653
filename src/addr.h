/* addr.h: the metrics_listen syntax: ":9533", "127.0.0.1:9533", "[::1]:9533", "localhost:9533". */
#ifndef SIGRELOAD_ADDR_H
#define SIGRELOAD_ADDR_H

#include <sys/socket.h>

typedef struct ListenAddr {
	/* ss_family is AF_UNSPEC for ":PORT" (every interface); the port is in port. */
	struct sockaddr_storage ss;
	socklen_t len;
	unsigned port;
} ListenAddr;

/* Returns 0 or -EINVAL. An empty string is not an address: callers treat it as "disabled". */
int addr_parse(const char *s, ListenAddr *out);

#endif
