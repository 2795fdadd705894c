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
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "annot.h"
#include "apikey.h"
#include "beneath.h"
#include "clock.h"
#include "dataset.h"
#include "layout.h"
#include "log.h"
#include "reply.h"
#include "request.h"
#include "store.h"
#include "text.h"
#include "upload.h"

#define REPLY_BODY_MAX (1024 * 1024)
#define KEY_CHECK_MS 1000
#define POLL_MAX_MS 1000
#define JOURNAL_SYNC_MS 1000
#define MAINTAIN_EVERY_MS 1000
#define MOVED_RECHECK_MS 1000
#define SUMMARY_EVERY_MS (10 * 60 * 1000)

/* A sample part.  Its file is opened only while curl reads it, so a
 * request of a thousand files holds one descriptor, not a thousand. */
struct upload_part {
	int fd;     /* -1 when not being read */
	int dir_fd; /* the folder its path is below (the spool's files) */
	const char *path;
	uint64_t ino; /* the file we checked when the request was built */
	bool skipped; /* already reported without being sent */
	uint64_t size, offset;
	char why[128]; /* why it was skipped, for the result */
};

struct upload_job {
	struct uploader *u;
	struct queue_batch batch;
	struct upload_part *parts; /* one per batch item; fd -1: not sent */
	bool *sent;                /* per item: a part of this request */
	size_t nsent;
	CURL *easy;
	curl_mime *mime;
	struct curl_slist *headers;
	char *body;
	size_t body_len;
	char errbuf[CURL_ERROR_SIZE];
	char why[160];            /* why we gave up on it ourselves */
	unsigned key_generation;  /* which key the request carried */
	int64_t last_progress_ms; /* a byte moved, either way */
	int64_t sent_ms;          /* the whole body was sent (0: not yet) */
	int64_t started_ms;       /* when it went out, for the log */
	bool replying;            /* the reply has begun to arrive */
	curl_off_t last_up, last_down;
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
	void (*maintain)(void *arg, int64_t now_ms);
	void *maintain_arg;
	int64_t next_maintain_ms;
	int64_t next_summary_ms;
	int build_error;                   /* errno of the last request that could not be built */
	struct store_totals last_lifetime; /* for the ten-minute summary */
	pthread_mutex_t stats_lock;        /* guards stats: read by the metrics writer */
	struct upload_stats stats;
	char trouble[CURL_ERROR_SIZE + 64]; /* the trouble last logged, "" when all is well */
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
	pthread_mutex_init(&u->stats_lock, NULL);
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
	pthread_mutex_destroy(&u->stats_lock);
	free(u);
}

void uploader_request_key_reload(struct uploader *u)
{
	atomic_store(&u->key_reload, true);
}

/* ---- the spool's files ---- */

/* The regular file at PATH below DIR_FD, if it is still the one the
 * queue means (inode INO), opened for reading with its *ST: an fd, the
 * open's -errno, or -ESTALE when another file took the name. */
static int open_spool_file(int dir_fd, const char *path, uint64_t ino, struct stat *st)
{
	int fd = beneath_open(dir_fd, path, O_RDONLY | O_NOFOLLOW | O_NOCTTY, 0);

	if (fd >= 0 &&
	    (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || (uint64_t)st->st_ino != ino)) {
		close(fd);
		fd = -ESTALE;
	}
	return fd;
}

/* ---- streaming file bodies ---- */

/* The file the part was built from, or -1 when it is gone or another
 * file took its name: the request is then abandoned, and the queue,
 * which has learnt of the change, sends the right content. */
static int part_open(struct upload_part *p)
{
	struct stat st;

	p->fd = open_spool_file(p->dir_fd, p->path, p->ino, &st);
	if (p->fd < 0)
		p->fd = -1;
	return p->fd;
}

static size_t part_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload_part *p = arg;
	size_t want = size * nitems;
	ssize_t n;

	if (p->offset >= p->size)
		return 0;
	if (want > p->size - p->offset)
		want = (size_t)(p->size - p->offset);
	if (p->fd < 0 && part_open(p) < 0)
		return CURL_READFUNC_ABORT;
	n = pread(p->fd, buf, want, (off_t)p->offset);
	/* A file that shrank under us: abort, it will be sent again. */
	if (n <= 0)
		return CURL_READFUNC_ABORT;
	p->offset += (uint64_t)n;
	if (p->offset >= p->size) {
		close(p->fd);
		p->fd = -1;
	}
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

/* ---- timeouts: a stall while sending is not a slow answer ---- */

/* Called by curl at least once a second.  While the body goes out, or
 * the reply comes in, timeout= seconds without a byte moving is a stall;
 * between the two the service is working on it, for up to
 * reply_timeout= seconds (the official CLI waits 20 minutes). */
static int job_progress(void *arg, curl_off_t down_total, curl_off_t down, curl_off_t up_total,
			curl_off_t up)
{
	struct upload_job *job = arg;
	const struct options *o = job->u->opt;
	int64_t now = clock_now_ms();

	if (up != job->last_up || down != job->last_down) {
		job->last_up = up;
		job->last_down = down;
		job->last_progress_ms = now;
	}
	if (!job->sent_ms && up_total > 0 && up >= up_total)
		job->sent_ms = now;
	if (job->sent_ms && !job->replying && down == 0) {
		if (now - job->sent_ms <= (int64_t)o->reply_timeout_s * 1000)
			return 0;
		snprintf(job->why, sizeof(job->why), "no reply within %u s of sending the request",
			 o->reply_timeout_s);
		return 1;
	}
	if (now - job->last_progress_ms <= (int64_t)o->timeout_s * 1000)
		return 0;
	snprintf(job->why, sizeof(job->why), "no progress for %u s while %s", o->timeout_s,
		 job->sent_ms ? "receiving the reply" : "sending");
	return 1;
}

/* Each header line of the reply is progress too. */
static size_t header_seen(char *data, size_t size, size_t nmemb, void *arg)
{
	struct upload_job *job = arg;

	job->replying = true;
	job->last_progress_ms = clock_now_ms();
	return size * nmemb;
}

/* ---- building a request ---- */

/* Open the file the queue means.  Returns 0, or the outcome to report. */
static int open_part(struct upload_job *job, size_t i, struct queue_result *res)
{
	const struct queue_item *it = &job->batch.items[i];
	struct upload_part *p = &job->parts[i];
	struct stat st;

	p->dir_fd = job->u->files_fd;
	p->path = it->path;
	p->ino = it->ino;
	p->fd = open_spool_file(p->dir_fd, it->path, it->ino, &st);
	if (p->fd < 0 && p->fd != -ENOENT && p->fd != -ELOOP && p->fd != -ENOTDIR &&
	    p->fd != -ESTALE) {
		/* EACCES, EMFILE...: back off like any failed attempt. */
		snprintf(p->why, sizeof(p->why), "cannot open the spool file: %s",
			 strerror(-p->fd));
		res->outcome = QUEUE_RETRY;
		res->text = p->why;
		goto skip;
	}
	if (p->fd < 0) {
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
	close(p->fd);
	p->fd = -1;
	return 0;
skip:
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->skipped = true;
	return -1;
}

static int add_part(struct upload_job *job, size_t i)
{
	const struct queue_item *it = &job->batch.items[i];
	curl_mimepart *part = curl_mime_addpart(job->mime);
	char *filename = request_part_filename(it->send_name);
	int rc = 0;

	if (!part || !filename || curl_mime_name(part, "data") != CURLE_OK ||
	    curl_mime_filename(part, filename) != CURLE_OK ||
	    curl_mime_type(part, layout_content_type(it->send_name)) != CURLE_OK ||
	    curl_mime_data_cb(part, (curl_off_t)job->parts[i].size, part_read, part_seek, NULL,
			      &job->parts[i]) != CURLE_OK)
		rc = -ENOMEM;
	free(filename);
	return rc;
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
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_seen);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, job);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, job_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, job);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, job);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, o->timeout_s < 30 ? (long)o->timeout_s : 30L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (o->cafile)
		curl_easy_setopt(e, CURLOPT_CAINFO, o->cafile);
	if (o->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	job->last_progress_ms = clock_now_ms();
}

static void job_free(struct upload_job *job)
{
	if (!job)
		return;
	if (job->easy)
		curl_easy_cleanup(job->easy);
	curl_mime_free(job->mime);
	request_forget_key(job->headers);
	curl_slist_free_all(job->headers);
	for (size_t i = 0; job->parts && i < job->batch.count; i++) {
		if (job->parts[i].fd >= 0)
			close(job->parts[i].fd);
	}
	free(job->parts);
	free(job->sent);
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
		if (job->sent[i])
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
		if (open_part(job, i, &skipped[nskipped]) < 0) {
			nskipped++;
		} else if (add_part(job, i) < 0) {
			rc = -ENOMEM;
		} else {
			job->sent[i] = true;
			job->nsent++;
		}
	}
	queue_report(job->u->q, skipped, nskipped, clock_now_ms());
	return rc;
}

/* Every file of JOB not yet reported gets OUTCOME with TEXT. */
static void report_unsent(struct upload_job *job, enum queue_outcome outcome, const char *text)
{
	struct queue_result res[job->batch.count ? job->batch.count : 1];
	size_t n = 0;

	for (size_t i = 0; i < job->batch.count; i++) {
		if (job->parts && job->parts[i].skipped)
			continue;
		res[n++] = (struct queue_result){
			.item = &job->batch.items[i], .outcome = outcome, .text = text};
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

/* A request we could not build (no memory, no descriptors, curl said
 * no) is an attempt that failed: its files back off like any other, and
 * the log says so once, not once per attempt.  TEXT gets the words. */
static void build_failure_text(struct uploader *u, int err, char *text, size_t size)
{
	snprintf(text, size, "cannot build the upload request: %s", strerror(err));
	if (u->build_error != err)
		log_error("%s; the files wait and are tried again with backoff", text);
	u->build_error = err;
}

static void build_failed(struct uploader *u, struct upload_job *job, int err)
{
	char text[160];

	build_failure_text(u, err, text, sizeof(text));
	report_unsent(job, QUEUE_RETRY, text);
}

static void build_succeeded(struct uploader *u)
{
	if (u->build_error)
		log_info("upload requests can be built again");
	u->build_error = 0;
}

/* No memory for even a job: the files back off like any failed attempt. */
static void batch_failed(struct uploader *u, struct queue_batch *batch, int err)
{
	struct queue_result res[batch->count ? batch->count : 1];
	char text[160];

	build_failure_text(u, err, text, sizeof(text));
	for (size_t i = 0; i < batch->count; i++)
		res[i] = (struct queue_result){
			.item = &batch->items[i], .outcome = QUEUE_RETRY, .text = text};
	queue_report(u->q, res, batch->count, clock_now_ms());
	queue_batch_free(batch);
}

static struct upload_job *job_new(struct uploader *u, struct queue_batch *batch)
{
	struct upload_job *job = calloc(1, sizeof(*job));

	if (!job)
		return NULL;
	job->u = u;
	job->key_generation = u->key_generation;
	job->batch = *batch;
	job->parts = calloc(batch->count, sizeof(*job->parts));
	job->sent = calloc(batch->count, sizeof(*job->sent));
	for (size_t i = 0; job->parts && i < batch->count; i++)
		job->parts[i].fd = -1;
	job->easy = curl_easy_init();
	job->mime = job->easy ? curl_mime_init(job->easy) : NULL;
	return job;
}

/* Headers that can never be sent (a label or metadata too long) fail the
 * files for good; anything else is a passing failure. */
static int job_headers(struct upload_job *job)
{
	char why[256] = "";
	int rc = request_headers(&job->headers, job->u->opt, &job->batch, why, sizeof(why));

	if (rc == -E2BIG) {
		report_unsent(job, QUEUE_FAILED, why);
		return 0;
	}
	if (rc == 0)
		rc = request_add_key(&job->headers, job->u->key);
	return rc < 0 ? rc : 1;
}

/* Up to LEN bytes from the start of the file at PATH below DIR_FD. */
static ssize_t read_head(int dir_fd, const char *path, uint64_t ino, unsigned char *buf, size_t len)
{
	struct stat st;
	ssize_t n;
	int fd = open_spool_file(dir_fd, path, ino, &st);

	if (fd < 0)
		return fd;
	if ((n = pread(fd, buf, len, 0)) < 0)
		n = -errno;
	close(fd);
	return n;
}

/* ---- boxes in fractions of the image (YOLO, Open Images) ---- */

/* The boxes of PART (fractions, as queue_dataset.c wrote them) in the
 * pixels of a W x H image.  Malloc'd, or NULL. */
static char *boxes_in_pixels(const char *part, unsigned w, unsigned h)
{
	cJSON *arr = cJSON_Parse(part);
	size_t n = cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0, i = 0;
	struct dataset_box *boxes = calloc(n ? n : 1, sizeof(*boxes));
	const cJSON *o;
	char *text = NULL;

	if (!arr || !boxes)
		goto out;
	cJSON_ArrayForEach(o, arr)
	{
		const cJSON *label = cJSON_GetObjectItemCaseSensitive(o, "label");

		boxes[i] = (struct dataset_box){
			.label = cJSON_IsString(label) ? label->valuestring : "",
			.class_id = -1,
			.x = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "x")),
			.y = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "y")),
			.w = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "width")),
			.h = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "height"))};
		i++;
	}
	text = dataset_boxes_json(boxes, n, true, w, h, NULL, 0, NULL, NULL);
out:
	free(boxes);
	cJSON_Delete(arr);
	return text;
}

/* Before the request is built: fractions made pixels from each image's
 * own header, or the boxes left out with a word in the file's result. */
static void size_boxes(struct uploader *u, struct queue_batch *b)
{
	unsigned char head[65536];

	for (size_t i = 0; i < b->count; i++) {
		struct queue_item *it = &b->items[i];
		unsigned w = 0, h = 0;
		ssize_t n;
		char *px = NULL, *note;

		if (!it->boxes_normalized || !it->part[ANNOT_BOXES])
			continue;
		n = read_head(u->files_fd, it->path, it->ino, head, sizeof(head));
		if (n > 0 && dataset_image_size(head, (size_t)n, &w, &h) == 0 && w && h)
			px = boxes_in_pixels(it->part[ANNOT_BOXES], w, h);
		free(it->part[ANNOT_BOXES]);
		it->part[ANNOT_BOXES] = px;
		it->boxes_normalized = false;
		if (px || asprintf(&note,
				   "%s; its boxes were not sent: the image's size could not "
				   "be read (a JPEG or PNG is needed)",
				   it->note ? it->note : "from its dataset") < 0)
			continue;
		free(it->note);
		it->note = note;
	}
}

/* Returns 1 when a request started, 0 when none was needed. */
static int job_start(struct uploader *u, struct queue_batch *batch)
{
	struct upload_job *job = job_new(u, batch);
	char *url = NULL;
	int rc = -ENOMEM;

	if (!job) {
		batch_failed(u, batch, ENOMEM);
		return 0;
	}
	size_boxes(u, &job->batch);
	url = request_url(u->opt->url, job->batch.category);
	if (!job->parts || !job->sent || !job->mime || !url)
		goto fail;
	if ((rc = job_open_parts(job)) < 0)
		goto fail;
	if (job->nsent == 0 || (rc = job_headers(job)) == 0) {
		job_free(job);
		free(url);
		return 0;
	}
	if (rc < 0 || (rc = request_add_annotations(job->mime, &job->batch, job->sent)) < 0)
		goto fail;
	set_transfer_options(job, url);
	note_sending(job);
	if (curl_multi_add_handle(u->multi, job->easy) != CURLM_OK) {
		rc = -EIO;
		goto fail;
	}
	job_link(u, job);
	job->started_ms = clock_now_ms();
	build_succeeded(u);
	log_debug("sending %zu file(s) to %s, label %s", job->nsent, url,
		  job->batch.label ? job->batch.label : "(none given)");
	free(url);
	return 1;
fail:
	build_failed(u, job, -rc);
	free(url);
	job_free(job);
	return 0;
}

/* Returns how many requests were started. */
static unsigned start_jobs(struct uploader *u, int64_t now)
{
	struct queue_batch batch;
	unsigned started = 0;

	while (u->running < u->opt->concurrency && queue_take_batch(u->q, now, &batch) > 0)
		started += (unsigned)job_start(u, &batch);
	return started;
}

/* ---- annotation files: read here, never sent as they are ---- */

static int read_whole(int dir_fd, const struct queue_load *l, char **text, size_t *len)
{
	struct stat st;
	size_t got = 0;
	int fd = open_spool_file(dir_fd, l->path, l->ino, &st), rc = 0;

	*text = NULL;
	if (fd < 0)
		return fd;
	if ((uint64_t)st.st_size > ANNOT_FILE_MAX) {
		rc = -EFBIG;
	} else if (!(*text = malloc((size_t)st.st_size + 1))) {
		rc = -ENOMEM;
	}
	while (rc == 0 && got < (size_t)st.st_size) {
		ssize_t n = pread(fd, *text + got, (size_t)st.st_size - got, (off_t)got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return rc;
}

static void read_annotation(struct uploader *u, const struct queue_load *l)
{
	struct annot_file *f = NULL;
	char err[256] = "", *text;
	size_t len = 0;
	int rc = read_whole(u->files_fd, l, &text, &len);

	if (rc == -EFBIG)
		snprintf(err, sizeof(err), "larger than %zu MB", ANNOT_FILE_MAX >> 20);
	else if (rc == -ESTALE)
		snprintf(err, sizeof(err),
			 "replaced while it was read; setfattr retry reads it again");
	else if (rc < 0)
		snprintf(err, sizeof(err), "cannot be read: %s", strerror(-rc));
	else
		annot_parse(l->path, text, len, &f, err, sizeof(err));
	free(text);
	if (!f)
		log_warn("%s: not used: %s", l->path, err);
	queue_load_done(u->q, l, f, err);
}

static const char *name_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* Whether NAME is a .json or .csv: sensor data may be large, so their
 * start decides whether they are read whole. */
static bool sniffed_first(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot && (strcasecmp(dot, ".json") == 0 || strcasecmp(dot, ".csv") == 0);
}

/* A file that may be a dataset's: a .json or .csv must look like one in
 * its first 64 KiB (a sensor-data file of 100 MB is not read whole for
 * that); the others are small and read whole, so that a YOLO file with a
 * bad line fails with that line rather than go up as a text sample. */
static void read_dataset(struct uploader *u, const struct queue_load *l)
{
	bool sniffed = sniffed_first(name_of(l->path));
	unsigned char *head = sniffed ? malloc(DATASET_HEAD_MAX) : NULL;
	struct dataset *ds = NULL;
	char err[256] = "", *text = NULL;
	size_t len = 0;
	ssize_t n = 0;
	int rc = -1;

	if (sniffed)
		n = head ? read_head(u->files_fd, l->path, l->ino, head, DATASET_HEAD_MAX)
			 : -ENOMEM;
	if (n >= 0 && sniffed &&
	    dataset_detect(name_of(l->path), (const char *)head, (size_t)n) == DATASET_NONE)
		rc = 1;
	else if (n >= 0 && (n = read_whole(u->files_fd, l, &text, &len)) == 0)
		rc = dataset_parse(name_of(l->path), text, len, &ds, err, sizeof(err));
	if (n == -EFBIG)
		snprintf(err, sizeof(err), "larger than %zu MB", ANNOT_FILE_MAX >> 20);
	else if (n == -ENOENT || n == -ESTALE)
		rc = -2; /* moved or replaced since it was handed over */
	else if (n < 0)
		snprintf(err, sizeof(err), "cannot be read: %s", strerror((int)-n));
	if (rc == -1)
		log_warn("%s: not used: %s", l->path, err);
	queue_dataset_done(u->q, l, ds, rc, err);
	free(text);
	free(head);
}

static void read_annotations(struct uploader *u)
{
	struct queue_load loads[16];
	size_t n = queue_take_loads(u->q, loads, sizeof(loads) / sizeof(loads[0]));

	for (size_t i = 0; i < n; i++) {
		if (loads[i].dataset)
			read_dataset(u, &loads[i]);
		else
			read_annotation(u, &loads[i]);
		free(loads[i].path);
	}
}

/* ---- results ---- */

/* Errors before a byte of the request can have reached the service. */
static bool transport_may_have_sent(CURLcode code)
{
	switch (code) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT: return false;
	default: return true;
	}
}

/* One line when the service becomes unreachable or its trouble changes,
 * not one per attempt while retrying in backoff. */
static void note_trouble(struct uploader *u, const char *text)
{
	if (strcmp(u->trouble, text) == 0)
		return;
	log_warn("uploads failing, retrying with backoff: %s", text);
	snprintf(u->trouble, sizeof(u->trouble), "%s", text);
}

static void note_no_trouble(struct uploader *u)
{
	if (!u->trouble[0])
		return;
	log_info("the service answers again");
	u->trouble[0] = '\0';
}

/* ---- what people and fleets see ---- */

static void count_request(struct uploader *u, long status, size_t retries, bool stored)
{
	struct upload_stats *s = &u->stats;
	size_t i;

	pthread_mutex_lock(&u->stats_lock);
	for (i = 0; i < s->ncodes && s->codes[i] != status; i++)
		;
	if (i == s->ncodes && s->ncodes < UPLOAD_STATS_CODES) {
		s->codes[i] = status;
		s->ncodes++;
	}
	if (i < s->ncodes)
		s->requests[i]++;
	s->retries += retries;
	if (stored)
		s->last_success_s = clock_wall_s();
	pthread_mutex_unlock(&u->stats_lock);
}

void uploader_stats(struct uploader *u, struct upload_stats *out)
{
	pthread_mutex_lock(&u->stats_lock);
	*out = u->stats;
	pthread_mutex_unlock(&u->stats_lock);
}

static uint64_t job_bytes(const struct upload_job *job)
{
	uint64_t b = 0;

	for (size_t i = 0; i < job->batch.count; i++) {
		if (job->sent[i])
			b += job->batch.items[i].size;
	}
	return b;
}

/* One line per request that decided something; requests that only met
 * trouble are told once per change of trouble (note_trouble). */
static void log_request(const struct upload_job *job, long status, const struct queue_result *res,
			size_t n)
{
	size_t count[QUEUE_SOLO + 1] = {0};
	char label[80];

	for (size_t i = 0; i < n; i++)
		count[res[i].outcome]++;
	if (!count[QUEUE_UPLOADED] && !count[QUEUE_DUPLICATE] && !count[QUEUE_FAILED])
		return;
	text_escape(label, sizeof(label), job->batch.label ? job->batch.label : "",
		    job->batch.label ? strlen(job->batch.label) : 0);
	log_info("%s/%s: %zu file(s), %.2f MB in %.1f s: HTTP %ld, %zu uploaded, %zu duplicate, "
		 "%zu failed%s",
		 layout_category_name(job->batch.category),
		 job->batch.label ? label : "(no label given)", n, (double)job_bytes(job) / 1e6,
		 (double)(clock_now_ms() - job->started_ms) / 1000, status, count[QUEUE_UPLOADED],
		 count[QUEUE_DUPLICATE], count[QUEUE_FAILED],
		 count[QUEUE_RETRY] + count[QUEUE_SOLO] ? ", the rest again later" : "");
}

static void report_transport_error(struct upload_job *job, CURLcode code)
{
	struct queue_result res[job->batch.count];
	char text[CURL_ERROR_SIZE + 64];
	size_t n = 0;

	snprintf(text, sizeof(text), "%s",
		 job->why[0]      ? job->why
		 : job->errbuf[0] ? job->errbuf
				  : curl_easy_strerror(code));
	for (size_t i = 0; i < job->batch.count; i++) {
		if (!job->sent[i])
			continue;
		res[n++] = (struct queue_result){.item = &job->batch.items[i],
						 .outcome = QUEUE_RETRY,
						 .text = text,
						 .maybe_sent = transport_may_have_sent(code)};
	}
	note_trouble(job->u, text);
	count_request(job->u, 0, n, false);
	queue_report(job->u->q, res, n, clock_now_ms());
}

/* A refusal (4xx) stored nothing; a 2xx, 5xx or 408 may have stored it
 * before something went wrong. */
static bool reply_may_have_stored(long status)
{
	return (status >= 200 && status < 300) || status >= 500 || status == 408;
}

static enum queue_outcome outcome_of(enum reply_outcome r)
{
	switch (r) {
	case REPLY_STORED: return QUEUE_UPLOADED;
	case REPLY_DUPLICATE: return QUEUE_DUPLICATE;
	case REPLY_REJECTED: return QUEUE_FAILED;
	case REPLY_AUTH: return QUEUE_REQUEUE;
	case REPLY_SOLO: return QUEUE_SOLO;
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
		note_trouble(u, first->text);
	} else {
		note_no_trouble(u);
	}
}

static void report_reply(struct upload_job *job, long status)
{
	size_t n = job->nsent, k = 0;
	const char *names[n ? n : 1];
	struct reply_file replies[n ? n : 1];
	struct queue_result res[n ? n : 1];
	struct reply_request req = {.nsamples = n,
				    .names = names,
				    .date_ids = job->u->opt->add_date_id,
				    .duplicates_refused = !job->u->opt->allow_duplicates};
	curl_off_t retry_after = 0;
	size_t retries = 0, stored = 0;

	for (size_t i = 0; i < job->batch.count; i++) {
		if (job->sent[i])
			names[k++] = job->batch.items[i].send_name;
	}
	reply_classify(status, job->body, job->body_len, &req, replies);
	log_debug("HTTP %ld for %zu file(s)", status, n);
	curl_easy_getinfo(job->easy, CURLINFO_RETRY_AFTER, &retry_after);
	note_reply(job, status, &replies[0]);
	k = 0;
	for (size_t i = 0; i < job->batch.count; i++) {
		if (!job->sent[i])
			continue;
		res[k] = (struct queue_result){
			.item = &job->batch.items[i],
			.outcome = outcome_of(replies[k].outcome),
			.text = replies[k].text,
			.retry_after_ms = retry_after > 0 && retry_after < 3600
						  ? (unsigned)retry_after * 1000
						  : 0,
			.maybe_sent = reply_may_have_stored(status),
		};
		if (res[k].outcome == QUEUE_FAILED)
			log_warn("%s: upload failed: %s", job->batch.items[i].path,
				 replies[k].text);
		retries += res[k].outcome == QUEUE_RETRY;
		stored += res[k].outcome == QUEUE_UPLOADED || res[k].outcome == QUEUE_DUPLICATE;
		k++;
	}
	log_request(job, status, res, n);
	count_request(job->u, status, retries, stored > 0);
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
/* From the lifetime totals: files removed by retention meanwhile do not
 * make the counts of the mount go down. */
static void log_summary(struct uploader *u, int64_t now)
{
	struct queue_counts c;
	struct store_totals t;
	uint64_t done, failed;
	size_t waiting;

	if (now < u->next_summary_ms)
		return;
	queue_count(u->q, "", &c);
	queue_lifetime(u->q, &t);
	if (u->next_summary_ms) {
		done = t.uploaded + t.duplicate - u->last_lifetime.uploaded -
		       u->last_lifetime.duplicate;
		failed = t.failed - u->last_lifetime.failed;
		waiting = c.n[FILE_WRITING] + c.n[FILE_PENDING] + c.n[FILE_UPLOADING];
		if (done || failed || waiting)
			log_info("last 10 minutes: %llu uploaded, %llu failed; %zu waiting%s",
				 (unsigned long long)done, (unsigned long long)failed, waiting,
				 queue_is_paused(u->q) ? " (paused)" : "");
	}
	u->last_lifetime = t;
	u->next_summary_ms = now + SUMMARY_EVERY_MS;
}

static void abandon_jobs(struct uploader *u)
{
	while (u->jobs) {
		struct upload_job *job = u->jobs;

		curl_multi_remove_handle(u->multi, job->easy);
		job_unlink(u, job);
		report_unsent(job, QUEUE_REQUEUE, "");
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
		read_annotations(u);
		/* Before requests go out the journal must say they may have
		 * (a duplicate reply after a crash is then ours); other records
		 * (closes, results) are synced in groups at least every second. */
		if (start_jobs(u, now) > 0 || now - u->last_sync_ms >= JOURNAL_SYNC_MS) {
			queue_maintain_journal(u->q);
			u->last_sync_ms = now;
		}
		if (u->maintain && now >= u->next_maintain_ms) {
			u->maintain(u->maintain_arg, now);
			u->next_maintain_ms = now + MAINTAIN_EVERY_MS;
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

void uploader_set_maintenance(struct uploader *u, void (*fn)(void *arg, int64_t now_ms), void *arg)
{
	u->maintain = fn;
	u->maintain_arg = arg;
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
