/* watch.c: the inotify front end.  It turns events on a watched folder into
 * the same queue events that fs.c reports for the mount, so both front ends
 * share every rule (layout, settle, retries, journal).
 *
 * Thread model: one thread (main) reads inotify and signals and publishes
 * status xattrs; the uploader thread is the service's.  The only shared
 * state is the queue, which has its own lock. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define FUSE_USE_VERSION 312
#include <fuse.h> /* fuse_daemonize */

#include "beneath.h"
#include "clock.h"
#include "layout.h"
#include "log.h"
#include "service.h"
#include "vocab.h"
#include "watch.h"

#define WATCH_MASK                                                                                 \
	(IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE |        \
	 IN_DELETE_SELF | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONLYDIR)
#define PUBLISH_EVERY_MS 1000
#define MAX_DEPTH 256
/* A file written without a close (truncate(2), mmap, an unlinked-then-
 * recreated name) counts as closed after this long without a write. */
#define STALE_WRITER_MS 60000

/* inotify names files, and by the time an event is read the name may be
 * gone (rsync renames right after the close): remember both. */
struct writing {
	uint64_t ino;
	char *path;      /* kept up to date through renames */
	int64_t last_ms; /* last write seen */
};

struct watcher {
	struct service svc;
	int inotify_fd;
	int files_fd;
	char **wd_path; /* watch descriptor -> folder, relative ("" is the root) */
	int nwd;
	struct writing *writing; /* files seen modified and not yet closed */
	size_t nwriting, cap_writing;
	bool xattrs_ok;
	uint32_t move_cookie; /* a MOVED_FROM waiting for its MOVED_TO */
	char *move_from;
	bool move_is_dir;
};

/* ---- paths ---- */

static char *join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s%s%s", dir, *dir ? "/" : "", name) < 0)
		return NULL;
	return p;
}

/* ---- inodes being written (inotify has no "opened for writing") ---- */

static ssize_t writing_find(struct watcher *w, uint64_t ino, const char *path)
{
	for (size_t i = 0; i < w->nwriting; i++) {
		if (path ? strcmp(w->writing[i].path, path) == 0 : w->writing[i].ino == ino)
			return (ssize_t)i;
	}
	return -1;
}

static void writing_add(struct watcher *w, uint64_t ino, const char *path)
{
	char *copy = strdup(path);

	if (!copy)
		return;
	if (w->nwriting == w->cap_writing) {
		size_t cap = w->cap_writing ? w->cap_writing * 2 : 64;
		struct writing *bigger = realloc(w->writing, cap * sizeof(*bigger));

		if (!bigger) {
			free(copy);
			return;
		}
		w->writing = bigger;
		w->cap_writing = cap;
	}
	w->writing[w->nwriting++] = (struct writing){ino, copy, clock_now_ms()};
}

/* Take entry I out of the set; returns its inode. */
static uint64_t writing_take(struct watcher *w, size_t i)
{
	uint64_t ino = w->writing[i].ino;

	free(w->writing[i].path);
	w->writing[i] = w->writing[--w->nwriting];
	return ino;
}

/* Renames reach the set too, so a close reported under the new name (or
 * lost) still finds its file. */
static void writing_renamed(struct watcher *w, const char *from, const char *to, bool is_dir)
{
	size_t n = strlen(from);

	for (size_t i = 0; i < w->nwriting; i++) {
		char *p = w->writing[i].path, *fresh;

		if (!(is_dir ? layout_below(p, from, n, true) : strcmp(p, from) == 0))
			continue;
		if (asprintf(&fresh, "%s%s", to, p + n) >= 0) {
			free(p);
			w->writing[i].path = fresh;
		}
	}
}

static void writing_forget(struct watcher *w, const char *path, bool is_dir)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < w->nwriting;) {
		const char *p = w->writing[i].path;

		if (is_dir ? layout_below(p, path, n, true) : strcmp(p, path) == 0)
			writing_take(w, i);
		else
			i++;
	}
}

/* ---- what happened to a file ---- */

static void file_modified(struct watcher *w, const char *rel)
{
	struct stat st;
	char known[PATH_MAX];
	ssize_t i;

	if (beneath_stat(w->files_fd, rel, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	i = writing_find(w, st.st_ino, NULL);
	if (i >= 0) {
		w->writing[i].last_ms = clock_now_ms();
		return;
	}
	/* A second name for a known file (ln) is not new content. */
	if (st.st_nlink > 1 && queue_path_of(w->svc.queue, st.st_ino, known, sizeof(known)) &&
	    strcmp(known, rel) != 0)
		return;
	/* A new file under the name of one we knew: that one is gone. */
	queue_forget_other(w->svc.queue, rel, st.st_ino);
	queue_writing(w->svc.queue, st.st_ino, rel);
	writing_add(w, st.st_ino, rel);
}

/* A file found complete (closed, or in a folder that appeared whole):
 * like a write and a close, so settle still applies.  A known file found
 * elsewhere moved there before its folder was watched. */
static void file_found(struct watcher *w, const char *rel, const struct stat *st)
{
	char known[PATH_MAX];

	if (queue_path_of(w->svc.queue, st->st_ino, known, sizeof(known))) {
		if (strcmp(known, rel) != 0)
			queue_renamed(w->svc.queue, known, rel, st->st_ino, (uint64_t)st->st_size,
				      false);
		return;
	}
	queue_file_complete(w->svc.queue, st->st_ino, rel, (uint64_t)st->st_size);
}

static void file_closed(struct watcher *w, const char *rel)
{
	struct stat st;
	bool exists = beneath_stat(w->files_fd, rel, &st) == 0;
	ssize_t i = exists ? writing_find(w, st.st_ino, NULL) : -1;
	uint64_t ino, size;

	if (i < 0)
		i = writing_find(w, 0, rel);

	if (exists && !S_ISREG(st.st_mode))
		return;
	if (i < 0) {
		if (exists)
			file_found(w, rel, &st);
		return;
	}
	ino = writing_take(w, (size_t)i);
	/* Renamed or removed since: its size comes with the rename event. */
	size = exists && (uint64_t)st.st_ino == ino ? (uint64_t)st.st_size : QUEUE_SIZE_UNKNOWN;
	queue_closed(w->svc.queue, ino, size, true);
}

static void close_stale_writers(struct watcher *w, int64_t now)
{
	for (size_t i = 0; i < w->nwriting;) {
		struct stat st;
		uint64_t ino, size;

		if (now - w->writing[i].last_ms < STALE_WRITER_MS) {
			i++;
			continue;
		}
		size = beneath_stat(w->files_fd, w->writing[i].path, &st) == 0
			       ? (uint64_t)st.st_size
			       : QUEUE_SIZE_UNKNOWN;
		ino = writing_take(w, i);
		queue_closed(w->svc.queue, ino, size, true);
	}
}

/* ---- watches ---- */

static int wd_set(struct watcher *w, int wd, const char *rel)
{
	if (wd >= w->nwd) {
		int n = wd + 64;
		char **bigger = realloc(w->wd_path, (size_t)n * sizeof(*bigger));

		if (!bigger)
			return -ENOMEM;
		memset(bigger + w->nwd, 0, (size_t)(n - w->nwd) * sizeof(*bigger));
		w->wd_path = bigger;
		w->nwd = n;
	}
	free(w->wd_path[wd]);
	w->wd_path[wd] = strdup(rel);
	return w->wd_path[wd] ? 0 : -ENOMEM;
}

static void watch_limit_message(void)
{
	log_error("the inotify watch limit is reached; raise it, for example "
		  "sysctl fs.inotify.max_user_watches=524288 (and put it in /etc/sysctl.d/)");
}

/* Watch REL and everything below it.  With NEW_FILES, files found are
 * queued as new: a folder created or moved in after the watch began. */
/* A watch on the folder FD, which beneath_open reached without a link:
 * by its descriptor, so a folder swapped for a link meanwhile is not it. */
static int add_watch(struct watcher *w, int fd, const char *rel)
{
	char path[PATH_MAX];
	int wd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	wd = inotify_add_watch(w->inotify_fd, path, WATCH_MASK & ~IN_DONT_FOLLOW);
	if (wd >= 0 || errno != ENOENT)
		return wd;
	/* No /proc: by name, not following the last component. */
	snprintf(path, sizeof(path), "%s%s%s", w->svc.spool.files_path, *rel ? "/" : "", rel);
	return inotify_add_watch(w->inotify_fd, path, WATCH_MASK);
}

static int watch_tree(struct watcher *w, const char *rel, bool new_files, unsigned depth)
{
	struct dirent *de;
	DIR *d;
	int wd, fd, rc = 0;

	fd = beneath_open(w->files_fd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return 0; /* gone meanwhile */
	wd = add_watch(w, fd, rel);
	if (wd < 0) {
		rc = -errno;
		close(fd);
		if (rc == -ENOSPC)
			watch_limit_message();
		return rc;
	}
	if (wd_set(w, wd, rel) < 0 || depth > MAX_DEPTH) {
		close(fd);
		return -ENOMEM;
	}
	/* Listed after the watch exists, so nothing created meanwhile is lost. */
	d = fdopendir(fd);
	while (d && rc != -ENOSPC && (de = readdir(d))) {
		struct stat st;
		char *sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		sub = join(rel, de->d_name);
		/* The folder was reached without a link: its entries need no walk. */
		if (sub && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISDIR(st.st_mode))
				rc = watch_tree(w, sub, new_files, depth + 1);
			else if (S_ISREG(st.st_mode) && new_files &&
				 writing_find(w, st.st_ino, NULL) < 0)
				file_found(w, sub, &st);
			if (S_ISREG(st.st_mode))
				queue_rescan_seen(w->svc.queue, st.st_ino);
		}
		free(sub);
	}
	if (d)
		closedir(d);
	else
		close(fd);
	/* Out of watches is worth stopping for; a folder gone meanwhile is not. */
	return rc == -ENOSPC ? rc : 0;
}

/* Lost events: watch everything again and let the queue keep only what
 * is still there.  Known files keep their state, so nothing goes twice. */
static void rescan(struct watcher *w)
{
	log_warn("inotify lost events (queue overflow); rescanning %s", w->svc.spool.files_path);
	/* Their closes may be among the lost: count them closed now; a file
	 * still being written postpones itself at its next write. */
	while (w->nwriting) {
		uint64_t ino = writing_take(w, w->nwriting - 1);
		char path[PATH_MAX];
		struct stat st;

		if (queue_path_of(w->svc.queue, ino, path, sizeof(path)) &&
		    beneath_stat(w->files_fd, path, &st) == 0) {
			queue_closed(w->svc.queue, ino, (uint64_t)st.st_size, true);
		}
	}
	queue_rescan_begin(w->svc.queue);
	watch_tree(w, "", true, 0);
	queue_rescan_end(w->svc.queue);
}

static void rename_watched_dirs(struct watcher *w, const char *from, const char *to)
{
	size_t n = strlen(from);

	for (int i = 0; i < w->nwd; i++) {
		char *p = w->wd_path[i], *fresh;

		if (!p || !layout_below(p, from, n, true))
			continue;
		if (asprintf(&fresh, "%s%s", to, p + n) >= 0) {
			free(p);
			w->wd_path[i] = fresh;
		}
	}
}

/* ---- moves: a MOVED_FROM waits for the MOVED_TO with its cookie ---- */

/* A folder gone from the tree: its watches (and the ones below) must not
 * report under its old name any more. */
static void unwatch_below(struct watcher *w, const char *dir)
{
	size_t n = strlen(dir);

	for (int i = 0; i < w->nwd; i++) {
		char *p = w->wd_path[i];

		if (!p || strncmp(p, dir, n) != 0 || (p[n] != '/' && p[n] != '\0'))
			continue;
		inotify_rm_watch(w->inotify_fd, i);
		free(p);
		w->wd_path[i] = NULL;
	}
}

static void flush_move(struct watcher *w)
{
	if (!w->move_from)
		return;
	/* Moved out of the tree. */
	queue_forget(w->svc.queue, w->move_from, w->move_is_dir);
	writing_forget(w, w->move_from, w->move_is_dir);
	if (w->move_is_dir)
		unwatch_below(w, w->move_from);
	free(w->move_from);
	w->move_from = NULL;
}

/* A rename inside the tree.  The name may already be gone again (renamed
 * twice before we read the events): then the queue's inode for the old
 * name stands in, and a later event brings the size. */
static void moved_within(struct watcher *w, const char *rel, bool is_dir)
{
	struct stat st;
	bool exists = beneath_stat(w->files_fd, rel, &st) == 0;
	uint64_t ino = exists ? (uint64_t)st.st_ino : 0;

	if (!is_dir && !exists && !queue_ino_of(w->svc.queue, w->move_from, &ino))
		ino = 0;
	if (!is_dir && ino)
		queue_forget_other(w->svc.queue, rel, ino);
	if (is_dir || ino)
		queue_renamed(w->svc.queue, w->move_from, rel, ino,
			      exists ? (uint64_t)st.st_size : QUEUE_SIZE_UNKNOWN, is_dir);
	writing_renamed(w, w->move_from, rel, is_dir);
	if (is_dir)
		rename_watched_dirs(w, w->move_from, rel);
	free(w->move_from);
	w->move_from = NULL;
}

static void moved_to(struct watcher *w, const struct inotify_event *ev, const char *rel)
{
	bool is_dir = ev->mask & IN_ISDIR;
	struct stat st;

	if (w->move_from && w->move_cookie == ev->cookie) {
		moved_within(w, rel, is_dir);
		return;
	}
	flush_move(w);
	if (beneath_stat(w->files_fd, rel, &st) < 0)
		return;
	/* Moved in from elsewhere: complete, like a rename into place. */
	if (is_dir)
		watch_tree(w, rel, true, 0);
	else if (S_ISREG(st.st_mode)) {
		queue_forget_other(w->svc.queue, rel, st.st_ino);
		queue_renamed(w->svc.queue, "", rel, st.st_ino, (uint64_t)st.st_size, false);
	}
}

/* ---- events ---- */

static void handle_event(struct watcher *w, const struct inotify_event *ev)
{
	const char *dir = ev->wd >= 0 && ev->wd < w->nwd ? w->wd_path[ev->wd] : NULL;
	char *rel;

	if (ev->mask & IN_Q_OVERFLOW) {
		flush_move(w);
		rescan(w);
		return;
	}
	if (!dir)
		return;
	if (ev->mask & (IN_DELETE_SELF | IN_IGNORED)) {
		free(w->wd_path[ev->wd]);
		w->wd_path[ev->wd] = NULL;
		return;
	}
	if (!ev->len)
		return;
	rel = join(dir, ev->name);
	if (!rel)
		return;
	if (!(ev->mask & IN_MOVED_TO))
		flush_move(w);
	if (ev->mask & IN_MOVED_FROM) {
		w->move_from = rel;
		w->move_cookie = ev->cookie;
		w->move_is_dir = ev->mask & IN_ISDIR;
		return;
	}
	if (ev->mask & IN_MOVED_TO)
		moved_to(w, ev, rel);
	else if ((ev->mask & IN_CREATE) && (ev->mask & IN_ISDIR))
		watch_tree(w, rel, true, 0);
	else if (ev->mask & (IN_CREATE | IN_MODIFY))
		file_modified(w, rel);
	else if (ev->mask & IN_CLOSE_WRITE)
		file_closed(w, rel);
	else if (ev->mask & IN_DELETE) {
		queue_forget(w->svc.queue, rel, ev->mask & IN_ISDIR);
		writing_forget(w, rel, ev->mask & IN_ISDIR);
	}
	free(rel);
}

static void read_events(struct watcher *w)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(w->inotify_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			handle_event(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	flush_move(w);
}

/* ---- status on the real files ---- */

/* The file or folder REL, reached without following a link (users may
 * swap a folder for one, and we may be root), opened O_PATH for its
 * attributes: an fd, or -errno. */
static int open_attr_target(struct watcher *w, const char *rel)
{
	struct stat st;
	int fd = beneath_open(w->files_fd, *rel ? rel : ".", O_PATH | O_NOFOLLOW, 0);

	if (fd >= 0 && (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))) {
		close(fd);
		fd = -EPERM;
	}
	return fd;
}

/* Set (VALUE) or remove (NULL) attribute NAME of FD's own file, whatever
 * its name now says.  0 or -errno. */
static int fd_set_attr(int fd, const char *name, const char *value)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if ((value ? setxattr(proc, name, value, strlen(value), 0) : removexattr(proc, name)) < 0)
		return -errno;
	return 0;
}

static void publish_one(void *arg, const char *path, enum file_state state, const char *result)
{
	struct watcher *w = arg;
	int fd, rc;

	if (!w->xattrs_ok)
		return;
	fd = open_attr_target(w, path);
	rc = fd < 0 ? fd : fd_set_attr(fd, XATTR_STATUS, file_state_name(state));
	if (rc == -ENOTSUP || rc == -EOPNOTSUPP) {
		log_warn("%s does not keep user xattrs: see the status with ingestfs status",
			 w->svc.spool.files_path);
		w->xattrs_ok = false;
	}
	if (rc == 0)
		fd_set_attr(fd, XATTR_RESULT, result && *result ? result : NULL);
	if (fd >= 0)
		close(fd);
}

/* ---- the loop ---- */

static int open_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int run(struct watcher *w)
{
	struct pollfd fds[2] = {{.fd = w->inotify_fd, .events = POLLIN}};
	int64_t next_publish = 0;

	fds[1].fd = open_signals();
	fds[1].events = POLLIN;
	if (fds[1].fd < 0 || service_start(&w->svc))
		return 1;
	log_info("watching %s (state %s, service %s)", w->svc.spool.files_path,
		 w->svc.spool.state_path, w->svc.opt.url);
	for (;;) {
		int64_t now = clock_now_ms();

		if (now >= next_publish) {
			queue_publish_changes(w->svc.queue, publish_one, w);
			close_stale_writers(w, now);
			next_publish = now + PUBLISH_EVERY_MS;
		}
		if (poll(fds, 2, PUBLISH_EVERY_MS) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN)
			break;
		if (fds[0].revents & POLLIN) {
			read_events(w);
			/* At once, so no stale "uploaded" outlives a change. */
			next_publish = 0;
		}
	}
	close(fds[1].fd);
	service_stop(&w->svc, "stopped");
	queue_publish_changes(w->svc.queue, publish_one, w);
	return 0;
}

/* Tells `ingestfs status` that this tree is watched (it has no summary
 * xattrs on folders, so it adds up the files' own). */
static void mark_watched(struct watcher *w)
{
	for (int i = -1; i < (int)layout_category_count(); i++) {
		int fd = open_attr_target(w, i < 0 ? "" : layout_category_name(i));

		if (fd >= 0) {
			fd_set_attr(fd, XATTR_WATCH, "1");
			close(fd);
		}
	}
}

static int open_watch(struct watcher *w)
{
	const struct options *o = &w->svc.opt;
	char real[PATH_MAX], *state;
	int rc;

	if (!realpath(o->mountpoint, real))
		return service_fail("cannot watch %s: %s", o->mountpoint, strerror(errno));
	state = o->state_dir ? strdup(o->state_dir) : spool_default_state_dir(real);
	if (!state)
		return service_fail("cannot choose a state directory: set -o state=DIR");
	if (strncmp(state, real, strlen(real)) == 0 &&
	    (state[strlen(real)] == '/' || state[strlen(real)] == '\0')) {
		free(state);
		return service_fail("the state directory must be outside the watched folder");
	}
	rc = service_open(&w->svc, NULL, real, state);
	free(state);
	if (rc)
		return rc;
	w->files_fd = w->svc.spool.files_fd;
	w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->inotify_fd < 0)
		return service_fail("inotify: %s", strerror(errno));
	/* Files made between the spool scan and the watch count as new. */
	rc = watch_tree(w, "", true, 0);
	mark_watched(w);
	if (rc == -ENOSPC)
		return service_fail("the inotify watch limit is reached: raise "
				    "fs.inotify.max_user_watches (sysctl)");
	return rc < 0 ? service_fail("cannot watch %s: %s", real, strerror(-rc)) : 0;
}

int watch_main(int argc, char **argv)
{
	struct watcher w = {.inotify_fd = -1,
			    .files_fd = -1,
			    .xattrs_ok = true,
			    .svc = {.written_outside = true}};
	struct options *o = &w.svc.opt;
	bool exit_now;
	int rc = service_parse(&w.svc, argc, argv, "folder to watch", &exit_now);

	if (rc || exit_now)
		goto out;
	if ((rc = service_make_absolute(&o->state_dir)) ||
	    (rc = service_make_absolute(&o->api_key_file)) ||
	    (rc = service_make_absolute(&o->cafile)) || (rc = service_make_absolute(&o->metrics)) ||
	    (rc = open_watch(&w)))
		goto out;
	if (fuse_daemonize(o->foreground) != 0) {
		rc = 1;
		goto out;
	}
	if (!o->foreground)
		log_use_syslog(true);
	rc = run(&w);
out:
	if (w.inotify_fd >= 0)
		close(w.inotify_fd);
	for (int i = 0; i < w.nwd; i++)
		free(w.wd_path[i]);
	free(w.wd_path);
	while (w.nwriting)
		writing_take(&w, w.nwriting - 1);
	free(w.writing);
	free(w.move_from);
	service_close(&w.svc);
	return rc;
}
