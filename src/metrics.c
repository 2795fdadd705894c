/* metrics.c: see metrics.h.  Names follow Prometheus' conventions:
 * ingestfs_ prefix, base units (bytes, seconds), counters end in _total;
 * every series carries mount="..." so that one host's mounts stay apart. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "vocab.h"

struct out {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	char *bigger;
	int n;

	for (;;) {
		if (o->failed)
			return;
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		o->cap = o->cap * 2 + (n > 0 ? (size_t)n : 0);
		bigger = realloc(o->buf, o->cap);
		if (!bigger) {
			o->failed = true;
			return;
		}
		o->buf = bigger;
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label_value(struct out *o, const char *v)
{
	put(o, "\"");
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			put(o, "\\%c", *v);
		else if (*v == '\n')
			put(o, "\\n");
		else
			put(o, "%c", *v);
	}
	put(o, "\"");
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{mount="...",EXTRA} VALUE */
static void sample(struct out *o, const struct metrics_input *in, const char *name,
		   const char *extra, double value)
{
	put(o, "%s{mount=", name);
	put_label_value(o, in->mount);
	put(o, "%s%s} %.17g\n", extra && *extra ? "," : "", extra ? extra : "", value);
}

static void files_by_state(struct out *o, const struct metrics_input *in)
{
	char extra[64];

	family(o, "ingestfs_files", "gauge", "Files in the mount, by upload state.");
	for (int s = 0; s < FILE_STATE_COUNT; s++) {
		snprintf(extra, sizeof(extra), "state=\"%s\"", file_state_name((enum file_state)s));
		sample(o, in, "ingestfs_files", extra, (double)in->files.n[s]);
	}
	family(o, "ingestfs_files_bytes", "gauge", "Bytes of the files in the mount, by state.");
	for (int s = 0; s < FILE_STATE_COUNT; s++) {
		snprintf(extra, sizeof(extra), "state=\"%s\"", file_state_name((enum file_state)s));
		sample(o, in, "ingestfs_files_bytes", extra, (double)in->files.bytes[s]);
	}
}

static void lifetime(struct out *o, const struct metrics_input *in)
{
	family(o, "ingestfs_uploaded_files_total", "counter",
	       "Files stored by the service since the spool was made.");
	sample(o, in, "ingestfs_uploaded_files_total", NULL, (double)in->lifetime.uploaded);
	family(o, "ingestfs_uploaded_bytes_total", "counter",
	       "Bytes of the files stored since the spool was made.");
	sample(o, in, "ingestfs_uploaded_bytes_total", NULL, (double)in->lifetime.bytes);
	family(o, "ingestfs_duplicate_files_total", "counter",
	       "Files the project held already, since the spool was made.");
	sample(o, in, "ingestfs_duplicate_files_total", NULL, (double)in->lifetime.duplicate);
	family(o, "ingestfs_failed_files_total", "counter",
	       "Uploads that ended failed, since the spool was made.");
	sample(o, in, "ingestfs_failed_files_total", NULL, (double)in->lifetime.failed);
}

static void requests(struct out *o, const struct metrics_input *in)
{
	char extra[48];

	family(o, "ingestfs_requests_total", "counter",
	       "Upload requests since start, by HTTP status (0: no reply).");
	for (size_t i = 0; i < in->uploads.ncodes; i++) {
		snprintf(extra, sizeof(extra), "code=\"%ld\"", in->uploads.codes[i]);
		sample(o, in, "ingestfs_requests_total", extra, (double)in->uploads.requests[i]);
	}
	family(o, "ingestfs_retries_total", "counter",
	       "File uploads to be tried again (backoff), since start.");
	sample(o, in, "ingestfs_retries_total", NULL, (double)in->uploads.retries);
}

static void health(struct out *o, const struct metrics_input *in)
{
	char extra[128];

	family(o, "ingestfs_oldest_waiting_seconds", "gauge",
	       "How long the file waiting longest to go up has waited.");
	sample(o, in, "ingestfs_oldest_waiting_seconds", NULL, in->oldest_waiting_s);
	family(o, "ingestfs_paused", "gauge",
	       "1 while uploads are paused (api_key: the key was refused) or new files "
	       "refused (spool_full: retention limits).");
	sample(o, in, "ingestfs_paused", "reason=\"api_key\"", in->paused_key);
	sample(o, in, "ingestfs_paused", "reason=\"spool_full\"", in->paused_space);
	family(o, "ingestfs_last_success_timestamp_seconds", "gauge",
	       "When a request last stored files (Unix time; 0: not since start).");
	sample(o, in, "ingestfs_last_success_timestamp_seconds", NULL,
	       (double)in->uploads.last_success_s);
	family(o, "ingestfs_build_info", "gauge", "The running version.");
	snprintf(extra, sizeof(extra), "version=\"%s\"", in->version);
	sample(o, in, "ingestfs_build_info", extra, 1);
}

char *metrics_format(const struct metrics_input *in)
{
	struct out o = {.cap = 4096};

	o.buf = malloc(o.cap);
	if (!o.buf)
		return NULL;
	files_by_state(&o, in);
	lifetime(&o, in);
	requests(&o, in);
	health(&o, in);
	if (o.failed) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}

int metrics_write(const char *path, const struct metrics_input *in)
{
	char *text = metrics_format(in), *tmp = NULL;
	size_t len;
	int fd = -1, rc = 0;

	if (!text || asprintf(&tmp, "%s.tmp", path) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	/* Readable by the collector, whoever runs it. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len)
		rc = errno ? -errno : -EIO;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
out:
	free(tmp);
	free(text);
	return rc;
}
