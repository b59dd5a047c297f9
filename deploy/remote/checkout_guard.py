"""Print which files a deploy would replace hold the controller's own uncommitted work.

argv: python target state_dir RELS_JSON

- ``target``: the cinder package the deploy writes into (on DevStack, the
  checkout's ``/opt/stack/cinder/cinder``);
- ``state_dir``: cinder-devloop's directory (the deploy records);
- ``RELS_JSON``: the paths, relative to ``target``, the deploy would replace,
  as a JSON list (so a name of any bytes travels in a command line, escaped;
  see ``fs_name``).

Prints ``{"checkout": TOPLEVEL or null, "uncommitted": [rel...]}``. A path
counts when ``git status`` shows it changed (staged, unstaged or untracked)
and the change is not one a deploy made: a path an applied deploy added
does not count, nor one an applied deploy replaced whose version before the
first such deploy (its backup) is what HEAD holds. No git, or a target
outside a git work tree: ``checkout`` is null and nothing counts.

git runs as the owner of ``target`` (``stack`` on DevStack), never as root:
that user writes the checkout's ``.git/config``, whose ``core.fsmonitor``
or filters git would otherwise run as root. The blob hash of a backup (in
root's state directory) is computed here instead of by git.

Python 2.7 and 3.6+, standard library only.
"""
import glob
import hashlib
import json
import os
import pwd
import subprocess
import sys

GIT = ["git"]


def owner_of(path):
    """(uid, gid, home, name) of the user who owns ``path`` (name None: no such user)."""
    uid = os.stat(path).st_uid
    try:
        entry = pwd.getpwuid(uid)
        return uid, entry.pw_gid, entry.pw_dir, entry.pw_name
    except KeyError:
        return uid, uid, "/", None


def as_owner(owner):
    """A preexec_fn that drops root's rights to ``owner`` before git runs."""
    uid, gid, _, name = owner

    def drop():
        if os.getuid() != 0 or uid == 0:
            return
        if name is not None:
            os.initgroups(name, gid)
        else:
            os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return drop


# devloop-include: fsnames


def git(target, args, owner):
    """git's stdout in ``target`` run as ``owner`` (names as JSON carries them), or None."""
    env = dict(os.environ, HOME=owner[2])
    try:
        proc = subprocess.Popen(GIT + ["-C", target] + args, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=as_owner(owner), env=env,
                                cwd="/")
    except OSError:
        return None
    out = proc.communicate()[0]
    if proc.returncode != 0:
        return None
    return out.decode("utf-8", "surrogateescape") if sys.version_info[0] >= 3 else text_name(out)


def blob_hash(path):
    """What ``git hash-object PATH`` prints (a SHA-1 blob hash), read by root here."""
    with open(path, "rb") as handle:
        data = handle.read()
    return hashlib.sha1(b"blob " + str(len(data)).encode("ascii") + b"\0" + data).hexdigest()


def deployed(state_dir, target):
    """({rel: oldest backup}, {rels added}) from the applied deploys into ``target``."""
    backups, added = {}, set()
    for path in sorted(glob.glob(os.path.join(state_dir, "deploys", "*", "record.json"))):
        try:
            with open(path) as handle:
                record = json.load(handle)
        except (EnvironmentError, ValueError):
            continue
        if record.get("state") not in ("applied", "applying") or \
                os.path.realpath(record.get("target", "")) != os.path.realpath(target):
            continue
        for rel in record.get("replaced", []):
            backup = os.path.join(fs_name(record.get("backup", "")), fs_name(rel))
            if rel not in backups and rel not in added and os.path.isfile(backup):
                backups[rel] = backup
        for rel in record.get("added", []):
            if rel not in backups:
                added.add(rel)
    return backups, added


def main():
    target, state_dir = sys.argv[2].rstrip("/"), sys.argv[3]
    rels = json.loads(sys.argv[4]) if len(sys.argv) > 4 else []
    owner = owner_of(target) if os.path.isdir(target) else None
    top = git(target, ["rev-parse", "--show-toplevel"], owner) if rels and owner else None
    if not top:
        sys.stdout.write(json.dumps({"checkout": None, "uncommitted": []}) + "\n")
        return 0
    prefix = (git(target, ["rev-parse", "--show-prefix"], owner) or "").strip()
    status = git(target, ["status", "--porcelain", "-z", "--untracked-files=all", "--"]
                 + [fs_name(rel) for rel in rels], owner)
    changed = set()
    for entry in (status or "").split("\0"):
        if len(entry) > 3 and entry[2] == " " and entry[3:].startswith(prefix):
            changed.add(entry[3:][len(prefix):])
    backups, added = deployed(state_dir, target)
    uncommitted = []
    for rel in rels:
        if rel not in changed or rel in added:
            continue
        if rel in backups:
            head = (git(target, ["rev-parse", fs_name("HEAD:" + prefix + rel)], owner)
                    or "").strip()
            before = blob_hash(backups[rel])
            if head and head == before:
                continue     # the change is the deploys'; the checkout was clean before
        uncommitted.append(rel)
    sys.stdout.write(json.dumps({"checkout": top.strip(), "uncommitted": uncommitted}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
