"""A faithful replay of the kubelet's AtomicWriter (REFERENCE.md §1), for tests and the demo.

    python3 tests/system/kubelet.py [--force] DIR key=value [key=@file] ...

writes the payload into DIR the way the kubelet updates a ConfigMap volume: a new
..YYYY_MM_DD_HH_MM_SS.N directory, ..data_tmp renamed over ..data, top-level symlinks for new
keys, removed keys unlinked, the old directory deleted. Like the kubelet, it writes nothing when
the payload is what the volume holds already; --force swaps to identical content anyway.

From Python it also does what a projected volume and the kubelet's sync loop do: a mode per key
(a Secret's defaultMode next to a ConfigMap's items[].mode), keys written in the random order of
a Go map, big sparse keys (Sparse), and relink(): the sync that re-creates a missing top-level
link without swapping ..data.
"""

import datetime
import os
import random
import shutil
import sys
from pathlib import Path


def _ts_name():
    now = datetime.datetime.now(datetime.timezone.utc)
    return "..%s.%d" % (now.strftime("%Y_%m_%d_%H_%M_%S"), random.randint(1, 9_999_999_999))


def _first(key):
    return key.split("/", 1)[0]


class Sparse:
    """A key's content of `size` zero bytes, written as a hole: a big file that costs no disk."""

    def __init__(self, size):
        self.size = size

    def __eq__(self, other):
        if isinstance(other, Sparse):
            return other.size == self.size
        return isinstance(other, bytes) and len(other) == self.size and not other.strip(b"\0")

    def __repr__(self):
        return f"Sparse({self.size})"


def _encode(content):
    return content.encode() if isinstance(content, str) else content


class AtomicVolume:
    """A ConfigMap/Secret volume directory written as the kubelet writes it."""

    def __init__(self, root, old_order=False, mode=0o644, fs_group=None):
        self.root = Path(root)
        self.old_order = old_order  # older kubelets made new top-level links before the swap
        self.mode = mode
        self.fs_group = fs_group  # the pod's securityContext.fsGroup
        self.root.mkdir(parents=True, exist_ok=True)

    def current(self):
        """{key: bytes} as the volume holds it now."""
        data = self.root / "..data"
        if not data.is_symlink():
            return {}
        base = self.root / os.readlink(data)
        out = {}
        for dirpath, _, files in os.walk(base):
            for f in files:
                p = Path(dirpath) / f
                out[str(p.relative_to(base))] = p.read_bytes()
        return out

    def write(self, payload, force=False, after_swap=None, modes=None, rng=None):
        """Writes {key: str|bytes|Sparse}. Returns False (writes nothing) when the payload equals
        what is there, as the kubelet does, unless force. after_swap() runs right after the
        rename. modes: {key: mode} for keys not to get the volume's mode. rng (a random.Random):
        the keys are written, and new links made, in an order it picks, as the kubelet's Go map
        iteration does."""
        payload = {k: _encode(v) for k, v in payload.items()}
        modes = modes or {}
        old = self.current()
        same = old.keys() == payload.keys() and all(payload[k] == old[k] for k in old)
        if same and not force:
            return False
        data = self.root / "..data"
        old_dir = os.readlink(data) if data.is_symlink() else None

        # 2. the new timestamped directory, 0700 then 0755
        name = _ts_name()
        new_dir = self.root / name
        new_dir.mkdir(0o700)
        os.chmod(new_dir, 0o755)
        # 3. each key written in it
        keys = list(payload)
        if rng:
            rng.shuffle(keys)
        for key in keys:
            path = new_dir / key
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                if isinstance(payload[key], Sparse):
                    os.ftruncate(fd, payload[key].size)
                else:
                    os.write(fd, payload[key])
            finally:
                os.close(fd)
            os.chmod(path, modes.get(key, self.mode))
        # 4. fsGroup: the new directory and its keys made the group's, read-only volumes get
        # g+r (files) and g+rx with setgid (directories), whatever defaultMode said
        if self.fs_group is not None:
            for dirpath, _, files in os.walk(new_dir):
                for p in [Path(dirpath), *(Path(dirpath) / f for f in files)]:
                    os.chown(p, -1, self.fs_group)
                    extra = 0o2550 if p.is_dir() else 0o440
                    os.chmod(p, os.stat(p).st_mode & 0o7777 | extra)
        new_links = {_first(k) for k in payload}
        old_links = {_first(k) for k in old}
        if self.old_order:
            self._link(new_links - old_links, rng)
        # 5-6. the atomic switch
        tmp = self.root / "..data_tmp"
        os.symlink(name, tmp)
        os.rename(tmp, data)
        if after_swap:
            after_swap()
        # 7. top-level links for new keys; 8. removed keys unlinked
        if not self.old_order:
            self._link(new_links - old_links, rng)
        for link in old_links - new_links:
            (self.root / link).unlink(missing_ok=True)  # someone may have removed it already
        # 9. the old directory removed
        if old_dir:
            shutil.rmtree(self.root / old_dir)
        return True

    def relink(self):
        """The kubelet's periodic sync with an unchanged payload: a top-level link someone removed
        is made again, ..data is left as it is. Returns the names re-created."""
        data = self.root / "..data"
        names = set(os.listdir(data)) if data.is_symlink() else set()
        missing = names - {p.name for p in self.root.iterdir()}
        self._link(missing)
        return sorted(missing)

    def _link(self, names, rng=None):
        names = sorted(names)
        if rng:
            rng.shuffle(names)
        for n in names:
            link = self.root / n
            if not link.is_symlink():
                os.symlink(f"..data/{n}", link)


def main(argv):
    force = len(argv) > 1 and argv[1] == "--force"
    args = argv[2:] if force else argv[1:]
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    payload = {}
    for arg in args[1:]:
        key, _, value = arg.partition("=")
        payload[key] = Path(value[1:]).read_bytes() if value.startswith("@") else value + "\n"
    changed = AtomicVolume(args[0]).write(payload, force=force)
    what = "swapped to identical content" if force else "updated" if changed else "unchanged, nothing written"
    print(f"kubelet: {what}: {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
