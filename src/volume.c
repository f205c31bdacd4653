/* volume.c: which names of a watched directory are keys. */
#include "volume.h"

bool volume_hidden(const char *name, bool below_data)
{
	return name[0] == '.' && (!below_data || name[1] == '.' || name[1] == '\0');
}
