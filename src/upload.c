/* upload.c: multipart requests to POST /api/<category>/files.
 *
 * Thread model: everything here runs on the uploader thread, except
 * uploader_wake (any thread: curl_multi_wakeup is thread-safe) and
 * uploader_request_key_reload (a signal handler: it only sets a flag). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "apikey.h"
#include "clock.h"
#include "layout.h"
#include "log.h"
#include "reply.h"
#include "upload.h"

#define REPLY_BODY_MAX (1024 * 1024)
#define KEY_CHECK_MS 1000
#define POLL_MAX_MS 1000
#define JOURNAL_SYNC_MS 1000
#define MOVED_RECHECK_MS 1000
#define SUMMARY_EVERY_MS (10 * 60 * 1000)

struct upload_part {
	int fd;
	bool skipped; /* already reported without being sent */
	uint64_t size, offset;
	char why[128]; /* why it was skipped, for the result */
};

struct upload_job {
	struct uploader *u;
	struct queue_batch batch;
	struct upload_part *parts; /* one per batch item; fd -1: not sent */
	size_t nsent;
	CURL *easy;
	curl_mime *mime;
	struct curl_slist *headers;
	char *body;
	size_t body_len;
	char errbuf[CURL_ERROR_SIZE];
	unsigned key_generation;        /* which key the request carried */
	struct upload_job *prev, *next; /* requests in flight */
};

struct uploader {
	struct queue *q;
	int files_fd;
	const struct options *opt;
	char *key;
	unsigned key_generation; /* bumped at every reload */
	CURLM *multi;
	pthread_t thread;
	atomic_bool stop, key_reload;
	bool started;
	unsigned running;
	struct upload_job *jobs;
	struct apikey_stamp key_stamp;
	int64_t next_key_check;
	int inotify_fd; /* watches the key file's folder; -1: poll instead */
	char *key_name; /* the key file's name in that folder */
	bool key_file_changed;
	int64_t last_sync_ms;
	int64_t next_summary_ms;
	struct queue_counts last_summary;
};

static void uploader_wake(void *arg)
{
	struct uploader *u = arg;

	curl_multi_wakeup(u->multi);
}

/* Watch the folder, not the file: editors and "mv new key" replace it. */
static void watch_key_file(struct uploader *u)
{
	char *dir_copy, *name_copy;

	u->inotify_fd = -1;
	if (!u->opt->api_key_file)
		return;
	dir_copy = strdup(u->opt->api_key_file);
	name_copy = strdup(u->opt->api_key_file);
	if (dir_copy && name_copy) {
		u->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (u->inotify_fd >= 0 &&
		    inotify_add_watch(u->inotify_fd, dirname(dir_copy),
				      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
			log_warn("cannot watch the API key file (%s); checking it every second "
				 "instead",
				 strerror(errno));
			close(u->inotify_fd);
			u->inotify_fd = -1;
		}
		u->key_name = strdup(basename(name_copy));
	}
	free(dir_copy);
	free(name_copy);
}

static void read_key_events(struct uploader *u)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(u->inotify_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->len && u->key_name && strcmp(ev->name, u->key_name) == 0)
				u->key_file_changed = true;
			p += sizeof(*ev) + ev->len;
		}
	}
}

struct uploader *uploader_new(struct queue *q, int files_fd, const struct options *o, char *key)
{
	struct uploader *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->multi = curl_multi_init();
	if (!u->multi) {
		free(u);
		return NULL;
	}
	curl_multi_setopt(u->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o->concurrency);
	u->q = q;
	u->files_fd = files_fd;
	u->opt = o;
	u->key = key;
	apikey_stamp(o, &u->key_stamp);
	watch_key_file(u);
	queue_set_waker(q, uploader_wake, u);
	return u;
}

void uploader_free(struct uploader *u)
{
	if (!u)
		return;
	queue_set_waker(u->q, NULL, NULL);
	curl_multi_cleanup(u->multi);
	if (u->inotify_fd >= 0)
		close(u->inotify_fd);
	free(u->key_name);
	apikey_free(u->key);
	free(u);
}

void uploader_request_key_reload(struct uploader *u)
{
	atomic_store(&u->key_reload, true);
}

/* ---- streaming file bodies ---- */

static size_t part_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload_part *p = arg;
	size_t want = size * nitems;
	ssize_t n;

	if (p->offset >= p->size)
		return 0;
	if (want > p->size - p->offset)
		want = (size_t)(p->size - p->offset);
	n = pread(p->fd, buf, want, (off_t)p->offset);
	/* A file that shrank under us: abort, it will be sent again. */
	if (n <= 0)
		return CURL_READFUNC_ABORT;
	p->offset += (uint64_t)n;
	return (size_t)n;
}

static int part_seek(void *arg, curl_off_t offset, int origin)
{
	struct upload_part *p = arg;

	if (origin != SEEK_SET || offset < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	p->offset = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t body_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct upload_job *job = arg;
	size_t n = size * nmemb;
	char *p;

	if (job->body_len + n > REPLY_BODY_MAX)
		return 0; /* curl fails the transfer: "reply too large" */
	p = realloc(job->body, job->body_len + n + 1);
	if (!p)
		return 0;
	memcpy(p + job->body_len, data, n);
	job->body = p;
	job->body_len += n;
	p[job->body_len] = '\0';
	return n;
}

/* ---- building a request ---- */

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int append_header(struct curl_slist **list, const char *name, const char *value)
{
	char line[1024];
	struct curl_slist *n;

	if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, value) >= sizeof(line))
		return -ENAMETOOLONG;
	n = curl_slist_append(*list, line);
	if (!n)
		return -ENOMEM;
	*list = n;
	return 0;
}

static int build_headers(struct upload_job *job)
{
	const struct options *o = job->u->opt;
	struct curl_slist **h = &job->headers;
	char *label = NULL;
	int rc = append_header(h, "x-api-key", job->u->key);

	if (rc == 0 && job->batch.label) {
		label = layout_url_encode(job->batch.label, strlen(job->batch.label));
		rc = label ? append_header(h, "x-label", label) : -ENOMEM;
	} else if (rc == 0 && o->no_label_infer) {
		rc = append_header(h, "x-no-label", "1");
	}
	if (rc == 0 && !o->allow_duplicates)
		rc = append_header(h, "x-disallow-duplicates", "1");
	if (rc == 0 && o->add_date_id)
		rc = append_header(h, "x-add-date-id", "1");
	if (rc == 0 && o->metadata)
		rc = append_header(h, "x-metadata", o->metadata);
	if (rc == 0)
		rc = append_header(h, "x-upload-source", PACKAGE_NAME "/" PACKAGE_VERSION);
	if (rc == 0) /* curl waits a second for "100 Continue" otherwise */
		rc = append_header(h, "Expect", "");
	free(label);
	return rc;
}

/* Open the file the queue means.  Returns 0, or the outcome to report. */
static int open_part(struct upload_job *job, size_t i, struct queue_result *res)
{
	const struct queue_item *it = &job->batch.items[i];
	struct upload_part *p = &job->parts[i];
	struct stat st;

	p->fd = openat(job->u->files_fd, it->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (p->fd < 0 && errno != ENOENT && errno != ELOOP) {
		/* EACCES, EMFILE...: back off like any failed attempt. */
		snprintf(p->why, sizeof(p->why), "cannot open the spool file: %s", strerror(errno));
		res->outcome = QUEUE_RETRY;
		res->text = p->why;
		goto skip;
	}
	if (p->fd < 0 || fstat(p->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_ino != it->ino) {
		/* Moved or removed just now: the queue learns where it went
		 * in a moment.  Look again a little later, not at once. */
		res->outcome = QUEUE_REQUEUE;
		res->text = "";
		res->retry_after_ms = MOVED_RECHECK_MS;
		goto skip;
	}
	if ((uint64_t)st.st_size > LAYOUT_MAX_FILE_SIZE) {
		res->outcome = QUEUE_FAILED;
		res->text = "file is larger than the service's limit of 100 MB";
		goto skip;
	}
	p->size = (uint64_t)st.st_size;
	return 0;
skip:
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->skipped = true;
	return -1;
}

/* curl percent-encodes quotes, CR and LF in a part's file name, but sends
 * a backslash as it is, which multipart parsers (busboy, RFC 7578 quoted
 * strings) read as an escape: double it so it arrives as one. */
static char *multipart_filename(const char *name)
{
	size_t n = strlen(name), extra = 0;
	char *out, *o;

	for (const char *p = name; *p; p++)
		extra += *p == '\\';
	out = malloc(n + extra + 1);
	if (!out)
		return NULL;
	for (o = out; *name; name++) {
		if (*name == '\\')
			*o++ = '\\';
		*o++ = *name;
	}
	*o = '\0';
	return out;
}

static int add_part(struct upload_job *job, size_t i)
{
	const char *name = base_name(job->batch.items[i].path);
	curl_mimepart *part = curl_mime_addpart(job->mime);
	char *filename = multipart_filename(name);
	int rc = 0;

	if (!part || !filename || curl_mime_name(part, "data") != CURLE_OK ||
	    curl_mime_filename(part, filename) != CURLE_OK ||
	    curl_mime_type(part, layout_content_type(name)) != CURLE_OK ||
	    curl_mime_data_cb(part, (curl_off_t)job->parts[i].size, part_read, part_seek, NULL,
			      &job->parts[i]) != CURLE_OK)
		rc = -ENOMEM;
	free(filename);
	return rc;
}

static char *request_url(const struct options *o, int category)
{
	size_t blen = strlen(o->url), n;
	char *url;

	while (blen > 0 && o->url[blen - 1] == '/')
		blen--;
	n = blen + 64;
	url = malloc(n);
	if (url)
		snprintf(url, n, "%.*s/api/%s/files", (int)blen, o->url,
			 layout_category_name(category));
	return url;
}

static void set_transfer_options(struct upload_job *job, const char *url)
{
	const struct options *o = job->u->opt;
	CURL *e = job->easy;

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_MIMEPOST, job->mime);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, job->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, job);
	curl_easy_setopt(e, CURLOPT_PRIVATE, job);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, o->timeout_s < 30 ? (long)o->timeout_s : 30L);
	/* A stalled server must not hold files forever. */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)o->timeout_s);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (o->cafile)
		curl_easy_setopt(e, CURLOPT_CAINFO, o->cafile);
	if (o->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static void job_free(struct upload_job *job)
{
	if (!job)
		return;
	if (job->easy)
		curl_easy_cleanup(job->easy);
	curl_mime_free(job->mime);
	curl_slist_free_all(job->headers);
	for (size_t i = 0; job->parts && i < job->batch.count; i++) {
		if (job->parts[i].fd >= 0)
			close(job->parts[i].fd);
	}
	free(job->parts);
	free(job->body);
	queue_batch_free(&job->batch);
	free(job);
}

/* From here the files may reach the service: the journal must know. */
static void note_sending(struct upload_job *job)
{
	const struct queue_item *items[job->nsent ? job->nsent : 1];
	size_t n = 0;

	for (size_t i = 0; i < job->batch.count; i++) {
		if (!job->parts[i].skipped)
			items[n++] = &job->batch.items[i];
	}
	queue_note_sending(job->u->q, items, n);
}

/* Report the files we could not even send, and open the rest. */
static int job_open_parts(struct upload_job *job)
{
	struct queue_result skipped[job->batch.count];
	size_t nskipped = 0;
	int rc = 0;

	for (size_t i = 0; i < job->batch.count && rc == 0; i++) {
		skipped[nskipped] = (struct queue_result){.item = &job->batch.items[i]};
		if (open_part(job, i, &skipped[nskipped]) < 0)
			nskipped++;
		else if (add_part(job, i) < 0)
			rc = -ENOMEM;
		else
			job->nsent++;
	}
	queue_report(job->u->q, skipped, nskipped, clock_now_ms());
	if (rc == 0)
		note_sending(job);
	return rc;
}

/* Files of JOB not yet reported go back to the queue untouched. */
static void requeue_unsent(struct upload_job *job)
{
	struct queue_result res[job->batch.count ? job->batch.count : 1];
	size_t n = 0;

	for (size_t i = 0; i < job->batch.count; i++) {
		if (job->parts && job->parts[i].skipped)
			continue;
		res[n++] = (struct queue_result){
			.item = &job->batch.items[i], .outcome = QUEUE_REQUEUE, .text = ""};
	}
	queue_report(job->u->q, res, n, clock_now_ms());
}

static void job_link(struct uploader *u, struct upload_job *job)
{
	job->next = u->jobs;
	if (u->jobs)
		u->jobs->prev = job;
	u->jobs = job;
	u->running++;
}

static void job_unlink(struct uploader *u, struct upload_job *job)
{
	if (job->prev)
		job->prev->next = job->next;
	else
		u->jobs = job->next;
	if (job->next)
		job->next->prev = job->prev;
	u->running--;
}

/* Returns 1 when a request started, 0 when none was needed, or -errno. */
static int job_start(struct uploader *u, struct queue_batch *batch)
{
	struct upload_job *job = calloc(1, sizeof(*job));
	char *url = NULL;
	int rc = -ENOMEM;

	if (!job) {
		queue_batch_free(batch);
		return -ENOMEM;
	}
	job->u = u;
	job->key_generation = u->key_generation;
	job->batch = *batch;
	job->parts = calloc(batch->count, sizeof(*job->parts));
	for (size_t i = 0; job->parts && i < batch->count; i++)
		job->parts[i].fd = -1;
	job->easy = curl_easy_init();
	job->mime = job->easy ? curl_mime_init(job->easy) : NULL;
	url = request_url(u->opt, batch->category);
	if (!job->parts || !job->mime || !url)
		goto fail;
	if ((rc = job_open_parts(job)) < 0 || (rc = build_headers(job)) < 0)
		goto fail;
	if (job->nsent == 0) {
		job_free(job);
		free(url);
		return 0; /* nothing left to send */
	}
	set_transfer_options(job, url);
	if (curl_multi_add_handle(u->multi, job->easy) != CURLM_OK) {
		rc = -EIO;
		goto fail;
	}
	job_link(u, job);
	log_debug("sending %zu file(s) to %s, label %s", job->nsent, url,
		  batch->label ? batch->label : "(from the name)");
	free(url);
	return 1;
fail:
	log_error("cannot start an upload request: %s", strerror(-rc));
	free(url);
	requeue_unsent(job);
	job_free(job);
	return rc;
}

/* Returns how many requests were started. */
static unsigned start_jobs(struct uploader *u, int64_t now)
{
	struct queue_batch batch;
	unsigned started = 0;

	while (u->running < u->opt->concurrency && queue_take_batch(u->q, now, &batch) > 0) {
		int rc = job_start(u, &batch);

		if (rc < 0)
			break;
		started += (unsigned)rc;
	}
	return started;
}

/* ---- results ---- */

static bool transport_may_have_sent(CURLcode code)
{
	return code != CURLE_COULDNT_CONNECT && code != CURLE_COULDNT_RESOLVE_HOST &&
	       code != CURLE_COULDNT_RESOLVE_PROXY && code != CURLE_SSL_CONNECT_ERROR &&
	       code != CURLE_PEER_FAILED_VERIFICATION;
}

static void report_transport_error(struct upload_job *job, CURLcode code)
{
	struct queue_result res[job->batch.count];
	char text[CURL_ERROR_SIZE + 64];
	size_t n = 0;

	snprintf(text, sizeof(text), "%s", job->errbuf[0] ? job->errbuf : curl_easy_strerror(code));
	for (size_t i = 0; i < job->batch.count; i++) {
		if (job->parts[i].skipped)
			continue;
		res[n++] = (struct queue_result){.item = &job->batch.items[i],
						 .outcome = QUEUE_RETRY,
						 .text = text,
						 .maybe_sent = transport_may_have_sent(code)};
	}
	log_warn("upload of %zu file(s) failed, will retry: %s", n, text);
	queue_report(job->u->q, res, n, clock_now_ms());
}

static enum queue_outcome outcome_of(enum reply_outcome r)
{
	switch (r) {
	case REPLY_STORED: return QUEUE_UPLOADED;
	case REPLY_DUPLICATE: return QUEUE_DUPLICATE;
	case REPLY_REJECTED: return QUEUE_FAILED;
	case REPLY_AUTH: return QUEUE_REQUEUE;
	case REPLY_RETRY:
	default: return QUEUE_RETRY;
	}
}

static void note_reply(struct upload_job *job, long status, const struct reply_file *first)
{
	struct uploader *u = job->u;

	/* A refusal of a key we have since replaced says nothing. */
	if (status == 401 && job->key_generation != u->key_generation)
		return;
	if (status == 401 && !queue_is_paused(u->q)) {
		log_error("the service refused the API key (%s); uploads are paused until the key "
			  "file changes or ingestfs gets SIGHUP",
			  first->text);
		queue_pause(u->q);
	} else if (status == 421) {
		log_error("the service says a header is missing (%s): this is a bug in ingestfs, "
			  "please report it",
			  first->text);
	} else if (status == 429 || status >= 500) {
		log_warn("service busy or failing (%s); backing off", first->text);
	}
}

static void report_reply(struct upload_job *job, long status)
{
	size_t n = job->nsent, k = 0;
	const char *names[n ? n : 1];
	struct reply_file replies[n ? n : 1];
	struct queue_result res[n ? n : 1];
	curl_off_t retry_after = 0;

	for (size_t i = 0; i < job->batch.count; i++) {
		if (!job->parts[i].skipped)
			names[k++] = base_name(job->batch.items[i].path);
	}
	reply_classify(status, job->body, job->body_len, n, names, replies);
	log_debug("HTTP %ld for %zu file(s)", status, n);
	curl_easy_getinfo(job->easy, CURLINFO_RETRY_AFTER, &retry_after);
	note_reply(job, status, &replies[0]);
	k = 0;
	for (size_t i = 0; i < job->batch.count; i++) {
		if (job->parts[i].skipped)
			continue;
		res[k] = (struct queue_result){
			.item = &job->batch.items[i],
			.outcome = outcome_of(replies[k].outcome),
			.text = replies[k].text,
			.retry_after_ms = retry_after > 0 && retry_after < 3600
						  ? (unsigned)retry_after * 1000
						  : 0,
			.maybe_sent = status != 429 && status != 401,
		};
		if (res[k].outcome == QUEUE_FAILED)
			log_warn("%s: upload failed: %s", job->batch.items[i].path,
				 replies[k].text);
		k++;
	}
	queue_report(job->u->q, res, n, clock_now_ms());
}

static unsigned collect_done(struct uploader *u)
{
	CURLMsg *msg;
	int left;
	unsigned done = 0;

	while ((msg = curl_multi_info_read(u->multi, &left))) {
		struct upload_job *job = NULL;
		long status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&job);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		if (msg->data.result != CURLE_OK)
			report_transport_error(job, msg->data.result);
		else
			report_reply(job, status);
		curl_multi_remove_handle(u->multi, job->easy);
		job_unlink(u, job);
		job_free(job);
		done++;
	}
	return done;
}

/* ---- the key ---- */

static void reload_key(struct uploader *u, const char *why)
{
	char err[512], *key = NULL;

	apikey_stamp(u->opt, &u->key_stamp);
	if (apikey_load(u->opt, &key, err, sizeof(err)) < 0) {
		log_error("%s, but: %s", why, err);
		return;
	}
	apikey_free(u->key);
	u->key = key;
	u->key_generation++;
	if (queue_is_paused(u->q))
		log_info("%s; resuming uploads", why);
	queue_resume(u->q);
}

static void check_key(struct uploader *u, int64_t now)
{
	struct apikey_stamp st;

	if (atomic_exchange(&u->key_reload, false)) {
		reload_key(u, "SIGHUP received: API key re-read");
		return;
	}
	if (u->key_file_changed) {
		u->key_file_changed = false;
		reload_key(u, "API key file changed");
		return;
	}
	/* Also with inotify: a symlinked key (a mounted secret) changes where
	 * inotify does not look. */
	if (now < u->next_key_check || !queue_is_paused(u->q))
		return;
	u->next_key_check = now + KEY_CHECK_MS;
	apikey_stamp(u->opt, &st);
	if (!apikey_stamp_equal(&st, &u->key_stamp))
		reload_key(u, "API key file changed");
}

/* ---- the thread ---- */

/* One line every ten minutes, only when something happened. */
static void log_summary(struct uploader *u, int64_t now)
{
	struct queue_counts c;
	size_t done, failed, waiting;

	if (now < u->next_summary_ms)
		return;
	queue_count(u->q, "", &c);
	if (u->next_summary_ms) {
		done = c.n[FILE_UPLOADED] + c.n[FILE_DUPLICATE] - u->last_summary.n[FILE_UPLOADED] -
		       u->last_summary.n[FILE_DUPLICATE];
		failed = c.n[FILE_FAILED] - u->last_summary.n[FILE_FAILED];
		waiting = c.n[FILE_WRITING] + c.n[FILE_PENDING] + c.n[FILE_UPLOADING];
		if (done || failed || waiting)
			log_info("last 10 minutes: %zd uploaded, %zd failed; %zu waiting%s",
				 (ssize_t)done, (ssize_t)failed, waiting,
				 queue_is_paused(u->q) ? " (paused)" : "");
	}
	u->last_summary = c;
	u->next_summary_ms = now + SUMMARY_EVERY_MS;
}

static void abandon_jobs(struct uploader *u)
{
	while (u->jobs) {
		struct upload_job *job = u->jobs;

		curl_multi_remove_handle(u->multi, job->easy);
		job_unlink(u, job);
		requeue_unsent(job);
		job_free(job);
	}
}

/* Wait for transfers, the waker, the key file, or the timeout. */
static void poll_once(struct uploader *u, int timeout_ms)
{
	struct curl_waitfd key = {.fd = u->inotify_fd, .events = CURL_WAIT_POLLIN};

	if (u->inotify_fd < 0) {
		curl_multi_poll(u->multi, NULL, 0, timeout_ms, NULL);
		return;
	}
	curl_multi_poll(u->multi, &key, 1, timeout_ms, NULL);
	if (key.revents & CURL_WAIT_POLLIN)
		read_key_events(u);
}

static void *uploader_main(void *arg)
{
	struct uploader *u = arg;
	sigset_t all;
	int still;

	/* Signals belong to the FUSE loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&u->stop)) {
		int64_t now = clock_now_ms(), next;

		check_key(u, now);
		log_summary(u, now);
		next = queue_tick(u->q, now);
		/* Before requests go out the journal must say they may have
		 * (a duplicate reply after a crash is then ours); other records
		 * (closes, results) are synced in groups at least every second. */
		if (start_jobs(u, now) > 0 || now - u->last_sync_ms >= JOURNAL_SYNC_MS) {
			queue_maintain_journal(u->q);
			u->last_sync_ms = now;
		}
		curl_multi_perform(u->multi, &still);
		if (collect_done(u) > 0)
			continue;
		if (next < 0 || next > POLL_MAX_MS)
			next = POLL_MAX_MS;
		poll_once(u, (int)next);
	}
	abandon_jobs(u);
	queue_maintain_journal(u->q);
	return NULL;
}

int uploader_start(struct uploader *u)
{
	int rc = pthread_create(&u->thread, NULL, uploader_main, u);

	if (rc != 0)
		return -rc;
	u->started = true;
	return 0;
}

void uploader_stop(struct uploader *u)
{
	if (!u || !u->started)
		return;
	atomic_store(&u->stop, true);
	curl_multi_wakeup(u->multi);
	pthread_join(u->thread, NULL);
	u->started = false;
}
