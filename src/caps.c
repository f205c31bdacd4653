/* caps.c: capget/capset by system call (no libcap at run time). */
#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

static const __u32 KILL_BIT = 1u << CAP_KILL; /* CAP_KILL is 5: in the first word */

static int get(struct __user_cap_header_struct *h, struct __user_cap_data_struct *d)
{
	*h = (struct __user_cap_header_struct){ .version = _LINUX_CAPABILITY_VERSION_3 };
	return syscall(SYS_capget, h, d) < 0 ? -errno : 0;
}

bool caps_have_kill(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	return get(&h, d) == 0 && (d[0].effective & KILL_BIT);
}

bool caps_raise_kill(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	const __u32 bit = KILL_BIT;

	if (get(&h, d) < 0)
		return false;
	if (d[0].effective & bit)
		return true;
	if (!(d[0].permitted & bit))
		return false;
	d[0].effective |= bit;
	return syscall(SYS_capset, &h, d) == 0;
}
