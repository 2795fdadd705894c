/* status_cli.c: "ingestfs status [--wait] [--timeout S] [--failed] [--json] PATH...".
 * It only reads the user.ingest.* xattrs, so it works on any ingestfs
 * mount without talking to the daemon in any other way. */
#include "config.h"

#define _XOPEN_SOURCE_EXTENDED 1
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "layout.h"
#include "queue.h"
#include "status_cli.h"
#include "text.h"
#include "vocab.h"

/* What a link is, for the listing: the daemon keeps no status on it. */
#define SYMLINK_RESULT "a symbolic link: never followed or uploaded"

/* --wait polls often enough to return soon after the last upload, but
 * counts for at most about 1/20 of the time: a summary costs the daemon a
 * pass over its queue, and in watch mode a walk of the tree. */
#define POLL_MIN_MS 20
#define POLL_MAX_MS 200
#define POLL_COST_FACTOR 20

struct status_args {
	bool wait, failed_only, json;
	double timeout_s; /* < 0: forever */
	char **paths;
	int npaths;
};

struct totals {
	size_t n[FILE_STATE_COUNT];
	uint64_t done_bytes, total_bytes;
};

static int read_xattr(const char *path, const char *name, char *buf, size_t size)
{
	ssize_t n = getxattr(path, name, buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int state_from_name(const char *name)
{
	for (int s = 0; s < FILE_STATE_COUNT; s++) {
		if (strcmp(name, file_state_name((enum file_state)s)) == 0)
			return s;
	}
	return -1;
}

/* "uploaded=3 duplicate=0 ..." into counts.  Pending includes writing. */
static int parse_summary(const char *text, struct totals *t)
{
	char name[32];
	size_t value;
	int used, s;

	while (sscanf(text, " %31[a-z]=%zu%n", name, &value, &used) == 2) {
		s = state_from_name(name);
		if (s < 0)
			return -EINVAL;
		t->n[s] += value;
		text += used;
	}
	return 0;
}

/* A watched folder (ingestfs watch) marks its root and categories. */
static bool is_watched(const char *path)
{
	char buf[PATH_MAX], *slash;
	char v[8];

	if (!realpath(path, buf))
		return false;
	for (;;) {
		if (getxattr(buf, XATTR_WATCH, v, sizeof(v)) >= 0)
			return true;
		slash = strrchr(buf, '/');
		if (!slash || slash == buf)
			return false;
		*slash = '\0';
	}
}

static struct totals *walk_totals;

static int count_file_status(const char *path, const struct stat *st, struct totals *t)
{
	char buf[64];
	const char *name = strrchr(path, '/');
	int s;

	if (read_xattr(path, XATTR_STATUS, buf, sizeof(buf)) < 0)
		/* Not published yet (a moment after it was written). */
		s = layout_ignored_name(name ? name + 1 : path) ? FILE_IGNORED : FILE_PENDING;
	else
		s = state_from_name(buf);
	if (s < 0)
		return -EINVAL;
	t->n[s]++;
	if (s != FILE_IGNORED && s != FILE_FAILED)
		t->total_bytes += (uint64_t)st->st_size;
	if (s == FILE_UPLOADED || s == FILE_DUPLICATE)
		t->done_bytes += (uint64_t)st->st_size;
	return 0;
}

static int walk_count_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_F && S_ISREG(st->st_mode))
		count_file_status(path, st, walk_totals);
	return 0;
}

/* Add PATH's counts to T.  Returns 0 or -errno (-ENODATA: not ingestfs). */
static int count_path(const char *path, struct totals *t)
{
	char buf[512];
	struct stat st;
	int rc;

	if (lstat(path, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		t->n[FILE_IGNORED]++;
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		unsigned long long done, all;

		rc = read_xattr(path, XATTR_SUMMARY, buf, sizeof(buf));
		if (rc < 0 && is_watched(path)) {
			walk_totals = t;
			return nftw(path, walk_count_one, 32, FTW_PHYS | FTW_MOUNT) < 0 ? -errno
											: 0;
		}
		if (rc < 0)
			return rc;
		if (read_xattr(path, XATTR_BYTES, buf + 256, sizeof(buf) - 256) == 0 &&
		    sscanf(buf + 256, BYTES_FORMAT, &done, &all) == 2) {
			t->done_bytes += done;
			t->total_bytes += all;
		}
		return parse_summary(buf, t);
	}
	rc = read_xattr(path, XATTR_STATUS, buf, sizeof(buf));
	if (rc < 0 && !is_watched(path))
		return rc;
	return count_file_status(path, &st, t);
}

static int count_all(const struct status_args *a, struct totals *t, const char **bad)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < a->npaths; i++) {
		int rc = count_path(a->paths[i], t);

		if (rc < 0) {
			*bad = a->paths[i];
			return rc;
		}
	}
	return 0;
}

static size_t unfinished(const struct totals *t)
{
	return t->n[FILE_WRITING] + t->n[FILE_PENDING] + t->n[FILE_UPLOADING];
}

static size_t total(const struct totals *t)
{
	size_t n = 0;

	for (int s = 0; s < FILE_STATE_COUNT; s++)
		n += t->n[s];
	return n;
}

static void draw_progress(const struct totals *t, double rate)
{
	size_t all = total(t), done = all - unfinished(t);
	int width = 24, filled = all ? (int)(done * (size_t)width / all) : width;
	double left = (double)(t->total_bytes - t->done_bytes);
	char eta[32] = "--:--";

	if (rate > 0 && t->total_bytes >= t->done_bytes)
		snprintf(eta, sizeof(eta), "%d:%02d", (int)(left / rate) / 60,
			 (int)(left / rate) % 60);
	/* \033[K: clear what a longer previous line left behind. */
	fprintf(stderr,
		"\r[%.*s%*s] %zu/%zu files  %.1f/%.1f MB  %.1f MB/s  ETA %s  %zu failed\033[K",
		filled, "########################", width - filled, "", done, all,
		(double)t->done_bytes / 1e6, (double)t->total_bytes / 1e6, rate / 1e6, eta,
		t->n[FILE_FAILED]);
	fflush(stderr);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static useconds_t poll_interval_us(double count_s)
{
	double ms = count_s * 1000 * POLL_COST_FACTOR;

	if (ms < POLL_MIN_MS)
		ms = POLL_MIN_MS;
	if (ms > POLL_MAX_MS)
		ms = POLL_MAX_MS;
	return (useconds_t)(ms * 1000);
}

/* Returns 0 with final counts in T, or -errno naming *BAD. */
static int wait_for(const struct status_args *a, struct totals *t, const char **bad,
		    bool *timed_out)
{
	double start = now_s(), deadline = a->timeout_s >= 0 ? start + a->timeout_s : 0;
	bool bar = a->wait && isatty(STDERR_FILENO) && !a->json, measured = false;
	uint64_t first_done = 0;
	double rate = 0;
	double counted;
	int rc;

	*timed_out = false;
	for (;;) {
		counted = now_s();
		rc = count_all(a, t, bad);
		counted = now_s() - counted;
		if (rc < 0 || !a->wait || unfinished(t) == 0)
			break;
		/* The rate of this wait, not of what was done before it. */
		if (!measured) {
			first_done = t->done_bytes;
			measured = true;
		} else if (now_s() > start && t->done_bytes >= first_done) {
			rate = (double)(t->done_bytes - first_done) / (now_s() - start);
		}
		if (a->timeout_s >= 0 && now_s() >= deadline) {
			*timed_out = true;
			break;
		}
		if (bar)
			draw_progress(t, rate);
		usleep(poll_interval_us(counted));
	}
	if (bar) {
		draw_progress(t, rate);
		fputc('\n', stderr);
	}
	return rc;
}

/* ---- listing files (--failed, --json) ---- */

static const struct status_args *walk_args;
static cJSON *walk_json;

/* Names and results come from users and the service: escaped, they can
 * neither forge a line nor drive the terminal, and JSON stays UTF-8. */
static void print_file(const char *path, const char *status, const char *result)
{
	char safe_path[PATH_MAX * 4], safe_result[4096];

	text_escape(safe_path, sizeof(safe_path), path, strlen(path));
	text_escape(safe_result, sizeof(safe_result), result, strlen(result));
	if (walk_json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "path", safe_path);
		cJSON_AddStringToObject(o, "status", status);
		cJSON_AddStringToObject(o, "result", safe_result);
		cJSON_AddItemToArray(walk_json, o);
	} else {
		printf("%-9s %s%s%s\n", status, safe_path, safe_result[0] ? "  " : "", safe_result);
	}
}

static void emit_file(const char *path)
{
	char status[64], result[1024];

	if (read_xattr(path, XATTR_STATUS, status, sizeof(status)) < 0 ||
	    state_from_name(status) < 0)
		return;
	if (walk_args->failed_only && strcmp(status, "failed") != 0)
		return;
	if (read_xattr(path, XATTR_RESULT, result, sizeof(result)) < 0)
		result[0] = '\0';
	print_file(path, status, result);
}

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_F && S_ISREG(st->st_mode))
		emit_file(path);
	else if (type == FTW_SL && !walk_args->failed_only)
		print_file(path, "ignored", SYMLINK_RESULT);
	return 0;
}

static void list_files(const struct status_args *a, cJSON *array)
{
	walk_args = a;
	walk_json = array;
	for (int i = 0; i < a->npaths; i++)
		nftw(a->paths[i], walk_one, 32, FTW_PHYS | FTW_MOUNT);
	walk_json = NULL;
}

/* A mount root tells its lifetime totals (LIFETIME_FORMAT). */
struct lifetime {
	unsigned long long uploaded, duplicate, failed, bytes;
};

static bool read_lifetime(const struct status_args *a, struct lifetime *l)
{
	char buf[256];

	return a->npaths == 1 && read_xattr(a->paths[0], XATTR_LIFETIME, buf, sizeof(buf)) == 0 &&
	       sscanf(buf, LIFETIME_FORMAT, &l->uploaded, &l->duplicate, &l->failed, &l->bytes) ==
		       4;
}

static void add_lifetime_json(cJSON *root, const struct status_args *a)
{
	struct lifetime l;
	cJSON *o;

	if (!read_lifetime(a, &l))
		return;
	o = cJSON_AddObjectToObject(root, "lifetime");
	cJSON_AddNumberToObject(o, "uploaded", (double)l.uploaded);
	cJSON_AddNumberToObject(o, "duplicate", (double)l.duplicate);
	cJSON_AddNumberToObject(o, "failed", (double)l.failed);
	cJSON_AddNumberToObject(o, "bytes", (double)l.bytes);
}

static void add_counts_json(cJSON *obj, const struct totals *t)
{
	for (int s = 0; s < FILE_STATE_COUNT; s++)
		cJSON_AddNumberToObject(obj, file_state_name((enum file_state)s), (double)t->n[s]);
	cJSON_AddNumberToObject(obj, "bytes_done", (double)t->done_bytes);
	cJSON_AddNumberToObject(obj, "bytes_total", (double)t->total_bytes);
}

static void print_json(const struct status_args *a, const struct totals *t, int code)
{
	cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateArray();
	char *text;

	add_counts_json(cJSON_AddObjectToObject(root, "summary"), t);
	add_lifetime_json(root, a);
	list_files(a, files);
	cJSON_AddItemToObject(root, "files", files);
	cJSON_AddNumberToObject(root, "exit", code);
	text = cJSON_Print(root);
	if (text)
		puts(text);
	free(text);
	cJSON_Delete(root);
}

static void print_plain(const struct status_args *a, const struct totals *t)
{
	bool any_file = false;
	struct lifetime l;
	struct stat st;

	for (int i = 0; i < a->npaths; i++)
		any_file |= stat(a->paths[i], &st) == 0 && !S_ISDIR(st.st_mode);
	if (a->failed_only || any_file)
		list_files(a, NULL);
	printf(SUMMARY_FORMAT "\n", t->n[FILE_UPLOADED], t->n[FILE_DUPLICATE],
	       t->n[FILE_PENDING] + t->n[FILE_WRITING], t->n[FILE_UPLOADING], t->n[FILE_FAILED],
	       t->n[FILE_IGNORED]);
	/* Files retention removed count here still. */
	if (read_lifetime(a, &l))
		printf("lifetime: uploaded=%llu duplicate=%llu failed=%llu (%.1f MB uploaded)\n",
		       l.uploaded, l.duplicate, l.failed, (double)l.bytes / 1e6);
}

/* ---- arguments ---- */

static void status_usage(FILE *out)
{
	fputs("usage: ingestfs status [--wait] [--timeout S] [--failed] [--json] PATH...\n"
	      "exit: 0 all done, 1 something failed, 2 still pending, 3 bad usage or not "
	      "ingestfs\n",
	      out);
}

static int parse_status_args(int argc, char **argv, struct status_args *a)
{
	static const struct option longopts[] = {
		{"wait", no_argument, NULL, 'w'},   {"timeout", required_argument, NULL, 't'},
		{"failed", no_argument, NULL, 'F'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},   {NULL, 0, NULL, 0},
	};
	char *end;
	int c;

	memset(a, 0, sizeof(*a));
	a->timeout_s = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+wt:Fjh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w': a->wait = true; break;
		case 'F': a->failed_only = true; break;
		case 'j': a->json = true; break;
		case 't':
			a->timeout_s = strtod(optarg, &end);
			if (*end || end == optarg || a->timeout_s < 0) {
				fprintf(stderr,
					"ingestfs status: --timeout wants seconds, not '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 'h': status_usage(stdout); exit(0);
		default: status_usage(stderr); return -1;
		}
	}
	a->paths = argv + optind;
	a->npaths = argc - optind;
	if (a->npaths == 0) {
		status_usage(stderr);
		return -1;
	}
	return 0;
}

int status_main(int argc, char **argv)
{
	struct status_args a;
	struct totals t;
	const char *bad = NULL;
	bool timed_out;
	int rc, code;

	if (parse_status_args(argc, argv, &a) < 0)
		return STATUS_EXIT_USAGE;
	rc = wait_for(&a, &t, &bad, &timed_out);
	if (rc < 0) {
		fprintf(stderr, "ingestfs status: %s: %s\n", bad,
			rc == -ENODATA || rc == -ENOTSUP || rc == -EINVAL
				? "not in an ingestfs mount"
				: strerror(-rc));
		return STATUS_EXIT_USAGE;
	}
	code = t.n[FILE_FAILED] ? STATUS_EXIT_FAILED
	       : unfinished(&t) ? STATUS_EXIT_PENDING
				: STATUS_EXIT_DONE;
	if (a.json)
		print_json(&a, &t, code);
	else
		print_plain(&a, &t);
	return code;
}
