/* churn: a busy directory, as a shared /tmp or /var/run is: creates and removes one file in DIR
 * as fast as it can for SECONDS, then prints how many entries it created and removed.
 *
 *   churn DIR SECONDS
 *
 * Prints "ready" when it starts and "churned <creates> <removes>" when done. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long long creates = 0, removes = 0;

	if (argc != 3 || atof(argv[2]) <= 0 || chdir(argv[1]) < 0) {
		fprintf(stderr, "usage: churn DIR SECONDS\n");
		return 2;
	}
	double end = now_s() + atof(argv[2]);
	printf("ready\n");
	fflush(stdout);
	while (now_s() < end) {
		/* a batch between clock reads: the clock is cheap, the point is the entries */
		for (int i = 0; i < 64; i++) {
			int fd = open(".churn", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd < 0) {
				perror("churn: open");
				return 1;
			}
			close(fd);
			creates++;
			if (unlink(".churn") < 0) {
				perror("churn: unlink");
				return 1;
			}
			removes++;
		}
	}
	printf("churned %llu %llu\n", creates, removes);
	return 0;
}
