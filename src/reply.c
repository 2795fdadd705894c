/* reply.c: per-file results from the service's JSON reply (API.md
 * "Responses").  A 200 can hold failures and a 400 can hold successes, so
 * every file is judged by its own entry, matched by order and by name. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "reply.h"

#define DUPLICATE_PREFIX "An item with this hash already exists"

void reply_sanitize(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	size_t o = 0;

	for (size_t i = 0; i < srclen && o + 1 < dstsz; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '\0')
			break;
		dst[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

static void set_all(size_t n, struct reply_file out[], enum reply_outcome outcome, const char *text)
{
	for (size_t i = 0; i < n; i++) {
		out[i].outcome = outcome;
		snprintf(out[i].text, sizeof(out[i].text), "%s", text);
	}
}

/* The service's own words: the JSON "error" string, else the raw body. */
static void server_message(const cJSON *root, const char *body, size_t len, char *dst, size_t dstsz)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");

	if (cJSON_IsString(err) && err->valuestring)
		reply_sanitize(dst, dstsz, err->valuestring, strlen(err->valuestring));
	else
		reply_sanitize(dst, dstsz, body ? body : "", body ? len : 0);
	if (dst[0] == '\0')
		snprintf(dst, dstsz, "(no message)");
}

/* The service reports "car.01" for a stored "car.01.json" and the part's
 * own name for a failure; with x-add-date-id it appends an id. */
static bool name_matches(const char *reported, const char *sent)
{
	const char *dot = strrchr(sent, '.');
	size_t stem = dot && dot != sent ? (size_t)(dot - sent) : strlen(sent);

	return strcmp(reported, sent) == 0 || strncmp(reported, sent, stem) == 0;
}

static const char *entry_name(const cJSON *entry)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "fileName");

	return cJSON_IsString(name) && name->valuestring ? name->valuestring : NULL;
}

static void judge_entry(const cJSON *entry, long status, struct reply_file *out)
{
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(entry, "success");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(entry, "error");
	const char *name = entry_name(entry);
	char msg[REPLY_TEXT_MAX - 16];

	if (cJSON_IsTrue(ok)) {
		out->outcome = REPLY_STORED;
		reply_sanitize(out->text, sizeof(out->text), name ? name : "",
			       name ? strlen(name) : 0);
		return;
	}
	if (cJSON_IsString(err) && err->valuestring)
		reply_sanitize(msg, sizeof(msg), err->valuestring, strlen(err->valuestring));
	else
		snprintf(msg, sizeof(msg), "rejected without a reason");
	out->outcome = strncmp(msg, DUPLICATE_PREFIX, strlen(DUPLICATE_PREFIX)) == 0
			       ? REPLY_DUPLICATE
			       : REPLY_REJECTED;
	snprintf(out->text, sizeof(out->text), "HTTP %ld: %s", status, msg);
	if (out->outcome == REPLY_DUPLICATE)
		snprintf(out->text, sizeof(out->text), "%s", msg);
}

/* Which reply entry speaks of which file: first every entry that names a
 * file (the service may reorder), then the rest in order (it may also
 * mangle names it cannot decode).  MATCH[i] is an entry index or -1. */
static void match_entries(const cJSON *files, size_t nentries, size_t n, const char *const names[],
			  int match[], bool used[])
{
	for (size_t i = 0; i < n; i++) {
		match[i] = -1;
		for (size_t j = 0; j < nentries; j++) {
			const cJSON *e = cJSON_GetArrayItem(files, (int)j);
			const char *reported = cJSON_IsObject(e) ? entry_name(e) : NULL;

			if (!used[j] && reported && name_matches(reported, names[i])) {
				used[j] = true;
				match[i] = (int)j;
				break;
			}
		}
	}
	for (size_t i = 0, j = 0; i < n; i++) {
		while (j < nentries && used[j])
			j++;
		if (match[i] < 0 && j < nentries &&
		    cJSON_IsObject(cJSON_GetArrayItem(files, (int)j))) {
			used[j] = true;
			match[i] = (int)j;
		}
	}
}

static void judge_files(const cJSON *files, long status, const char *top_error, size_t n,
			const char *const names[], struct reply_file out[])
{
	size_t nentries = (size_t)cJSON_GetArraySize(files);
	bool *used;
	int *match;

	/* Entries beyond what we sent cannot be ours. */
	if (nentries > n)
		nentries = n;
	used = calloc(nentries + 1, sizeof(*used));
	match = calloc(n + 1, sizeof(*match));
	if (!used || !match) {
		set_all(n, out, REPLY_RETRY, "out of memory reading the reply");
		goto out;
	}
	match_entries(files, nentries, n, names, match, used);
	for (size_t i = 0; i < n; i++) {
		if (match[i] >= 0) {
			judge_entry(cJSON_GetArrayItem(files, match[i]), status, &out[i]);
		} else if (status == 400) {
			/* A 400 is final even for files it forgot to list. */
			out[i].outcome = REPLY_REJECTED;
			snprintf(out[i].text, sizeof(out[i].text), "HTTP 400: %s", top_error);
		} else {
			out[i].outcome = REPLY_RETRY;
			snprintf(out[i].text, sizeof(out[i].text),
				 "HTTP %ld: reply did not mention this file", status);
		}
	}
out:
	free(used);
	free(match);
}

static void classify_json(long status, const cJSON *root, const char *body, size_t len, size_t n,
			  const char *const names[], struct reply_file out[])
{
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "success");
	char msg[REPLY_TEXT_MAX - 16], text[REPLY_TEXT_MAX];

	server_message(root, body, len, msg, sizeof(msg));
	if (cJSON_IsArray(files)) {
		judge_files(files, status, msg, n, names, out);
		return;
	}
	if (status == 200 && cJSON_IsTrue(ok)) {
		set_all(n, out, REPLY_STORED, "");
		for (size_t i = 0; i < n; i++)
			snprintf(out[i].text, sizeof(out[i].text), "%s", names[i]);
		return;
	}
	snprintf(text, sizeof(text), "HTTP %ld: %s", status, msg);
	set_all(n, out, status == 200 ? REPLY_RETRY : REPLY_REJECTED, text);
}

void reply_classify(long status, const char *body, size_t len, size_t n, const char *const names[],
		    struct reply_file out[])
{
	char msg[REPLY_TEXT_MAX - 16], text[REPLY_TEXT_MAX];
	cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;

	server_message(root, body, len, msg, sizeof(msg));
	snprintf(text, sizeof(text), "HTTP %ld: %s", status, msg);
	if (status == 401) {
		set_all(n, out, REPLY_AUTH, text);
	} else if (status == 408 || status == 429 || status >= 500 || status < 200) {
		set_all(n, out, REPLY_RETRY, text);
	} else if ((status == 200 || status == 400) && cJSON_IsObject(root)) {
		classify_json(status, root, body, len, n, names, out);
	} else if (status == 200) {
		/* Stored or not, we cannot tell: send again, duplicates are refused. */
		snprintf(text, sizeof(text), "HTTP 200 with a reply that is not the expected JSON");
		set_all(n, out, REPLY_RETRY, text);
	} else {
		set_all(n, out, REPLY_REJECTED, text);
	}
	cJSON_Delete(root);
}
