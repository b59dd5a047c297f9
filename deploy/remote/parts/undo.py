import os
import stat
import time


def put_back(top, rel, source):
    """Put the backup ``source`` back at ``top/rel``: beside it first, then renamed over it.

    A hard link where the backup shares the package's filesystem (no room
    needed, even on a full disk), else a copy; a symlink comes
    back as the symlink it was. Never half a file: a copy cut short is
    removed. Returns the compiled files removed beside it.
    """
    directory, name = os.path.split(rel)
    fd = enter(top, directory, make=True)
    tmp = ".devloop-restore-%d-%s" % (os.getpid(), name)
    try:
        unlink_here(tmp)
        info = os.lstat(source)
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), tmp)
            os.lchown(tmp, info.st_uid, info.st_gid)
        else:
            try:
                hard_link(source, tmp)
            except OSError as exc:
                if exc.errno not in CANNOT_LINK:
                    raise
                handle = os.open(source, READ_FILE)
                try:
                    copy_here(handle, tmp, os.fstat(handle))
                finally:
                    os.close(handle)
        try:
            os.rename(tmp, name)           # atomic on POSIX (os.replace is 3.3+)
        except BaseException:
            unlink_here(tmp)
            raise
        # a file still in place is the backup's own inode (a hard link, when the
        # deploy was cut before it replaced it): rename() then does nothing and
        # leaves tmp, as POSIX says for two links to one file
        unlink_here(tmp)
        return [os.path.join(top, directory, gone) for gone in drop_compiled_here(name)]
    finally:
        leave(fd)


def remove_added(top, rel):
    """Remove the file a deploy added at ``top/rel``, its compiled files, and emptied parents.

    Returns (whether it was there, the compiled files removed).
    """
    directory, name = os.path.split(rel)
    fd = enter(top, directory)
    if fd is None:
        return False, []
    try:
        info = lstat_here(name)
        there = info is not None and not stat.S_ISDIR(info.st_mode) and unlink_here(name)
        compiled = [os.path.join(top, directory, gone) for gone in drop_compiled_here(name)]
    finally:
        leave(fd)
    parts = [part for part in directory.split("/") if part]
    while parts:
        fd = enter(top, "/".join(parts[:-1]))
        if fd is None:
            break
        try:
            os.rmdir(parts[-1])            # only succeeds while empty (never a symlink)
        except OSError:
            break
        finally:
            leave(fd)
        parts.pop()
    return there, compiled


def backups_of(record):
    """{rel: entry} of the record's proven backups; None for a record written before they were."""
    backups = record.get("backups")
    return backups if isinstance(backups, dict) else None


def to_restore(record):
    """The replaced files a rollback of ``record`` puts back: [(rel, backup path, entry)]
    (``rel`` as the record has it, the path by ``fs_name``).

    With proven backups (``backups`` in the record), a replaced file whose
    backup is not listed was never replaced (the deploy stopped before it
    backed it up). An older record lists none: a backup that is there is
    used, unchecked.
    """
    backups, found = backups_of(record), []
    for rel in record.get("replaced", []):
        source = os.path.join(fs_name(record["backup"]), fs_name(rel))
        if backups is None:
            if os.path.lexists(source):
                found.append((rel, source, None))
        elif rel in backups:
            found.append((rel, source, backups[rel]))
    return found


def check_undo(records):
    """Why the rollback of ``records`` must not start, as an answer; None if it may.

    Checks everything before anything changes: no symlink on the way to any
    file they touch, and every backup to restore as its record says.
    """
    for record in records:
        target = fs_name(record["target"])
        try:
            for rel in record.get("replaced", []) + record.get("added", []):
                check_way(target, fs_name(rel))
        except Refused as exc:
            return {"refused": said(exc)}
        for rel, source, entry in to_restore(record):
            problem = entry is not None and damage(source, entry)
            if problem:
                return {"damaged": {"id": record.get("id", "?"), "rel": rel,
                                    "why": text_name(problem)}}
    return None


def undo_record(record, summary, forget_it=False):
    """Undo one deploy: its added files removed, then its replaced files put back.

    Adds to ``summary``'s lists; marks the record "rolled back" (no room for
    that: its id goes in ``summary["unmarked"]``), or, with ``forget_it``,
    removes its directory (a deploy undone at once, as if it never was).
    What killed writers left beside its files goes first. The record's
    names are text, as JSON carries them; the files are reached by
    ``fs_name``, to the byte, and the summary's names are text again.
    """
    target = fs_name(record["target"])
    sweep(target, [fs_name(rel) for rel in record.get("replaced", []) + record.get("added", [])])
    for rel in record.get("added", []):
        there, compiled = remove_added(target, fs_name(rel))
        if there:
            summary["removed"].append(rel)
        summary["compiled"].extend(text_name(path) for path in compiled)
    for rel, source, _ in to_restore(record):
        summary["compiled"].extend(text_name(path)
                                   for path in put_back(target, fs_name(rel), source))
        summary["restored"].append(rel)
    sync_all([target])
    deploy_dir = os.path.dirname(fs_name(record["backup"]))
    if forget_it:
        forget(deploy_dir)
        return
    record["state"] = "rolled back"
    record["rolled_back_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        write_json(os.path.join(deploy_dir, "record.json"), record)
    except (IOError, OSError) as exc:   # undone all the same; undoing it again changes nothing
        if not no_space(exc):
            raise
        summary.setdefault("unmarked", []).append(record.get("id", "?"))
