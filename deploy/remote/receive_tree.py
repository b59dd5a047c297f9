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
if one does not compile nothing is written. Otherwise the deploy record is
written (state "applying", listing what will be added and replaced), each
replaced file is kept in ``DEPLOY_DIR/backup`` (a hard link, else a copy),
each new version is written beside its target and renamed over it (mode
644, directories 755, owned by ``owner``, the source's mtime), its
compiled files are removed (``drop_compiled``: a stale one could win),
and the record becomes "applied". So a call killed at any point leaves every file
wholly old or wholly new, and a record to roll back from; the copy it was
writing (``.NAME.devloop-PID``) is removed by the next call that writes
that file, or by the rollback. With ``guard``,
nothing is written either when deploy/remote/checkout_guard.py finds that a file to
replace holds the checkout's own uncommitted work: the answer then carries its
``checkout`` and ``uncommitted`` paths.

Prints one JSON line: {"log_size", "changes": [[kind, rel]], "compiled",
"problems": [{"path", "line", "message"}], "fast_mode"}. ``log_size`` is the
API log's size before anything changed, for the health check after the
restart; ``fast_mode`` whether fast restart is on (given the job's
"fast_dir"), so a restart need not ask.

Python 2.7 and 3.6+, standard library only.
"""
import base64
import errno
import grp
import json
import os
import pwd
import shutil
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


def differs(path, data, wanted_ns, checksum):
    """None: not there; else whether rsync would send it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if info.st_size != len(data):
        return True
    if checksum:
        with open(path, "rb") as handle:
            return handle.read() != data
    return not same_time(info, wanted_ns)


# devloop-include: compile_source


# devloop-include: fsnames


def stale_files(target, expect):
    """The expected files that are not, on the controller, as the caller last sent them."""
    stale = []
    for rel, size, wanted_ns in expect:
        try:
            info = os.stat(os.path.join(target, fs_name(rel)))
        except OSError:
            stale.append(rel)
            continue
        if info.st_size != size or not same_time(info, wanted_ns):
            stale.append(rel)
    return stale


def write_json(path, data):
    make_dirs(os.path.dirname(path), None)
    with open(path + ".tmp", "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.rename(path + ".tmp", path)   # atomic on POSIX (os.replace is 3.3+)


def make_dirs(path, ids, top=None):
    """Create ``path`` and its missing parents (755; owned by ``ids`` below ``top``)."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        os.chmod(directory, 0o755)
        if ids and top and directory.startswith(top + os.sep):
            os.chown(directory, ids[0], ids[1])


def keep(old, backup):
    """Keep the replaced file ``old`` at ``backup``: same inode if possible."""
    make_dirs(os.path.dirname(backup), None)
    try:
        os.link(old, backup)
    except OSError:
        shutil.copy2(old, backup)
        info = os.stat(old)
        os.chown(backup, info.st_uid, info.st_gid)


def put(dest, data, wanted_ns, ids):
    """Write ``data`` beside ``dest`` and rename it over: never half a file."""
    directory, name = os.path.split(dest)
    tmp = os.path.join(directory, ".%s.devloop-%d" % (name, os.getpid()))
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o644)
    if ids:
        os.chown(tmp, ids[0], ids[1])
    if sys.version_info >= (3, 3):
        os.utime(tmp, ns=(wanted_ns, wanted_ns))
    else:
        seconds = wanted_ns / 1e9
        os.utime(tmp, (seconds, seconds))
    os.rename(tmp, dest)


# devloop-include: leftovers


# devloop-include: bytecode


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
    """Compare, compile, record and write; the answer for the caller.

    Names travel as text (JSON); the files are reached by ``fs_name``, to the byte.
    """
    shown_target = job["target"].rstrip("/")
    target = fs_name(shown_target)
    result = {"log_size": None, "changes": [], "compiled": 0, "problems": []}
    if job.get("fast_dir"):          # fast restart is on while its original is kept
        result["fast_mode"] = os.path.exists(os.path.join(job["fast_dir"], "original"))
    if job.get("log_file"):
        try:
            result["log_size"] = os.path.getsize(job["log_file"])
        except OSError:
            result["log_size"] = 0
    stale = stale_files(target, job.get("expect") or [])
    if stale:
        result["stale"] = stale
        return result
    plan = []
    for rel, wanted_ns, packed in job["files"]:
        data = base64.b64decode(packed.encode("ascii"))
        dest = os.path.join(target, fs_name(rel))
        state = differs(dest, data, wanted_ns, job.get("checksum"))
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
    replaced = [rel for rel, kind, _, _ in plan if kind == "changed"]
    if job.get("guard") and replaced and in_git_tree(target):
        found = uncommitted(job["guard"], target, replaced)
        if found.get("uncommitted"):
            result.update(found)
            return result

    ids = owner_ids(job.get("owner"))
    deploy_dir = job["deploy_dir"]
    backup = os.path.join(deploy_dir, "backup")
    record = dict(job["record"])
    record.update({"state": "applying", "target": shown_target, "backup": backup,
                   "added": [rel for rel, kind, _, _ in plan if kind == "new"],
                   "replaced": [rel for rel, kind, _, _ in plan if kind == "changed"]})
    record_file = fs_name(os.path.join(deploy_dir, "record.json"))
    backup = fs_name(backup)
    # the record first: a call killed from here on can be rolled back
    write_json(record_file, record)
    sweep(target, [fs_name(rel) for rel, _, _, _ in plan])
    for rel, kind, data, wanted_ns in plan:
        rel = fs_name(rel)
        dest = os.path.join(target, rel)
        if kind == "changed":
            keep(dest, os.path.join(backup, rel))
        else:
            make_dirs(os.path.dirname(dest), ids, target)
        put(dest, data, wanted_ns, ids)
        drop_compiled(dest)
    record["state"] = "applied"
    record["applied_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(record_file, record)
    return result


if __name__ == "__main__":
    sys.exit(main())
