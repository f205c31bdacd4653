/* sandbox.h: least privilege inside the process once start-up is done: no_new_privs and a
 * seccomp filter allowing only the system calls sigreload's loop makes. */
#ifndef SIGRELOAD_SANDBOX_H
#define SIGRELOAD_SANDBOX_H

#include <stdbool.h>

/* Whether this build can apply the filter (sanitizer runtimes need system calls it forbids). */
bool sandbox_supported(void);

/* Sets no_new_privs and loads the filter: every other system call fails with EPERM, files can
 * be opened for reading only, and the only sockets that can be made are TCP over IPv4 and IPv6
 * (and UDP when libcurl resolves names with c-ares). Returns 0 or -errno. */
int sandbox_apply(void);

#endif
