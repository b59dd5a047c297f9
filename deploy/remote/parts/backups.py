import errno
import hashlib
import json
import os
import shutil
import stat
import sys

#: link() fails so on another filesystem, or where hard links are not allowed
CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES,
               getattr(errno, "ENOTSUP", errno.EPERM), getattr(errno, "EOPNOTSUPP", errno.EPERM))


class Unproven(Exception):
    """A backup read back is not what was copied (the message says which)."""


def digest_fd(fd):
    """(size, sha256) of what ``fd`` reads from where it stands to its end."""
    sha, size = hashlib.sha256(), 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return size, sha.hexdigest()
        sha.update(chunk)
        size += len(chunk)


def hard_link(source, dest):
    """Link ``dest`` to the inode ``source`` names, never to what a symlink there points at."""
    if sys.version_info >= (3, 3):
        os.link(source, dest, follow_symlinks=False)
    else:
        os.link(source, dest)          # link(2): Linux does not follow a symlink


def set_times(fd, path, info):
    """Give the file ``fd`` (at ``path``) the times of ``info`` (as copy2 does)."""
    if sys.version_info >= (3, 3):
        os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
    else:
        os.utime(path, (info.st_atime, info.st_mtime))


def copy_here(source, dest, info):
    """Copy the regular file open as ``source`` to a new file ``dest`` in the current
    directory, with the mode, owner and times of ``info``; (size, sha256) of what it read.

    On any failure (a full disk) it is removed: never half a file. (The
    caller flushes it to disk, with the others: ``sync_all``.)
    """
    out = os.open(dest, NEW_FILE, 0o600)
    try:
        sha, size = hashlib.sha256(), 0
        while True:
            chunk = os.read(source, 1 << 20)
            if not chunk:
                break
            write_all(out, chunk)
            sha.update(chunk)
            size += len(chunk)
        os.fchmod(out, stat.S_IMODE(info.st_mode))
        os.fchown(out, info.st_uid, info.st_gid)
        set_times(out, dest, info)
    except BaseException:
        os.close(out)
        unlink_here(dest)
        raise
    os.close(out)
    return size, sha.hexdigest()


def keep(top, rel, backup):
    """Keep ``top/rel`` as ``backup/rel``, proven; what the record says of it, or None.

    None when the file is not there. A symlink is kept as the symlink it is
    (``{"link": TARGET}``); a regular file as a hard link when the backup is
    on its filesystem (the same inode: it takes no room), else as a copy,
    written and read back; either way its ``{"size", "sha256"}``, which a
    rollback checks before it restores the file. The caller flushes the
    backups to disk (``sync_all``) before it records them. The file is
    reached without following a symlink (Refused); a disk that fills
    raises OSError(ENOSPC), leaving no part of this backup behind. The
    paths are as this Python's file functions take them (``fs_name``).
    """
    directory, name = os.path.split(rel)
    fd = enter(backup, directory, make=True)
    leave(fd)
    dest = os.path.join(backup, rel)
    fd = enter(top, directory)
    if fd is None:
        return None
    try:
        info = lstat_here(name)
        if info is None:
            return None
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(name)
            os.symlink(target, dest)
            os.lchown(dest, info.st_uid, info.st_gid)
            return {"link": text_name(target)}
        if not stat.S_ISREG(info.st_mode):
            raise Refused("refusing to replace %s/%s: not a regular file" % (top, rel))
        try:
            hard_link(name, dest)
        except OSError as exc:
            if exc.errno not in CANNOT_LINK:
                raise
        else:
            check = os.open(dest, READ_FILE)
            try:
                now = os.fstat(check)
                if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                    os.close(check)
                    check = None
                    os.unlink(dest)
                    raise Refused("refusing to replace %s/%s: it changed while it was backed "
                                  "up" % (top, rel))
                size, sha = digest_fd(check)
            finally:
                if check is not None:
                    os.close(check)
            return {"size": size, "sha256": sha}
        source = os.open(name, READ_FILE)
        try:
            now = os.fstat(source)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                raise Refused("refusing to replace %s/%s: it changed while it was backed up"
                              % (top, rel))
            here = os.open(os.path.dirname(dest), DIR_FLAGS)
            try:
                os.fchdir(here)
                wrote = copy_here(source, name, now)
            finally:
                os.close(here)
        finally:
            os.close(source)
        check = os.open(dest, READ_FILE)
        try:
            read = digest_fd(check)
        finally:
            os.close(check)
        if read != wrote:
            os.unlink(dest)
            raise Unproven("the backup %s reads back %d bytes with sha256 %s, not the %d bytes "
                           "with sha256 %s copied" % (dest, read[0], read[1][:12], wrote[0],
                                                       wrote[1][:12]))
        return {"size": wrote[0], "sha256": wrote[1]}
    finally:
        leave(fd)


def damage(path, entry):
    """What is wrong with the backup at ``path`` against what its record says; None if intact."""
    try:
        info = os.lstat(path)
    except OSError:
        return "%s: missing" % path
    if "link" in entry:
        if not stat.S_ISLNK(info.st_mode) or os.readlink(path) != fs_name(entry["link"]):
            return "%s: not the symlink to %s it was" % (path, fs_name(entry["link"]))
        return None
    if not stat.S_ISREG(info.st_mode):
        return "%s: not a regular file" % path
    fd = os.open(path, READ_FILE)
    try:
        size, sha = digest_fd(fd)
    finally:
        os.close(fd)
    if (size, sha) != (entry.get("size"), entry.get("sha256")):
        return ("%s: %d bytes with sha256 %s, recorded %s bytes with sha256 %s"
                % (path, size, str(sha[:12]), str(entry.get("size")),
                   str((entry.get("sha256") or "?")[:12])))
    return None


def write_json(path, data):
    """Write ``data`` to ``path`` durably: a new file beside it, fsynced, renamed over it.

    Its directory is created. On a failure (a full disk) the new file is
    removed and the old one, if any, stays.
    """
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    text = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    tmp = "%s.%d.tmp" % (path, os.getpid())
    try:
        os.unlink(tmp)
    except OSError:
        pass
    out = os.open(tmp, NEW_FILE, 0o644)
    try:
        write_all(out, text)
        os.fsync(out)
    except BaseException:
        os.close(out)
        os.unlink(tmp)
        raise
    os.close(out)
    os.rename(tmp, path)   # atomic on POSIX, and overwrites (os.replace is 3.3+)
    fsync_dir(directory)


def forget(deploy_dir):
    """Remove a deploy's directory (its backups and record): the deploy changed nothing."""
    forget_tops(deploy_dir)
    shutil.rmtree(deploy_dir, ignore_errors=True)
