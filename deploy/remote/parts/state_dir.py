import errno
import hashlib
import os
import stat
import sys
import tempfile

# What the tool keeps on a controller lives under state_dir, which root owns and
# no other user can write: a name there can only have been made by root, so root
# never opens a link or a file another user planted. What another user writes
# (the warm parent's state, as the service user) is only read, with read_foreign(),
# and never trusted to name something root writes, runs or signals.

_INTEGERS = (int,) if sys.version_info[0] >= 3 else (int, long)  # noqa: F821 (Python 2)


class Untrusted(Exception):
    """A place the tool would write to, or a file it would trust, that another user can change."""


def _trusted_uid(uid):
    return uid == 0 or uid == os.geteuid()


def _user_name(uid):
    try:
        import pwd
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except (KeyError, ImportError):
        return "uid %d" % uid


def _checked(path, info, strict):
    """Raise Untrusted unless ``path`` (lstat ``info``) is a directory only root can change.

    Unless ``strict``, it may be writable by others if it is sticky (as /tmp
    is): then no other user can rename or replace what root made in it.
    """
    if not stat.S_ISDIR(info.st_mode):
        raise Untrusted("%s is not a directory" % path)
    if not _trusted_uid(info.st_uid):
        raise Untrusted("%s is owned by %s, not root" % (path, _user_name(info.st_uid)))
    writable = info.st_mode & 0o022
    if writable and (strict or not info.st_mode & stat.S_ISVTX):
        whom = {0o020: "its group", 0o002: "others"}.get(writable, "its group and others")
        raise Untrusted("%s is writable by %s (mode %04o)" % (path, whom,
                                                              stat.S_IMODE(info.st_mode)))


def check_dir(path, strict=True, _depth=0):
    """Raise Untrusted unless only root can change what ``path`` names.

    Every directory from / down to ``path`` is checked with lstat: each is
    root's, and none is writable by another user, except that one above
    ``path`` (or ``path`` itself, unless ``strict``) may be if it is sticky.
    A symbolic link on the way is followed only where root made it, and
    where it leads is checked the same way. OSError if ``path`` is missing.
    """
    if _depth > 8:
        raise Untrusted("%s: too many symbolic links" % path)
    names = [name for name in path.split("/") if name not in ("", ".")]
    if ".." in names or not path.startswith("/"):
        raise Untrusted("%s is not an absolute path without '..'" % path)
    current = "/"
    _checked(current, os.lstat(current), strict and not names)
    for index, name in enumerate(names):
        last = index == len(names) - 1
        current = os.path.join(current, name)
        info = os.lstat(current)
        if stat.S_ISLNK(info.st_mode):
            current = os.path.realpath(current)
            check_dir(current, strict and last, _depth + 1)
            continue
        _checked(current, info, strict and last)


def ensure_dir(path, mode=0o755):
    """Make ``path`` (and its missing parents, root's, ``mode``) a directory only root can change.

    An existing directory keeps its mode, plus the read and search bits
    ``mode`` gives to the group and others (what a service must read through).

    Raises:
        Untrusted: ``path`` or a directory above it is another user's, or writable by one.
        OSError: it cannot be made (a file in the way, a read-only filesystem...).
    """
    missing = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    if missing:
        check_dir(probe, strict=False)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        else:
            os.chmod(directory, mode)       # whatever the umask took away
    check_dir(path)
    info = os.stat(path)
    wanted = stat.S_IMODE(info.st_mode) | (mode & 0o055)
    if wanted != stat.S_IMODE(info.st_mode):
        os.chmod(path, wanted)


def write_new(path, data, mode=0o644, owner=None):
    """Write the bytes ``data`` to ``path``, a file of ``mode`` (and ``owner``: (uid, gid)).

    A new file in the same directory under a name no one can predict
    (mkstemp: O_CREAT|O_EXCL, no link followed), written, synced, then
    renamed over ``path``: a reader sees the old file or the new one, and a
    link found at ``path`` is replaced, never written through.
    """
    directory, name = os.path.split(path)
    fd, temporary = tempfile.mkstemp(prefix="." + name + ".", suffix=".devloop-tmp",
                                     dir=directory)
    try:
        while data:
            data = data[os.write(fd, data):]
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.rename(temporary, path)


def _read_fd(fd, limit):
    chunks, size = [], 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def read_foreign(path, limit):
    """The bytes of ``path``, a file another user may have made, or None.

    No link is followed, no FIFO waited on, no device opened, and nothing
    larger than ``limit`` read: what comes back is data, to be checked.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return _read_fd(fd, limit)
    finally:
        os.close(fd)


def read_own(path, limit=16 << 20):
    """The bytes of ``path``, a file root made and only root can change.

    Raises:
        Untrusted: it is a link, not a regular file, another user's, or writable by one.
        OSError: it cannot be read (ENOENT: there is none).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Untrusted("%s is a symbolic link" % path)
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Untrusted("%s is not a regular file" % path)
        if not _trusted_uid(info.st_uid) or info.st_mode & 0o022:
            raise Untrusted("%s is not root's alone (owner %s, mode %04o)"
                            % (path, _user_name(info.st_uid), stat.S_IMODE(info.st_mode)))
        data = _read_fd(fd, limit)
        if data is None:
            raise Untrusted("%s is larger than %d bytes" % (path, limit))
        return data
    finally:
        os.close(fd)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def integer(value, low=None):
    """``value`` if it is an integer (not a bool) of at least ``low``, else None."""
    if isinstance(value, bool) or not isinstance(value, _INTEGERS):
        return None
    return value if low is None or value >= low else None


def process(pid):
    """(state, ppid, start time in clock ticks, real uid) of process ``pid``, or None."""
    if integer(pid, 1) is None:
        return None
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/%d/status" % pid) as handle:
            uid = [line.split()[1] for line in handle if line.startswith("Uid:")][0]
        return fields[0], int(fields[1]), int(fields[19]), int(uid)
    except (EnvironmentError, IndexError, ValueError):
        return None


def signal_as(uid, gid, pid, signo):
    """Send ``signo`` to ``pid`` with the rights of ``uid`` alone; True if it was sent.

    A child drops root first, so a PID read from a file another user writes
    can make root signal only a process that user could signal itself.
    """
    if integer(pid, 2) is None:
        return False
    if uid == os.geteuid():
        try:
            os.kill(pid, signo)
            return True
        except OSError:
            return False
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.kill(pid, signo)
            code = 0
        except BaseException:
            pass
        os._exit(code)
    while True:
        try:
            status = os.waitpid(child, 0)[1]
            break
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
