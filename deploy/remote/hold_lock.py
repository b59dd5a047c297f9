"""Hold the controller's lock for one run of the tool, or show who holds it.

argv: PYTHON STATE_DIR MODE [WAIT_SECONDS HOLDER_JSON]

The lock is ``fcntl.flock`` on STATE_DIR/lock; who holds it is written to
STATE_DIR/lock.json (HOLDER_JSON plus "since", this machine's UTC time).
The kernel drops the flock when the process holding it dies, so a
lock.json found by the next holder means the last one did not release it
(its run was killed, or its connection dropped): the info is kept, marked
"ended", until someone takes the lock over.

MODE "hold": take the lock, waiting at most WAIT_SECONDS. Prints JSON lines:
``{"waiting": INFO}`` once if another run holds it, then either
``{"busy": INFO}`` (exit 3: not taken) or ``{"held": INFO, "taken_over":
OLD_INFO_OR_NULL}``. Then it holds the lock until its stdin closes. A
"release" line first means the run ended well: lock.json is removed. EOF
without it (the tool died, the connection dropped, sshd closed the
session) leaves lock.json marked "ended" for the next holder to report.

MODE "show": prints ``{"held": bool, "holder": INFO_OR_NULL}`` and changes
nothing.

STATE_DIR is made root's (0755) if it is missing; one that another user
owns or can write, or that lies below such a directory, is refused (exit
2, the reason on stderr): root writes lock.json there. A file where
STATE_DIR or a directory above it should be is refused the same way, in
both modes. lock.json is
written as a new file of an unguessable name, renamed in.

Python 2.7 and 3.6+, standard library only.
"""
import errno
import fcntl
import json
import os
import select
import sys
import time

BUSY = 3
UNUSABLE = 2
POLL = 0.1

# devloop-include: state_dir


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def say(document):
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def read_info(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (EnvironmentError, ValueError):   # IOError on Python 2, OSError on 3
        return None


def write_info(path, info):
    write_new(path, json.dumps(info).encode("utf-8"), 0o644)   # a reader sees old or new


def try_lock(fd, kind):
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except (IOError, OSError) as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def stdin_closed(timeout):
    """Wait up to ``timeout`` for input; True once stdin is at its end."""
    ready, _, _ = select.select([0], [], [], timeout)
    if not ready:
        return False
    if not os.read(0, 4096):
        return True
    time.sleep(timeout)          # input before the lock is held means nothing: ignored
    return False


def read_to_end():
    """Everything left on stdin (blocks until the tool closes it or goes away)."""
    chunks = []
    while True:
        try:
            chunk = os.read(0, 4096)
        except OSError:          # the session's pipe is gone: the same as EOF
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def show(lock_path, info_path):
    if not os.path.exists(lock_path):
        say({"held": False, "holder": None})
        return 0
    fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    # a shared lock conflicts only with a holder's exclusive one
    free = try_lock(fd, fcntl.LOCK_SH)
    os.close(fd)
    say({"held": not free, "holder": read_info(info_path)})
    return 0


def hold(lock_path, info_path, wait, holder):
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    deadline = time.time() + wait
    waiting = False
    while not try_lock(fd, fcntl.LOCK_EX):
        if not waiting:
            waiting = True
            say({"waiting": read_info(info_path)})
        left = deadline - time.time()
        if left <= 0:
            say({"busy": read_info(info_path)})
            return BUSY
        if stdin_closed(min(POLL, left)):
            return 0             # the tool gave up or went away while waiting
    old = read_info(info_path)   # present only if its holder never released it
    info = dict(holder)
    info["since"] = utc_now()
    write_info(info_path, info)
    say({"held": info, "taken_over": old})
    released = b"release" in read_to_end()
    if released:
        os.remove(info_path)
    else:
        info["ended"] = utc_now()
        write_info(info_path, info)
    # the flock goes with the process: removing lock.json came first
    return 0


def in_the_way(state_dir):
    """The nearest existing path at or above ``state_dir`` that is no directory, or None."""
    probe = state_dir
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    return None if os.path.isdir(probe) else probe


def main(argv):
    state_dir, mode = argv[2], argv[3]
    lock_path = os.path.join(state_dir, "lock")
    info_path = os.path.join(state_dir, "lock.json")
    blocked = in_the_way(state_dir)
    if blocked:       # even to show: "free" would hide an inventory that cannot work
        sys.stderr.write("cannot use state_dir %s: %s is not a directory\n" % (state_dir, blocked))
        return UNUSABLE
    if mode == "show":
        return show(lock_path, info_path)
    try:
        ensure_dir(state_dir, 0o755)
    except Untrusted as exc:
        sys.stderr.write("state_dir %s is not root's alone: %s; cinder-devloop runs as root "
                         "and keeps its files only where no other user can write (chown root "
                         "and chmod go-w it, or name another state_dir in the inventory)\n"
                         % (state_dir, exc))
        return UNUSABLE
    except OSError as exc:
        sys.stderr.write("cannot make state_dir %s: %s\n" % (state_dir, exc))
        return UNUSABLE
    return hold(lock_path, info_path, float(argv[4]), json.loads(argv[5]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
