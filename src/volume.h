/* volume.h: which names of a watched directory are keys: the one rule for digest and watch. */
#ifndef SIGRELOAD_VOLUME_H
#define SIGRELOAD_VOLUME_H

#include <stdbool.h>

/* A Kubernetes ConfigMap or Secret volume (the kubelet's AtomicWriter): its keys are the entries
 * of the directory this symlink points to, swapped in one rename on every update. */
#define VOLUME_DATA "..data"

/* Whether name is no key. A dot-name is none (an editor's swap file, .git, the volume's own
 * ..data, ..data_tmp and ..2026_01_01_…), except below ..data, where a key may start with one
 * dot (".env") and only ".", ".." and other ..-names are the kubelet's. */
bool volume_hidden(const char *name, bool below_data);

#endif
