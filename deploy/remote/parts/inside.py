import errno
import os
import stat

DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
READ_FILE = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


class Refused(Exception):
    """A path the tool will not write through; the message says which and why."""


def refusal(path, name=None, what="not a directory of the package"):
    """Why ``path`` (``name`` in the current directory, if given) is not a way in."""
    try:
        return ("refusing to write through %s: a symlink (to %s), %s"
                % (path, os.readlink(name or path), what))
    except OSError:
        return "refusing to write through %s: not a directory" % path


def root_put(directory, link):
    """Whether no one but root could have put the symlink ``link`` (lstat) in ``directory`` (fstat).

    A directory only root may write, or a sticky one (/tmp) where the link is root's own.
    """
    if directory.st_uid != 0:
        return False
    if not directory.st_mode & 0o022:
        return True
    return bool(directory.st_mode & stat.S_ISVTX) and link.st_uid == 0


#: the directories ``open_top`` reached, by path: each is walked to once per call
TOPS = {}


def open_top(top):
    """An fd on the directory ``top``, reached from / one name at a time.

    A symlink on the way is followed only where no one but root could have
    put it (``lib64 -> lib``); one in a directory another user can write
    (DevStack's ``/opt/stack`` belongs to ``stack``) is refused, as is
    anything else that is not a directory. Raises Refused. The walk is made
    once: later calls get a new fd on the directory it reached (``TOPS``),
    whatever was renamed on the way since.
    """
    if top in TOPS:
        return os.dup(TOPS[top])
    fd = walk_top(top)
    TOPS[top] = os.dup(fd)
    return fd


def forget_tops(under):
    """Drop what ``open_top`` kept of ``under`` and the directories below it (removed)."""
    for path in [path for path in TOPS if path == under or path.startswith(under + "/")]:
        os.close(TOPS.pop(path))


def walk_top(top):
    """``open_top``'s walk from /."""
    pending = [part for part in top.split("/") if part]
    fd, path, hops = os.open("/", DIR_FLAGS), "", 0
    try:
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            os.fchdir(fd)
            try:
                sub = os.open(part, DIR_FLAGS)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                link = lstat_here(part)
                if link is None or not stat.S_ISLNK(link.st_mode):
                    raise Refused(refusal(path + "/" + part, part))
                if not root_put(os.fstat(fd), link):
                    raise Refused(refusal(path + "/" + part, part,
                                          "in a directory another user can write"))
                hops += 1
                if hops > 40:
                    raise Refused("refusing to write through %s: too many symlinks" % top)
                target = os.readlink(part)
                pending = [piece for piece in target.split("/") if piece] + pending
                if target.startswith("/"):
                    os.close(fd)
                    fd, path = os.open("/", DIR_FLAGS), ""
                continue
            os.close(fd)
            fd = sub
            path = os.path.dirname(path) if part == ".." else path + "/" + part
        return fd
    except BaseException:
        os.close(fd)
        os.chdir("/")
        raise


def enter(top, rel_dir, make=False, ids=None, created=None):
    """Change into ``top/rel_dir``, one real directory at a time; its fd, or None if missing.

    Every directory below ``top`` is opened with O_NOFOLLOW|O_DIRECTORY, each
    by its name in the one before (the current directory), so no symlink
    below ``top`` is ever followed, whatever changes meanwhile; ``top`` is
    reached so too, but for a symlink only root could have put there
    (``open_top``). With
    ``make``, missing directories are created (755, owned by ``ids``), and
    their paths (relative to ``top``) appended to ``created`` (``top`` too,
    if missing, as ``os.makedirs`` makes it). Close the fd
    with ``leave``. Raises Refused at a symlink or anything else that is not
    a directory.
    """
    try:
        fd = open_top(top)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        if not make:
            return None
        os.makedirs(top)               # a deploy's own directory (the package is always there)
        fd = open_top(top)
    path, done = top, []
    try:
        for part in rel_dir.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                raise Refused("refusing to write through %s/..: it leads out" % path)
            os.fchdir(fd)
            path = path + "/" + part
            done.append(part)
            try:
                sub = os.open(part, DIR_FLAGS)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(refusal(path, part))
                if exc.errno != errno.ENOENT:
                    raise
                if not make:
                    leave(fd)
                    return None
                try:
                    os.mkdir(part, 0o755)
                except OSError as again:
                    if again.errno != errno.EEXIST:
                        raise
                try:
                    sub = os.open(part, DIR_FLAGS)
                except OSError as again:
                    if again.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise Refused(refusal(path, part))
                    raise
                os.fchmod(sub, 0o755)
                if ids:
                    os.fchown(sub, ids[0], ids[1])
                if created is not None:
                    created.append("/".join(done))
            os.close(fd)
            fd = sub
        os.fchdir(fd)
    except BaseException:
        leave(fd)
        raise
    return fd


def leave(fd):
    """Back to / (no directory of the package stays current) and close ``fd``."""
    os.chdir("/")
    if fd is not None:
        os.close(fd)


def lstat_here(name):
    """``os.lstat`` of ``name`` in the current directory, or None if it is not there."""
    try:
        return os.lstat(name)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def lstat_in(top, rel):
    """``os.lstat`` of ``top/rel``, reached without following a symlink; None if missing."""
    directory, name = os.path.split(rel)
    fd = enter(top, directory)
    if fd is None:
        return None
    try:
        return lstat_here(name)
    finally:
        leave(fd)


def check_way(top, rel):
    """Raise Refused if the way to ``top/rel`` holds a symlink, or its ``__pycache__`` is one."""
    directory, name = os.path.split(rel)
    fd = enter(top, directory)
    if fd is None:
        return
    try:
        info = lstat_here(name)
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise Refused("refusing to replace %s/%s: a directory, not a file" % (top, rel))
        cache = lstat_here("__pycache__")
        if cache is not None and not stat.S_ISDIR(cache.st_mode):
            raise Refused(refusal("/".join(x for x in (top, directory, "__pycache__") if x),
                                  "__pycache__"))
    finally:
        leave(fd)


def unlink_here(name):
    """Remove ``name`` from the current directory; whether it was there."""
    try:
        os.unlink(name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return False
    return True


def fsync_dir(path):
    """Make the entries of directory ``path`` durable (where the filesystem can)."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_all(paths):
    """Flush every filesystem holding one of the directories ``paths`` to disk.

    One syncfs(2) per filesystem (else sync(2)): a deploy of 2,000 files
    fsynced one by one would wait for 2,000 journal commits.
    """
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        libc = None
    seen = set()
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            continue
        try:
            device = os.fstat(fd).st_dev
            if device in seen:
                continue
            seen.add(device)
            if libc is not None and getattr(libc, "syncfs", None) is not None:
                if libc.syncfs(fd) == 0:
                    continue
            if hasattr(os, "sync"):
                os.sync()
            elif libc is not None:
                libc.sync()
        finally:
            os.close(fd)


def free_bytes(fd_or_path):
    """What an unprivileged writer may still put on the filesystem of ``fd_or_path``."""
    info = os.fstatvfs(fd_or_path) if isinstance(fd_or_path, int) else os.statvfs(fd_or_path)
    return info.f_bavail * info.f_frsize


def no_space(exc):
    """Whether ``exc`` says the disk (or the quota) is full."""
    return isinstance(exc, (IOError, OSError)) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_all(fd, data):
    """Write every byte of ``data`` to ``fd`` (os.write may take fewer)."""
    view = memoryview(data)
    while len(view):
        view = view[os.write(fd, view):]


def lacking(top, sizes):
    """Where new files of ``sizes`` ({rel: bytes}) under ``top`` have no room, all at once.

    Per filesystem (a mount inside the package counts apart): the deepest
    existing directory of its first file, the bytes needed (in whole blocks)
    and the bytes free; only those that do not fit. Each file is counted
    whole, as if the old one stayed (a backup on the same filesystem keeps it).
    """
    found = {}
    for rel in sorted(sizes):
        parts = [part for part in os.path.dirname(rel).split("/") if part]
        fd = enter(top, "/".join(parts))
        while fd is None and parts:
            parts.pop()
            fd = enter(top, "/".join(parts))
        if fd is None:
            continue
        try:
            info, room = os.fstatvfs(fd), free_bytes(fd)
            device = os.fstat(fd).st_dev
        finally:
            leave(fd)
        block = info.f_frsize or 4096
        where = found.setdefault(device, ["/".join([top] + parts), 0, room])
        where[1] += -(-sizes[rel] // block) * block
    return [tuple(where) for where in found.values() if where[1] > where[2]]
