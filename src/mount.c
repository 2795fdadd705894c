/* mount.c: the mount's life: checks, start-up, the FUSE loop, shutdown. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "apikey.h"
#include "fs.h"
#include "journal.h"
#include "log.h"
#include "mount.h"
#include "notify.h"
#include "options.h"
#include "spool.h"
#include "upload.h"

struct mount_state {
	struct options opt;
	char *mountpoint; /* absolute */
	struct spool spool;
	struct queue *queue;
	struct journal *journal;
	struct uploader *uploader;
	struct fs_context fs;
	struct fuse *fuse;
	char *key;
	bool mounted, curl_ready;
};

static struct uploader *hup_target;

static void on_sighup(int sig)
{
	if (hup_target)
		uploader_request_key_reload(hup_target);
}

/* One clear line on stderr, and the exit status for a refused mount. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("ingestfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int parse_options(struct mount_state *m, int argc, char **argv, bool *exit_now)
{
	char err[512], *cfg = options_config_path();
	int rc = 0;

	*exit_now = false;
	options_init(&m->opt);
	if (cfg && options_load_config(&m->opt, cfg, err, sizeof(err)) < 0)
		rc = fail("%s", err);
	else if (options_parse_args(&m->opt, argc - 1, argv + 1, err, sizeof(err)) < 0)
		rc = fail("%s", err);
	free(cfg);
	if (rc)
		return rc;
	if (m->opt.show_help || m->opt.show_version) {
		if (m->opt.show_help)
			options_usage(stdout);
		else
			printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		*exit_now = true;
		return 0;
	}
	if (!m->opt.mountpoint)
		return fail("no mountpoint given (usage: ingestfs [-f] [-o OPTIONS] MOUNTPOINT)");
	log_set_level(m->opt.log_level);
	return 0;
}

/* Daemonizing moves us to "/": relative paths must be made whole first. */
static int make_absolute(char **path)
{
	char cwd[PATH_MAX], *abs;

	if (!*path || (*path)[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return fail("cannot resolve %s: %s", *path, strerror(errno));
	if (asprintf(&abs, "%s/%s", cwd, *path) < 0)
		return fail("out of memory");
	free(*path);
	*path = abs;
	return 0;
}

static int check_mountpoint(struct mount_state *m)
{
	char real[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (!realpath(m->opt.mountpoint, real))
		return fail("mountpoint %s: %s", m->opt.mountpoint, strerror(errno));
	d = opendir(real);
	if (!d)
		return fail("mountpoint %s: %s", real, strerror(errno));
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			closedir(d);
			return fail("mountpoint %s is not empty", real);
		}
	}
	closedir(d);
	m->mountpoint = strdup(real);
	return m->mountpoint ? 0 : fail("out of memory");
}

static void replay_record(void *arg, const struct journal_record *r)
{
	queue_replay(arg, r);
}

/* Journal first, then the spool (the truth), then a fresh journal. */
static int recover_queue(struct mount_state *m)
{
	struct journal_replay_stats js;
	struct queue_recovery rec;
	long found;
	int rc = journal_replay(m->spool.state_fd, replay_record, m->queue, &js);

	if (rc < 0)
		return fail("cannot read the queue journal in %s/state: %s", m->spool.dir,
			    strerror(-rc));
	if (js.bad_header)
		log_warn("the queue journal was not readable; set aside as journal.bad, "
			 "rebuilding the queue from the spool");
	if (js.damaged || js.torn_tail)
		log_warn("the queue journal had %zu damaged line(s)%s; the spool files decide",
			 js.damaged, js.torn_tail ? " and a torn last line" : "");
	found = spool_scan(&m->spool, m->queue);
	if (found < 0)
		return fail("cannot read the spool %s: %s", m->spool.dir, strerror((int)-found));
	queue_reconcile_finish(m->queue, &rec);
	rc = journal_open(m->spool.state_fd, &m->journal);
	if (rc < 0)
		return fail("cannot write the queue journal in %s/state: %s", m->spool.dir,
			    strerror(-rc));
	queue_set_journal(m->queue, m->journal);
	rc = queue_compact_journal(m->queue);
	if (rc < 0)
		return fail("cannot write the queue journal in %s/state: %s", m->spool.dir,
			    strerror(-rc));
	if (rec.files)
		log_info("spool %s: %zu file(s), %zu to upload, %zu interrupted while writing",
			 m->spool.dir, rec.files, rec.pending, rec.interrupted);
	return 0;
}

static int open_spool(struct mount_state *m)
{
	char err[512], *dir = m->opt.spool ? strdup(m->opt.spool) : spool_default_dir(m->mountpoint);

	if (!dir)
		return fail("cannot choose a spool directory: set -o spool=DIR");
	if (spool_open(&m->spool, dir, err, sizeof(err)) < 0) {
		free(dir);
		return fail("%s", err);
	}
	free(dir);
	m->queue = queue_new(&(struct queue_config){
		.settle_ms = m->opt.settle_ms,
		.batch_max = m->opt.batch,
		.batch_bytes_max = 32ull * 1024 * 1024,
		.backoff_min_ms = m->opt.backoff_ms,
		.backoff_max_ms = m->opt.backoff_max_ms,
		.linger_ms = 100,
	});
	if (!m->queue)
		return fail("out of memory");
	return recover_queue(m);
}

static int start_fuse(struct mount_state *m, const char *argv0)
{
	char opts[4096];
	char *args_v[] = {(char *)argv0, "-o", opts, "-d", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(m->opt.debug ? 4 : 3, args_v);

	snprintf(opts, sizeof(opts), "fsname=ingestfs,subtype=ingestfs,default_permissions%s%s",
		 m->opt.fuse_opts ? "," : "", m->opt.fuse_opts ? m->opt.fuse_opts : "");
	m->fs = (struct fs_context){.files_fd = m->spool.files_fd,
				    .files_path = m->spool.files_path,
				    .q = m->queue};
	m->fuse = fuse_new(&args, &fs_operations, sizeof(fs_operations), &m->fs);
	fuse_opt_free_args(&args);
	if (!m->fuse)
		return fail("cannot set up FUSE (see the message above)");
	if (fuse_mount(m->fuse, m->mountpoint) != 0)
		return fail("cannot mount on %s", m->mountpoint);
	m->mounted = true;
	return 0;
}

static int load_key(struct mount_state *m)
{
	char err[512];

	apikey_take_from_env();
	if (apikey_load(&m->opt, &m->key, err, sizeof(err)) < 0)
		return fail("%s", err);
	return 0;
}

static int create_uploader(struct mount_state *m)
{
	m->uploader = uploader_new(m->queue, m->spool.files_fd, &m->opt, m->key);
	if (!m->uploader)
		return fail("out of memory");
	m->key = NULL; /* the uploader owns it now */
	return 0;
}

static int run(struct mount_state *m)
{
	struct fuse_session *se = fuse_get_session(m->fuse);
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	struct sigaction sa = {.sa_handler = on_sighup};
	int rc;

	if (!loop || fuse_set_signal_handlers(se) != 0)
		return 1;
	hup_target = m->uploader;
	sigaction(SIGHUP, &sa, NULL); /* FUSE would unmount on it */
	if (fuse_daemonize(m->opt.foreground) != 0)
		return 1;
	if (!m->opt.foreground)
		log_use_syslog(true);
	if (m->opt.insecure)
		log_warn("TLS certificates are not verified (insecure): for test servers only");
	if ((rc = uploader_start(m->uploader)) < 0) {
		log_error("cannot start the upload thread: %s", strerror(-rc));
		return 1;
	}
	log_info("mounted %s (spool %s, service %s)", m->mountpoint, m->spool.dir, m->opt.url);
	notify_service_manager("READY=1");
	fuse_loop_cfg_set_max_threads(loop, 16);
	rc = fuse_loop_mt(m->fuse, loop);
	fuse_loop_cfg_destroy(loop);
	notify_service_manager("STOPPING=1");
	uploader_stop(m->uploader);
	hup_target = NULL;
	fuse_remove_signal_handlers(se);
	return rc == 0 ? 0 : 1;
}

static void log_leftovers(struct mount_state *m)
{
	struct queue_counts c;
	size_t left;

	queue_count(m->queue, "", &c);
	left = c.n[FILE_PENDING] + c.n[FILE_WRITING] + c.n[FILE_UPLOADING];
	if (left)
		log_info("unmounted with %zu file(s) not yet uploaded; they stay in the spool %s",
			 left, m->spool.dir);
}

static void teardown(struct mount_state *m)
{
	if (m->mounted)
		fuse_unmount(m->fuse);
	if (m->fuse)
		fuse_destroy(m->fuse);
	uploader_free(m->uploader);
	if (m->queue)
		queue_set_journal(m->queue, NULL);
	journal_close(m->journal);
	queue_free(m->queue);
	if (m->spool.dir)
		spool_close(&m->spool);
	if (m->curl_ready)
		curl_global_cleanup();
	apikey_free(m->key);
	free(m->mountpoint);
	options_free(&m->opt);
}

int mount_main(int argc, char **argv)
{
	struct mount_state m = {0};
	bool exit_now;
	int rc;

	m.spool.files_fd = m.spool.state_fd = -1;
	rc = parse_options(&m, argc, argv, &exit_now);
	if (rc || exit_now)
		goto out;
	/* curl wants this before any thread exists. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = fail("cannot initialise libcurl");
		goto out;
	}
	m.curl_ready = true;
	if ((rc = make_absolute(&m.opt.spool)) || (rc = make_absolute(&m.opt.api_key_file)) ||
	    (rc = make_absolute(&m.opt.cafile)) || (rc = check_mountpoint(&m)) ||
	    (rc = load_key(&m)) || (rc = open_spool(&m)) ||
	    (rc = create_uploader(&m)) || (rc = start_fuse(&m, argv[0])))
		goto out;
	rc = run(&m);
	log_leftovers(&m);
out:
	teardown(&m);
	return rc;
}
