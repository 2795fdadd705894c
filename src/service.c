/* service.c: start-up and shutdown shared by the mount and the watcher. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <curl/curl.h>

#include "apikey.h"
#include "fdbudget.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "service.h"

static struct uploader *hup_target;

static void on_sighup(int sig)
{
	if (hup_target)
		uploader_request_key_reload(hup_target);
}

int service_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("ingestfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int service_parse(struct service *s, int argc, char **argv, const char *what, bool *exit_now)
{
	char err[512], *cfg = options_config_path();
	int rc = 0;

	*exit_now = false;
	/* The key is in this process's memory: no core dump, no ptrace by
	 * the same user. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	spool_init(&s->spool);
	options_init(&s->opt);
	if (cfg && options_load_config(&s->opt, cfg, err, sizeof(err)) < 0)
		rc = service_fail("%s", err);
	else if (options_parse_args(&s->opt, argc - 1, argv + 1, err, sizeof(err)) < 0)
		rc = service_fail("%s", err);
	free(cfg);
	if (rc)
		return rc;
	if (s->opt.show_help || s->opt.show_version) {
		if (s->opt.show_help)
			options_usage(stdout);
		else
			printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		*exit_now = true;
		return 0;
	}
	if (!s->opt.mountpoint)
		return service_fail("no %s given (see ingestfs --help)", what);
	if (s->opt.cafile && access(s->opt.cafile, R_OK) < 0)
		return service_fail("option 'cafile': cannot read %s: %s", s->opt.cafile,
				    strerror(errno));
	log_set_level(s->opt.log_level);
	return 0;
}

int service_make_absolute(char **path)
{
	char cwd[PATH_MAX], *abs;

	if (!*path || (*path)[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return service_fail("cannot resolve %s: %s", *path, strerror(errno));
	if (asprintf(&abs, "%s/%s", cwd, *path) < 0)
		return service_fail("out of memory");
	free(*path);
	*path = abs;
	return 0;
}

static int load_key(struct service *s)
{
	char err[512];

	apikey_take_from_env();
	if (apikey_load(&s->opt, &s->key, err, sizeof(err)) < 0)
		return service_fail("%s", err);
	return 0;
}

static void replay_record(void *arg, const struct journal_record *r)
{
	queue_replay(arg, r);
}

/* Mount mode: what is over lives in the state index, out of memory.
 * Watch mode: the index keeps only the lifetime totals (the folder is
 * others', so every start scans it anyway). */
static int open_store(struct service *s, bool *clean)
{
	char err[512];
	int rc;

	*clean = false;
	if (store_open(s->spool.state_path, &s->store, err, sizeof(err)) < 0)
		return service_fail("%s", err);
	rc = queue_set_store(s->queue, s->store);
	if (rc < 0)
		return service_fail("cannot read the state index in %s: %s", s->spool.state_path,
				    strerror(-rc));
	*clean = store_was_clean(s->store) && !s->written_outside;
	/* Until the next clean stop, a start must look at every file. */
	if (store_set_clean(s->store, false) < 0)
		return service_fail("cannot write the state index in %s", s->spool.state_path);
	return 0;
}

/* After a clean stop the index is right: only the journal's files (those
 * not over when we stopped) are looked at.  After a crash, every file. */
static long reconcile_spool(struct service *s, bool clean)
{
	queue_reconcile_begin(s->queue, !clean);
	if (clean)
		return spool_check_known(&s->spool, s->queue);
	return spool_scan(&s->spool, s->queue, !s->written_outside);
}

/* The index, the journal over it, then the files (the truth), then a
 * fresh journal. */
static int recover_queue(struct service *s)
{
	struct journal_replay_stats js;
	struct queue_recovery rec;
	long found;
	bool clean;
	int rc = open_store(s, &clean);

	if (rc)
		return rc;
	rc = journal_replay(s->spool.state_fd, replay_record, s->queue, &js);

	if (rc < 0)
		return service_fail("cannot read the queue journal in %s: %s", s->spool.state_path,
				    strerror(-rc));
	if (js.too_big)
		log_warn("the queue journal is too big to replay in memory (%" PRIu64
			 " MiB, at most %" PRIu64 " MiB here); set aside as journal.bad, "
			 "rebuilding the queue from the files",
			 js.bytes >> 20, js.max_bytes >> 20);
	else if (js.bad_header)
		log_warn("the queue journal was not readable; set aside as journal.bad, "
			 "rebuilding the queue from the files");
	if (js.damaged || js.torn_tail)
		log_warn("the queue journal had %zu damaged line(s)%s; the files decide",
			 js.damaged, js.torn_tail ? " and a torn last line" : "");
	found = reconcile_spool(s, clean && !js.bad_header && !js.too_big && !js.damaged &&
					   !js.torn_tail);
	if (found < 0)
		return service_fail("cannot read %s: %s", s->spool.files_path,
				    strerror((int)-found));
	queue_reconcile_finish(s->queue, &rec);
	rc = journal_open(s->spool.state_fd, &s->journal);
	if (rc == 0) {
		queue_set_journal(s->queue, s->journal);
		rc = queue_compact_journal(s->queue);
	}
	if (rc < 0)
		return service_fail("cannot write the queue journal in %s: %s", s->spool.state_path,
				    strerror(-rc));
	if (rec.files)
		log_info("%s: %zu file(s), %zu to upload, %zu interrupted while writing",
			 s->spool.files_path, rec.files, rec.pending, rec.interrupted);
	return 0;
}

#define METRICS_EVERY_MS 5000

static void write_metrics(struct service *s, int64_t now_ms)
{
	struct metrics_input in = {.mount = s->opt.mountpoint ? s->opt.mountpoint : "",
				   .version = PACKAGE_VERSION};
	int rc;

	if (!s->opt.metrics || now_ms < s->next_metrics_ms)
		return;
	s->next_metrics_ms = now_ms + METRICS_EVERY_MS;
	queue_count(s->queue, "", &in.files);
	queue_lifetime(s->queue, &in.lifetime);
	uploader_stats(s->uploader, &in.uploads);
	in.oldest_waiting_s = (double)queue_oldest_waiting(s->queue, now_ms) / 1000;
	in.paused_key = queue_is_paused(s->queue);
	in.paused_space = retention_refuses_writes();
	rc = metrics_write(s->opt.metrics, &in);
	if (rc < 0 && !s->metrics_failing)
		log_warn("cannot write the metrics to %s: %s", s->opt.metrics, strerror(-rc));
	else if (rc == 0 && s->metrics_failing)
		log_info("the metrics are written to %s again", s->opt.metrics);
	s->metrics_failing = rc < 0;
}

/* On the upload thread, about once a second. */
static void maintain(void *arg, int64_t now_ms)
{
	struct service *s = arg;

	queue_checkpoint(s->queue, false);
	retention_run(s->retention, now_ms);
	write_metrics(s, now_ms);
}

/* Retention finds files in the state index: with a short keep= they
 * must reach it sooner than usual, or they would stay longer than kept. */
static unsigned pace_for_keep(uint64_t keep_s, unsigned usual_ms)
{
	uint64_t half = keep_s * 1000 / 2;

	if (!keep_s || half >= usual_ms)
		return usual_ms;
	return half < 500 ? 500 : (unsigned)half;
}

static int open_queue(struct service *s)
{
	s->queue = queue_new(&(struct queue_config){
		.settle_ms = s->opt.settle_ms,
		.batch_max = s->opt.batch,
		.batch_bytes_max = 32ull * 1024 * 1024,
		.backoff_min_ms = s->opt.backoff_ms,
		.backoff_max_ms = s->opt.backoff_max_ms,
		.linger_ms = 100,
		.written_outside = s->written_outside,
		.no_label_infer = s->opt.no_label_infer,
		.no_datasets = s->opt.no_datasets,
		.annotation_wait_ms = s->opt.annotation_wait_s * 1000,
		.evict_after_ms = pace_for_keep(s->opt.keep_s, 5000),
		.checkpoint_every_ms = pace_for_keep(s->opt.keep_s, 10000),
		.keep_in_memory = s->written_outside,
	});
	return s->queue ? recover_queue(s) : service_fail("out of memory");
}

int service_open(struct service *s, const char *spool_dir, const char *files_dir,
		 const char *state_dir)
{
	char err[512];
	int rc;

	/* Open files of the mount, each a descriptor here, must not starve the
	 * uploader: it keeps a socket and a file per request, and the journal,
	 * inotify and FUSE need a few. */
	if (s->written_outside &&
	    (s->opt.keep_s || s->opt.max_spool_bytes || s->opt.min_free_bytes))
		return service_fail("keep=, max_spool= and min_free= are for mounts: a watched "
				    "folder is yours to clean up");
	fdbudget_init(64 + 2 * s->opt.concurrency);
	/* curl wants this before any thread exists. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return service_fail("cannot initialise libcurl");
	s->curl_ready = true;
	if ((rc = load_key(s)))
		return rc;
	if (files_dir)
		rc = spool_open_split(&s->spool, files_dir, state_dir, err, sizeof(err));
	else
		rc = spool_open(&s->spool, spool_dir, err, sizeof(err));
	if (rc < 0)
		return service_fail("%s", err);
	if ((rc = open_queue(s)))
		return rc;
	s->uploader = uploader_new(s->queue, s->spool.files_fd, &s->opt, s->key);
	if (!s->uploader)
		return service_fail("out of memory");
	s->key = NULL; /* the uploader owns it now */
	s->retention = retention_new(s->queue, s->spool.files_fd,
				     &(struct retention_config){
					     .keep_s = s->opt.keep_s,
					     .max_spool_bytes = s->opt.max_spool_bytes,
					     .min_free_bytes = s->opt.min_free_bytes,
				     });
	uploader_set_maintenance(s->uploader, maintain, s);
	return 0;
}

int service_after_fork(struct service *s)
{
	struct store *fresh;
	char err[512];

	if (!s->store)
		return 0;
	if (store_open(s->spool.state_path, &fresh, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	queue_swap_store(s->queue, fresh);
	store_close(s->store);
	s->store = fresh;
	return 0;
}

int service_start(struct service *s)
{
	struct sigaction sa = {.sa_handler = on_sighup};
	int rc;

	hup_target = s->uploader;
	if (sigaction(SIGHUP, &sa, NULL) < 0)
		log_warn("cannot catch SIGHUP (%s): a new key is noticed only when its file "
			 "changes",
			 strerror(errno));
	if (s->opt.insecure)
		log_warn("TLS certificates are not verified (insecure): for test servers only");
	if (strncasecmp(s->opt.url, "http://", 7) == 0)
		log_warn("url=%s is plain HTTP: the API key and the files travel in clear "
			 "(use https:// unless the service is on this machine)",
			 s->opt.url);
	rc = uploader_start(s->uploader);
	if (rc < 0) {
		log_error("cannot start the upload thread: %s", strerror(-rc));
		return 1;
	}
	notify_service_manager("READY=1");
	return 0;
}

void service_stop(struct service *s, const char *what)
{
	struct queue_counts c;
	size_t left;

	notify_service_manager("STOPPING=1");
	uploader_stop(s->uploader);
	hup_target = NULL;
	/* The last word, then everything that is over into the index, the journal down to the
	 * rest: the next start need not look at every file. */
	s->next_metrics_ms = 0;
	write_metrics(s, clock_now_ms());
	if (s->store && queue_checkpoint(s->queue, true) == 0 &&
	    store_set_clean(s->store, true) < 0)
		log_warn("cannot mark the state index clean: the next start scans the spool");
	queue_count(s->queue, "", &c);
	left = c.n[FILE_PENDING] + c.n[FILE_WRITING] + c.n[FILE_UPLOADING];
	if (left)
		log_info("%s with %zu file(s) not yet uploaded; they will go at the next start",
			 what, left);
}

void service_close(struct service *s)
{
	uploader_free(s->uploader);
	if (s->queue)
		queue_set_journal(s->queue, NULL);
	journal_close(s->journal);
	retention_free(s->retention);
	queue_free(s->queue);
	store_close(s->store);
	if (s->spool.dir || s->spool.files_path)
		spool_close(&s->spool);
	if (s->curl_ready)
		curl_global_cleanup();
	apikey_free(s->key);
	options_free(&s->opt);
}
