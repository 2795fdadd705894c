"""ingestfs-nautilus: the upload status of ingestfs files in GNOME Files.

A nautilus-python 4 extension (Nautilus 43 and later).  In an ingestfs mount
(and in a folder that `ingestfs watch` uploads) every file gets an emblem for
its user.ingest.status, and two list-view columns:

    Upload status   ingestfs_status   a file's state; a folder's overall one
    Upload detail   ingestfs_detail   a file's user.ingest.result (stored
                                      name, or why it failed); a folder's
                                      user.ingest.summary, short ("12 up,
                                      1 failed")

The context menu of a selection holding failed files, or folders with failed
files below, and the background menu of such a folder, offer "Retry upload":
it writes "retry" to user.ingest.status (ingestfs(1), STATUS).

Install: copy this file to ~/.local/share/nautilus-python/extensions/ (or
/usr/share/nautilus-python/extensions/ for every user; Debian's package
python3-nautilus provides the loader), then `nautilus -q`.  Add the columns
with the list view's "Visible Columns...", or
    gsettings set org.gnome.nautilus.list-view default-visible-columns \
        "['name', 'size', 'ingestfs_status', 'ingestfs_detail']"

Nothing here blocks or raises: it reads the user.ingest.* attributes (which
the daemon answers from memory), only on ingestfs mounts and local file
systems (never on another FUSE or a network file system, where a read could
wait on a network), and any error means "not an ingestfs file": nothing is
added.  Files whose state may change with no event Nautilus sees (writing,
pending, uploading, and failed ones, which a retry of a folder sends again)
and the folders of a mount are asked again every two seconds (less often
when there are thousands) while Nautilus shows them.

The logic is in plain functions below, importable without Nautilus (and
without PyGObject) for tests: read_info(), describe(), retry_targets(),
retry().  This file follows src/vocab.h; change both together.
"""

import collections
import os
import sys
import time

# ---- the words of the mount (src/vocab.h) ----

XATTR_STATUS = "user.ingest.status"
XATTR_RESULT = "user.ingest.result"
XATTR_SUMMARY = "user.ingest.summary"
STATUS_RETRY = "retry"
STATES = ("writing", "pending", "uploading", "uploaded", "duplicate", "failed", "ignored")
SUMMARY_KEYS = ("uploaded", "duplicate", "pending", "uploading", "failed", "ignored")
# The states a file may leave without any event Nautilus sees: by itself,
# or (failed) by a retry written on a folder above it.
ASK_AGAIN = frozenset(("writing", "pending", "uploading", "failed"))

# ---- what this extension shows ----

# Icon names of Debian 12's Adwaita theme (adwaita-icon-theme 43): each has
# a full-colour legacy icon or a symbolic one, or both.
EMBLEMS = {
    "writing": "document-open-recent",   # a clock: waiting
    "pending": "document-open-recent",
    "uploading": "emblem-synchronizing",  # arrows: on its way
    "uploaded": "emblem-default",         # a tick
    "duplicate": "emblem-documents",      # two sheets: the project had these bytes
    "failed": "emblem-important",         # an exclamation mark
}

# The short words of a folder's counts, in the order of the summary.
SHORT = collections.OrderedDict((
    ("uploaded", "up"),
    ("duplicate", "dup"),
    ("pending", "pending"),
    ("uploading", "uploading"),
    ("failed", "failed"),
    ("ignored", "ignored"),
))

COLUMN_STATUS = "ingestfs_status"
COLUMN_DETAIL = "ingestfs_detail"
# Private attribute on a Nautilus file: "1" when "Retry upload" applies.
ATTR_RETRY = "ingestfs_retry"

# File systems whose reads may wait on a network or another daemon: never
# asked.  Any other FUSE file system but ingestfs is skipped too.
REMOTE_FSTYPES = frozenset((
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs",
    "lustre", "gfs2", "ocfs2", "davfs", "coda", "beegfs", "gpfs", "orangefs", "virtiofs",
))
MOUNT_FSTYPE = "fuse.ingestfs"

Info = collections.namedtuple("Info", "path is_dir mount status result counts")
Info.__doc__ = """What ingestfs says about one path.

path, is_dir; mount: True in an ingestfs mount (where "retry" can be
written), False in a watched folder; status, result: a file's
user.ingest.status and user.ingest.result ("" when absent), None for a
folder; counts: a folder's summary as a dict (None for a file, and for a
folder that has no summary)."""

View = collections.namedtuple("View", "emblem status detail")
View.__doc__ = """What Nautilus shows: emblem (an icon name, or None), and
the texts of the Upload status and Upload detail columns."""


# ---- mounts ----

def _unescape(field):
    """A mountinfo field: a space is written \\040, a backslash \\134."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text):
    """{(major, minor): (mount point, fstype)} of /proc/self/mountinfo."""
    mounts = {}
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            major, minor = fields[2].split(":")
            mounts[(int(major), int(minor))] = (_unescape(fields[4]), fields[sep + 1])
        except (ValueError, IndexError):
            continue
    return mounts


def classify_fstype(fstype):
    """"mount" for an ingestfs mount, "local" for a file system whose
    attributes are read without waiting on anything (a watched folder may be
    there), None for one not to ask (another FUSE, a network)."""
    if fstype == MOUNT_FSTYPE:
        return "mount"
    if fstype is None or fstype.startswith("fuse") or fstype in REMOTE_FSTYPES:
        return None
    return "local"


class MountTable:
    """Which file system a path is on, from st_dev and mountinfo, read again
    when a device is unknown or the table is older than max_age seconds."""

    def __init__(self, source="/proc/self/mountinfo", max_age=5.0, clock=time.monotonic):
        self.source = source
        self.max_age = max_age
        self.clock = clock
        self.mounts = {}
        self.read_at = None

    def _reload(self):
        try:
            with open(self.source) as f:
                self.mounts = parse_mountinfo(f.read())
        except OSError:
            self.mounts = {}
        self.read_at = self.clock()

    def fstype(self, dev, path):
        """The type of the file system of device DEV; by the longest mount
        point above PATH when no mount has that device (btrfs subvolumes)."""
        key = (os.major(dev), os.minor(dev))
        now = self.clock()
        if (self.read_at is None or now - self.read_at > self.max_age
                or (key not in self.mounts and now - self.read_at > 0.5)):
            self._reload()
        entry = self.mounts.get(key)
        if entry:
            return entry[1]
        best = None
        for point, fstype in self.mounts.values():
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and (best is None or len(point) > len(best[0])):
                best = (point, fstype)
        return best[1] if best else None

    def kind(self, path):
        """classify_fstype() of the file system PATH is on; None on error."""
        try:
            st = os.lstat(path)
        except (OSError, ValueError):
            return None
        return classify_fstype(self.fstype(st.st_dev, path))


_MOUNTS = MountTable()


# ---- reading the attributes ----

def _get(path, name, getxattr):
    """The attribute as text; None when it is not there."""
    try:
        value = getxattr(path, name, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    return value.decode("utf-8", "replace")


def parse_summary(text):
    """user.ingest.summary ("uploaded=N duplicate=N ...") as a dict of the
    six counts; None when it is not one."""
    if text is None:
        return None
    counts = {}
    for word in text.split():
        key, eq, value = word.partition("=")
        if eq and key in SUMMARY_KEYS and value.isdigit():
            counts[key] = int(value)
    if not counts:
        return None
    for key in SUMMARY_KEYS:
        counts.setdefault(key, 0)
    return counts


def read_info(path, is_dir=None, kind=None, getxattr=os.getxattr, mounts=None):
    """Info for PATH, or None when it is not in an ingestfs mount or watched
    folder (its attributes cannot be read), or on a file system not to ask.
    kind is classify_fstype()'s word when the caller knows it."""
    try:
        if kind is None:
            kind = (mounts or _MOUNTS).kind(path)
        if kind is None:
            return None
        if is_dir is None:
            is_dir = os.path.isdir(path) and not os.path.islink(path)
        if is_dir:
            counts = parse_summary(_get(path, XATTR_SUMMARY, getxattr))
            if counts is None:
                return None
            return Info(path, True, kind == "mount", None, None, counts)
        status = _get(path, XATTR_STATUS, getxattr)
        if not status:
            return None
        result = _get(path, XATTR_RESULT, getxattr) or ""
        return Info(path, False, kind == "mount", status, result, None)
    except Exception:  # never let a surprise reach Nautilus
        return None


# ---- what it looks like ----

def short_summary(counts):
    """"12 up, 1 failed": the counts that are not zero; "no files"."""
    parts = ["%d %s" % (counts[key], word) for key, word in SHORT.items() if counts.get(key)]
    return ", ".join(parts) if parts else "no files"


def folder_state(counts):
    """One word for a folder: what most needs a look."""
    for key in ("failed", "uploading", "pending"):
        if counts.get(key):
            return key
    if counts.get("uploaded") or counts.get("duplicate"):
        return "uploaded"
    if counts.get("ignored"):
        return "ignored"
    return ""


def _one_line(text):
    return " ".join(text.split())


def describe(info):
    """View of an Info (None for None)."""
    if info is None:
        return None
    if info.is_dir:
        state = folder_state(info.counts)
        return View(EMBLEMS.get(state), state, short_summary(info.counts))
    return View(EMBLEMS.get(info.status), info.status, _one_line(info.result or ""))


def needs_refresh(info):
    """True when what is shown may change without any event Nautilus sees:
    a file still on its way, a failed one (a retry of its folder sends it
    again), or a folder of a mount (its counts follow everything below
    it)."""
    if info is None:
        return False
    if info.is_dir:
        return info.mount
    return info.status in ASK_AGAIN


# ---- Retry upload ----

def can_retry(info):
    """Whether "retry" means something here: a failed file, or a folder with
    failed files below, in a mount (a watched folder takes no retry)."""
    if info is None or not info.mount:
        return False
    if info.is_dir:
        return bool(info.counts.get("failed"))
    return info.status == "failed"


def retry_targets(paths, read=read_info):
    """The paths among PATHS that "Retry upload" applies to."""
    return [p for p in paths if can_retry(read(p))]


def retry(paths, setxattr=os.setxattr):
    """Write "retry" to each path's user.ingest.status; the list of
    (path, OSError) that failed."""
    errors = []
    for p in paths:
        try:
            setxattr(p, XATTR_STATUS, STATUS_RETRY.encode(), follow_symlinks=False)
        except OSError as e:
            errors.append((p, e))
    return errors


def _log(text):
    try:
        sys.stderr.write("ingestfs-nautilus: %s\n" % text)
        sys.stderr.flush()
    except Exception:
        pass


DEBUG = bool(os.environ.get("INGESTFS_NAUTILUS_DEBUG"))


# ---- Nautilus ----

try:
    import gi
    gi.require_version("Nautilus", "4.0")
    from gi.repository import GLib, GObject, Nautilus
except (ImportError, ValueError, AttributeError):
    Nautilus = None


def _path_of(file_info):
    """The local path of a Nautilus file, or None."""
    try:
        location = file_info.get_location()
        return location.get_path() if location is not None else None
    except Exception:
        return None


if Nautilus is not None:

    class IngestfsExtension(GObject.GObject, Nautilus.InfoProvider, Nautilus.ColumnProvider,
                            Nautilus.MenuProvider):
        """Emblems, two columns and "Retry upload" for ingestfs files."""

        REFRESH_SECONDS = 2
        REFRESH_PER_FILE = 0.002  # a bigger set is asked less often
        REFRESH_MAX_SECONDS = 30

        def __init__(self):
            super().__init__()
            self._refresh = {}  # uri -> Nautilus.FileInfo to ask again
            self._timer = 0
            self._last = 0  # how many the last round asked again

        # -- ColumnProvider --

        def get_columns(self):
            return [
                Nautilus.Column(name=COLUMN_STATUS, attribute=COLUMN_STATUS,
                                label="Upload status",
                                description="ingestfs: the upload state (user.ingest.status)"),
                Nautilus.Column(name=COLUMN_DETAIL, attribute=COLUMN_DETAIL,
                                label="Upload detail",
                                description="ingestfs: stored name or why it failed; "
                                            "a folder's counts"),
            ]

        # -- InfoProvider --

        def update_file_info(self, file_info):
            try:
                self._update(file_info)
            except Exception as e:  # never raise into Nautilus
                _log("update_file_info: %r" % (e,))
            return Nautilus.OperationResult.COMPLETE

        def _update(self, file_info):
            path = _path_of(file_info)
            if not path:
                return
            info = read_info(path, is_dir=file_info.is_directory())
            view = describe(info)
            if view is None:
                return
            if view.emblem:
                file_info.add_emblem(view.emblem)
            file_info.add_string_attribute(COLUMN_STATUS, view.status)
            file_info.add_string_attribute(COLUMN_DETAIL, view.detail)
            file_info.add_string_attribute(ATTR_RETRY, "1" if can_retry(info) else "0")
            if DEBUG:
                _log("info %s emblem=%s status=%s detail=%s"
                     % (path, view.emblem, view.status, view.detail))
            if needs_refresh(info):
                self._ask_again(file_info)

        def _ask_again(self, file_info):
            self._refresh[file_info.get_uri()] = file_info
            if not self._timer:
                self._timer = GLib.timeout_add(int(self._delay() * 1000), self._tick)

        def _delay(self):
            """Seconds to the next round.  The set fills one by one: go by
            the size of the last round."""
            count = max(len(self._refresh), self._last)
            return min(self.REFRESH_MAX_SECONDS,
                       max(self.REFRESH_SECONDS, count * self.REFRESH_PER_FILE))

        def _tick(self):
            # Those Nautilus still shows come back through update_file_info
            # and are put back in the set; the others drop out.
            files, self._refresh, self._timer = list(self._refresh.values()), {}, 0
            self._last = len(files)
            for f in files:
                try:
                    if not f.is_gone():
                        f.invalidate_extension_info()
                except Exception as e:
                    _log("refresh: %r" % (e,))
            return False

        # -- MenuProvider --

        def _targets(self, files):
            """The selected files "Retry upload" applies to: from what
            update_file_info saw, or read now for a file not seen yet."""
            targets = []
            for f in files:
                try:
                    seen = f.get_string_attribute(ATTR_RETRY)
                    if seen == "0":
                        continue
                    path = _path_of(f)
                    if not path:
                        continue
                    if seen == "1" or can_retry(read_info(path, is_dir=f.is_directory())):
                        targets.append((f, path))
                except Exception as e:
                    _log("menu: %r" % (e,))
            return targets

        def _item(self, name, targets):
            item = Nautilus.MenuItem(
                name=name, label="Retry _upload",
                tip="Send the failed files again (ingestfs: user.ingest.status = retry)")
            item.connect("activate", self._on_retry, targets)
            return item

        def _on_retry(self, _item, targets):
            try:
                if DEBUG:
                    _log("retry %s" % " ".join(path for _, path in targets))
                errors = retry([path for _, path in targets])
                for path, e in errors:
                    _log("retry %s: %s" % (path, e.strerror or e))
                for f, _ in targets:
                    if not f.is_gone():
                        f.invalidate_extension_info()
            except Exception as e:
                _log("retry: %r" % (e,))

        def get_file_items(self, *args):
            # nautilus-python 4 passes (files); 1.x passed (window, files).
            try:
                targets = self._targets(args[-1])
                if DEBUG:
                    _log("menu %s" % " ".join(path for _, path in targets))
                return [self._item("IngestfsExtension::retry", targets)] if targets else []
            except Exception as e:
                _log("menu: %r" % (e,))
                return []

        def get_background_items(self, *args):
            try:
                targets = self._targets([args[-1]])
                if DEBUG:
                    _log("background menu %s" % " ".join(path for _, path in targets))
                return [self._item("IngestfsExtension::retry_here", targets)] if targets else []
            except Exception as e:
                _log("menu: %r" % (e,))
                return []
