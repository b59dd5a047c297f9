"""Lay a small overlay tree, sent on stdin, over the cinder package: one call.

argv: PYTHON (the interpreter running this, as the caller or cinder-api's
``#!`` line names it).

stdin: first a line of JSON, the questions to answer before the tree comes::

    {"locate": [LOCATE_SOURCE, FLAGS, CINDER_DIR, STATE_DIR, PATHS_JSON],
     "known": {"cinder_dir": DIR, "python": PATH},
     "db_state": [USER, ARGV...]}

All are optional. With ``locate``, deploy/remote/locate.py runs (with
this interpreter) and its JSON line is printed at once: the caller picks
the tree to send from it (``known``: the caller located it before). With
``db_state``, ARGV (where the words ``{cinder_dir}`` and ``{python}`` stand
for what was located) runs as USER beside the rest, and its JSON line is
added to the answer as ``db``. Then, to the
end of stdin, the job (empty: the caller changed its mind, nothing is done),
zlib-compressed JSON::

    {"target": CINDER_DIR, "owner": "user:group", "log_file": PATH or "",
     "dry_run": bool, "checksum": bool, "deploy_dir": DIR, "record": {...},
     "guard": [CHECKOUT_GUARD_SOURCE, STATE_DIR] or absent,
     "files": [[REL, MTIME_NS, BASE64_BYTES], ...]}
     "expect": [[REL, SIZE, MTIME_NS], ...]}

``expect`` (optional) is what the caller last sent of the files it does not
send now (deploy/controller/sent_state.py): if any of them differs on the controller
(size or mtime, as rsync compares; or it is gone), another deploy, a
rollback or a hand edit changed it, and nothing is done: the answer's
"stale" lists those files, for the caller to send them too.

A file is sent when rsync (``--times --modify-window=-1``) would send it: it
is new, or its size or modification time differ (``checksum``: its bytes
differ). Unless it is a dry run, every such ``.py`` file is compiled first with this interpreter;
if one does not compile nothing is written. Nor is anything when the way
to a file holds a symlink (or anything else that is not a real directory)
below the package, or its ``__pycache__`` is one: root never writes through
one (every directory is entered by name from the one before, with
O_NOFOLLOW; the answer's "refused" says where). Otherwise each replaced
file is kept in ``DEPLOY_DIR/backup``, proven (a hard link, else a copy
written, read back and flushed to disk; its size and sha256), the deploy record is
written with those hashes (state "applying", listing what will be added
and replaced), every new version is written beside its target
(``.NAME.devloop-PID``, flushed to disk; mode 644, directories 755, owned by
``owner``, the source's mtime), then each is renamed over its target and
its compiled files removed (``drop_compiled``: a stale one could win), and
the record becomes "applied". So a call killed at any point leaves every
file wholly old or wholly new, and a record to roll back from; the copy it
was writing is removed by the next call that writes that file, or by the
rollback. A full disk at the backups, the record or the new files undoes
what was written, the deploy's directory too (the answer's "no_space":
what had no room, how much was needed); one at the renames or the final
record undoes the deploy at once from its backups, or, if even that fails,
leaves its record "applying" for ``invoke rollback`` (the answer's "cut").
With ``guard``, nothing is written either when
deploy/remote/checkout_guard.py finds that a file to replace holds the
checkout's own uncommitted work: the answer then carries its ``checkout``
and ``uncommitted`` paths.

Prints one JSON line: {"log_size", "changes": [[kind, rel]], "compiled",
"problems": [{"path", "line", "message"}], "fast_mode"}, and "refused",
"no_space" or "cut" as above (deploy/controller/applying.py reads them).
``log_size`` is the API log's size before anything changed, for the health
check after the restart; ``fast_mode`` whether fast restart is on (given
the job's "fast_dir"), so a restart need not ask.

Python 2.7 and 3.6+, standard library only.
"""
import base64
import grp
import json
import os
import pwd
import stat
import subprocess
import sys
import time
import warnings
import zlib

warnings.simplefilter("ignore")      # SyntaxWarnings are not errors


STDIN = getattr(sys.stdin, "buffer", sys.stdin)
STDOUT = getattr(sys.stdout, "buffer", sys.stdout)


def say(data):
    STDOUT.write((json.dumps(data) + "\n").encode("utf-8"))
    STDOUT.flush()


def shell_quote(word):
    return "'" + word.replace("'", "'\"'\"'") + "'"


def locate(python, request):
    """Run locate.py; its JSON answer (or None, its error told on stderr)."""
    source, flags, args = request[0], request[1], request[2:]
    proc = subprocess.Popen([python] + flags + ["-c", source, python] + args,
                            stdout=subprocess.PIPE)
    out = proc.communicate()[0].decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not out:
        return None
    return json.loads(out[-1])


def start_db_state(request, facts):
    """Start the database probe as the service user; it runs beside the rest."""
    words = {"{cinder_dir}": facts["cinder_dir"], "{python}": facts["python"]}
    user, argv = request[0], [words.get(word, word) for word in request[1:]]
    command = " ".join(shell_quote(word) for word in argv)
    # "--": the user name is never read as one of su's options
    return subprocess.Popen(["su", "-s", "/bin/sh", "-c", command, "--", user],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def db_answer(proc):
    out, err = proc.communicate()
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        text = (err or out).decode("utf-8", "replace").strip().splitlines()
        return {"error": text[-1] if text else "no output"}
    return json.loads(lines[-1])


def mtime_ns(info):
    exact = getattr(info, "st_mtime_ns", None)
    return exact if exact is not None else int(round(info.st_mtime * 1e9))


def same_time(info, wanted):
    # Python 2 has float times (a quarter of a microsecond apart at today's
    # dates) and sets them with utimes(2), to the microsecond
    tolerance = 0 if hasattr(info, "st_mtime_ns") else 2000
    return abs(mtime_ns(info) - wanted) <= tolerance


# devloop-include: inside


# devloop-include: bytecode


# devloop-include: leftovers


# devloop-include: backups


# devloop-include: undo


def differs(target, rel, data, wanted_ns, checksum):
    """None: not there; else whether rsync would send it (a symlink there is replaced)."""
    directory, name = os.path.split(rel)
    fd = enter(target, directory)
    if fd is None:
        return None
    try:
        info = lstat_here(name)
        if info is None:
            return None
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return True
        if checksum:
            handle, chunks = os.open(name, READ_FILE), []
            try:
                chunk = os.read(handle, 1 << 20)
                while chunk:
                    chunks.append(chunk)
                    chunk = os.read(handle, 1 << 20)
            finally:
                os.close(handle)
            return b"".join(chunks) != data
        return not same_time(info, wanted_ns)
    finally:
        leave(fd)


# devloop-include: compile_source


# devloop-include: fsnames


def stale_files(target, expect):
    """The expected files that are not, on the controller, as the caller last sent them."""
    stale = []
    for rel, size, wanted_ns in expect:
        info = lstat_in(target, fs_name(rel))
        if info is None or info.st_size != size or not same_time(info, wanted_ns):
            stale.append(rel)
    return stale


def stage(target, rel, data, wanted_ns, ids, created):
    """Write ``data`` beside ``target/rel`` (``.NAME.devloop-PID``); its name.

    Mode 644, owned by ``ids``, the source's mtime; missing directories are
    created (their paths added to ``created``). A copy cut short (a full
    disk) is removed. (The caller flushes them all to disk: ``sync_all``.)
    """
    directory, name = os.path.split(rel)
    fd = enter(target, directory, make=True, ids=ids, created=created)
    try:
        tmp = ".%s.devloop-%d" % (name, os.getpid())
        unlink_here(tmp)
        out = os.open(tmp, NEW_FILE, 0o600)
        try:
            write_all(out, data)
            os.fchmod(out, 0o644)
            if ids:
                os.fchown(out, ids[0], ids[1])
            if sys.version_info >= (3, 3):
                os.utime(out, ns=(wanted_ns, wanted_ns))
        except BaseException:
            os.close(out)
            unlink_here(tmp)
            raise
        os.close(out)
        if sys.version_info < (3, 3):
            seconds = wanted_ns / 1e9
            os.utime(tmp, (seconds, seconds))
        return tmp
    finally:
        leave(fd)


def commit(target, rel, tmp):
    """Rename the staged ``tmp`` over ``target/rel`` and drop its compiled files."""
    directory, name = os.path.split(rel)
    fd = enter(target, directory)
    try:
        os.rename(tmp, name)
        drop_compiled_here(name)
    finally:
        leave(fd)


def unstage(target, staged, created):
    """Remove the staged copies not renamed into place, then the directories made for them."""
    for rel, tmp in staged:
        fd = enter(target, os.path.dirname(fs_name(rel)))
        if fd is None:
            continue
        try:
            unlink_here(tmp)
        finally:
            leave(fd)
    for path in sorted(created, key=len, reverse=True):
        parent, name = os.path.split(path)
        fd = enter(target, parent)
        if fd is None:
            continue
        try:
            os.rmdir(name)
        except OSError:
            pass
        finally:
            leave(fd)


def undo_now(record, done, staged, created):
    """Undo a deploy cut short after ``done`` files were renamed into place.

    The staged copies left go, the done files are put back from their
    proven backups (or removed, if new), and the deploy's directory goes:
    as if it never was. Returns None, or why it could not be undone (its
    record then stays "applying", for ``invoke rollback``).
    """
    unstage(fs_name(record["target"]), [item for item in staged if item[0] not in done],
            created)
    partial = dict(record)
    partial["added"] = [rel for rel in record["added"] if rel in done]
    partial["replaced"] = [rel for rel in record["replaced"] if rel in done]
    try:
        undo_record(partial, {"restored": [], "removed": [], "compiled": []}, forget_it=True)
    except (IOError, OSError, Refused) as exc:
        return getattr(exc, "strerror", None) or said(exc)
    return None


def why(exc):
    """An OSError told in a few words: its strerror, and the path it names (as text)."""
    text = getattr(exc, "strerror", None) or said(exc)
    return text + (": %s" % text_name(exc.filename) if getattr(exc, "filename", None) else "")


def owner_ids(owner):
    if not owner:
        return None
    user, _, group = owner.partition(":")
    uid = pwd.getpwnam(user).pw_uid
    gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(user).pw_gid
    return uid, gid


def main():
    python = sys.argv[1]
    questions = json.loads(STDIN.readline().decode("utf-8") or "{}")
    probe = None
    facts = questions.get("known")
    if questions.get("locate"):
        facts = locate(python, questions["locate"])
        say(facts or {"error": "locate failed"})
        if not facts:
            return 3
    if questions.get("db_state") and facts:
        probe = start_db_state(questions["db_state"], facts)
    packed = STDIN.read()
    if not packed:                # the caller will not send this tree
        if probe:
            probe.wait()
        return 0
    job = json.loads(zlib.decompress(packed).decode("utf-8"))
    result = apply(job)
    if probe:
        result["db"] = db_answer(probe)
    say(result)
    return 0


def in_git_tree(path):
    """Is ``path`` inside a git work tree? (A cheap look before starting git at all.)"""
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def uncommitted(guard, target, replaced):
    """checkout_guard.py's answer: which of ``replaced`` hold the checkout's own work."""
    source, state_dir = guard
    proc = subprocess.Popen([sys.executable, "-c", source, sys.executable, target, state_dir,
                             json.dumps(replaced)], stdout=subprocess.PIPE)
    out = proc.communicate()[0].decode("utf-8", "replace").strip().splitlines()
    return json.loads(out[-1]) if proc.returncode == 0 and out else {}


def apply(job):
    """Compare, compile, check, back up, record and write; the answer for the caller.

    Names travel as text (JSON); the files are reached by ``fs_name``, to the byte.
    """
    target = fs_name(job["target"].rstrip("/"))
    result = {"log_size": None, "changes": [], "compiled": 0, "problems": []}
    if job.get("fast_dir"):          # fast restart is on while its original is kept
        result["fast_mode"] = os.path.exists(os.path.join(job["fast_dir"], "original"))
    if job.get("log_file"):
        try:
            result["log_size"] = os.path.getsize(job["log_file"])
        except OSError:
            result["log_size"] = 0
    try:
        stale = stale_files(target, job.get("expect") or [])
        if stale:
            result["stale"] = stale
            return result
        plan = []
        for rel, wanted_ns, packed in job["files"]:
            data = base64.b64decode(packed.encode("ascii"))
            state = differs(target, fs_name(rel), data, wanted_ns, job.get("checksum"))
            if state is False:
                continue
            plan.append((rel, "new" if state is None else "changed", data, wanted_ns))
            if rel.endswith(".py") and not job.get("dry_run"):
                result["compiled"] += 1
                problem = compile_problem(rel, data)
                if problem:
                    result["problems"].append(problem)
        result["changes"] = [[kind, rel] for rel, kind, _, _ in plan]
        if result["problems"] or job.get("dry_run") or not plan:
            return result
        for rel, _, _, _ in plan:
            check_way(target, fs_name(rel))
    except Refused as exc:
        result["refused"] = said(exc)
        return result
    replaced = [rel for rel, kind, _, _ in plan if kind == "changed"]
    if job.get("guard") and replaced and in_git_tree(target):
        found = uncommitted(job["guard"], target, replaced)
        if found.get("uncommitted"):
            result.update(found)
            return result
    try:
        write(job, target, plan, result)
    except Refused as exc:
        result["refused"] = said(exc)
    except Unproven as exc:
        result["unproven"] = said(exc)
    return result


def write(job, target, plan, result):
    """Back up, record, stage and rename: every file wholly old or wholly new, always.

    1. each file to replace is kept in the deploy's ``backup/``, proven
       (size and sha256, read back); 2. the record ("applying", with those
       hashes) is written; 3. every new file is written beside its target
       and flushed to disk; 4. each is renamed over its target; 5. the record
       becomes "applied". A full disk at 1-3 undoes what was written (the
       deploy's directory too): nothing was changed. A failure at 4-5 undoes
       the deploy from its backups at once, or, if even that fails, leaves
       the record "applying" for ``invoke rollback``. The answer says which
       (``no_space``, ``cut``). ``target`` is as ``fs_name`` gives it; the
       record's names are text, as the job's.
    """
    ids = owner_ids(job.get("owner"))
    record = dict(job["record"])
    record.update({"state": "applying", "target": job["target"].rstrip("/"),
                   "backup": os.path.join(job["deploy_dir"], "backup"),
                   "added": [rel for rel, kind, _, _ in plan if kind == "new"],
                   "replaced": [], "backups": {}})
    deploy_dir = fs_name(job["deploy_dir"])
    backup = os.path.join(deploy_dir, "backup")
    record_file = os.path.join(deploy_dir, "record.json")
    sweep(target, [fs_name(rel) for rel, _, _, _ in plan])
    try:
        for rel, kind, _, _ in plan:
            if kind != "changed":
                continue
            entry = keep(target, fs_name(rel), backup)
            if entry is None:                # gone since: it is added, not replaced
                record["added"].append(rel)
                continue
            record["replaced"].append(rel)
            record["backups"][rel] = entry
        sync_all([backup])
    except (IOError, OSError, Refused, Unproven) as exc:
        forget(deploy_dir)
        if not no_space(exc):
            raise
        sizes = [info.st_size for info in (lstat_in(target, fs_name(rel))
                                           for rel, kind, _, _ in plan if kind == "changed")
                 if info is not None]
        where = os.path.dirname(deploy_dir)
        block = os.statvfs(where).f_frsize or 4096
        result["no_space"] = {"what": "backups", "count": len(sizes),
                              "where": text_name(where),
                              "needed": sum(-(-size // block) * block for size in sizes),
                              "free": free_bytes(where)}
        return
    try:
        write_json(record_file, record)
    except (IOError, OSError) as exc:
        forget(deploy_dir)
        if not no_space(exc):
            raise
        result["no_space"] = {"what": "record", "id": record.get("id"),
                              "where": text_name(deploy_dir), "error": exc.strerror}
        return
    staged, created = [], []
    try:
        for rel, _, data, wanted_ns in plan:
            staged.append((rel, stage(target, fs_name(rel), data, wanted_ns, ids, created)))
        sync_all(sorted(set(os.path.join(target, os.path.dirname(fs_name(rel)))
                            for rel, _ in staged)))
    except (IOError, OSError) as exc:
        unstage(target, staged, created)
        forget(deploy_dir)
        if not no_space(exc):
            raise
        short = lacking(target, dict((fs_name(rel), len(data)) for rel, _, data, _ in plan))
        where, needed, room = short[0] if short else (
            os.path.join(target, os.path.dirname(fs_name(plan[len(staged)][0]))).rstrip("/"),
            sum(len(data) for _, _, data, _ in plan), 0)
        result["no_space"] = {"what": "files", "where": text_name(where), "needed": needed,
                              "free": room}
        return
    done = []
    try:
        for rel, tmp in staged:
            commit(target, fs_name(rel), tmp)
            done.append(rel)
    except (IOError, OSError, Refused) as exc:
        result["cut"] = {"step": "files", "id": record.get("id"),
                         "where": text_name(deploy_dir),
                         "error": why(exc), "space": no_space(exc),
                         "not_undone": undo_now(record, done, staged, created)}
        return
    record["state"] = "applied"
    record["applied_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        write_json(record_file, record)
    except (IOError, OSError) as exc:
        result["cut"] = {"step": "record", "id": record.get("id"),
                         "where": text_name(deploy_dir), "error": exc.strerror,
                         "space": no_space(exc),
                         "not_undone": undo_now(record, done, staged, created)}


if __name__ == "__main__":
    sys.exit(main())
