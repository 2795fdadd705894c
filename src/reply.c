/* reply.c: per-sample results from the service's reply (see reply.h and
 * doc/internals.md "Replies").  Evidence for the shapes: the official
 * clients' own code, which the real service answers every day. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "reply.h"
#include "text.h"

#define UNTIED (-1)
#define CONFLICT (-2)

void reply_sanitize(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	size_t o = text_escape(dst, dstsz, src, srclen);

	/* A body's trailing newline is no part of the message. */
	while (o >= 4 && (strcmp(dst + o - 4, "\\x0a") == 0 || strcmp(dst + o - 4, "\\x0d") == 0))
		dst[o -= 4] = '\0';
	while (o > 0 && dst[o - 1] == ' ')
		dst[--o] = '\0';
}

static void set_all(const struct reply_request *req, struct reply_file out[],
		    enum reply_outcome outcome, const char *text)
{
	for (size_t i = 0; i < req->nsamples; i++) {
		out[i].outcome = outcome;
		snprintf(out[i].text, sizeof(out[i].text), "%s", text);
	}
}

static bool is_duplicate_message(const char *msg)
{
	return strstr(msg, REPLY_DUPLICATE_MESSAGE) != NULL;
}

/* The service's own words: the JSON "error" string, else the raw body. */
static void server_message(const cJSON *root, const char *body, size_t len, char *dst, size_t dstsz)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");

	if (cJSON_IsString(err) && err->valuestring)
		reply_sanitize(dst, dstsz, err->valuestring, strlen(err->valuestring));
	else if (!root)
		reply_sanitize(dst, dstsz, body ? body : "", body ? len : 0);
	else
		dst[0] = '\0';
	if (dst[0] == '\0')
		snprintf(dst, dstsz, "(no message)");
}

/* A name we cannot predict the service's reading of (not UTF-8: it may
 * decode it as anything) is never checked or matched by name. */
static bool valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n = *p < 0x80         ? 0
			: (*p >> 5) == 6  ? 1
			: (*p >> 4) == 14 ? 2
			: (*p >> 3) == 30 ? 3
					  : -1;

		if (n < 0)
			return false;
		for (p++; n > 0; n--, p++) {
			if ((*p & 0xC0) != 0x80)
				return false;
		}
	}
	return true;
}

static size_t stem_len(const char *sent)
{
	const char *dot = strrchr(sent, '.');

	return dot && dot != sent ? (size_t)(dot - sent) : strlen(sent);
}

/* An id the service appended: a separator, then letters and digits. */
static bool is_date_id(const char *s)
{
	if ((s[0] != '.' && s[0] != '_' && s[0] != '-') || s[1] == '\0')
		return false;
	for (s++; *s; s++) {
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z')))
			return false;
	}
	return true;
}

bool reply_name_matches(const char *name, const char *sent, bool date_ids)
{
	size_t stem = stem_len(sent);

	if (strcmp(name, sent) == 0)
		return true;
	if (strncmp(name, sent, stem) != 0)
		return false;
	return name[stem] == '\0' || (date_ids && is_date_id(name + stem));
}

static const char *entry_name(const cJSON *entry)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "fileName");

	return cJSON_IsString(name) && name->valuestring ? name->valuestring : NULL;
}

/* An entry's verdict on one sample.  A refusal reads "refused: <the
 * service's words>": the request as a whole may have been a 200. */
static void judge_entry(const cJSON *entry, const char *sent, struct reply_file *out)
{
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(entry, "success");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(entry, "error");
	const char *name = entry_name(entry);
	char msg[REPLY_TEXT_MAX - 16];

	if (cJSON_IsTrue(ok)) {
		out->outcome = REPLY_STORED;
		if (!name)
			snprintf(out->text, sizeof(out->text), "%.*s", (int)stem_len(sent), sent);
		else
			reply_sanitize(out->text, sizeof(out->text), name, strlen(name));
		return;
	}
	if (cJSON_IsString(err) && err->valuestring)
		reply_sanitize(msg, sizeof(msg), err->valuestring, strlen(err->valuestring));
	else
		snprintf(msg, sizeof(msg), "rejected without a reason");
	if (is_duplicate_message(msg)) {
		out->outcome = REPLY_DUPLICATE;
		snprintf(out->text, sizeof(out->text), "%s", msg);
	} else {
		out->outcome = REPLY_REJECTED;
		snprintf(out->text, sizeof(out->text), "refused: %s", msg);
	}
}

/* Position: the counts agree and no name contradicts its place. */
static bool tie_by_position(const cJSON *files, const struct reply_request *req, int tie[])
{
	size_t i = 0;
	const cJSON *e;

	if ((size_t)cJSON_GetArraySize(files) != req->nsamples)
		return false;
	cJSON_ArrayForEach(e, files)
	{
		const char *name = cJSON_IsObject(e) ? entry_name(e) : NULL;

		if (!cJSON_IsObject(e) || (name && valid_utf8(req->names[i]) &&
					   !reply_name_matches(name, req->names[i], req->date_ids)))
			return false;
		i++;
	}
	for (i = 0; i < req->nsamples; i++)
		tie[i] = (int)i;
	return true;
}

/* The one sample an entry's name designates, or UNTIED. */
static int sample_named(const char *name, const struct reply_request *req)
{
	int found = UNTIED;

	for (size_t i = 0; i < req->nsamples; i++) {
		if (!valid_utf8(req->names[i]) ||
		    !reply_name_matches(name, req->names[i], req->date_ids))
			continue;
		if (found != UNTIED)
			return UNTIED; /* two samples fit: neither is certain */
		found = (int)i;
	}
	return found;
}

/* Names: an entry that names exactly one sample, which no other entry
 * names too. */
static void tie_by_name(const cJSON *files, const struct reply_request *req, int tie[])
{
	int j = 0;
	const cJSON *e;

	for (size_t i = 0; i < req->nsamples; i++)
		tie[i] = UNTIED;
	cJSON_ArrayForEach(e, files)
	{
		const char *name = cJSON_IsObject(e) ? entry_name(e) : NULL;
		int i = name ? sample_named(name, req) : UNTIED;

		if (i >= 0)
			tie[i] = tie[i] == UNTIED ? j : CONFLICT;
		j++;
	}
}

static void judge_refusal(long status, const char *msg, const struct reply_request *req,
			  struct reply_file out[]);

/* A sample no entry speaks for: in an accepted request it may have been
 * stored (a resend tells: duplicates are refused); in a refusal, the
 * top-level words are the only verdict there is. */
static void judge_untied(long status, const char *top, const struct reply_request *req,
			 struct reply_file *out)
{
	if (status >= 400 && req->nsamples == 1) {
		judge_refusal(status, top, req, out); /* out is its only one */
	} else if (status >= 400) {
		out->outcome = REPLY_SOLO;
		snprintf(out->text, sizeof(out->text),
			 "HTTP %ld: %s (sending it alone to learn its own verdict)", status, top);
	} else if (req->duplicates_refused) {
		out->outcome = REPLY_RETRY;
		snprintf(out->text, sizeof(out->text),
			 "HTTP %ld: the reply did not say which of its entries is this file's",
			 status);
	} else {
		/* A resend would store another copy if this one was stored. */
		out->outcome = REPLY_REJECTED;
		snprintf(out->text, sizeof(out->text),
			 "HTTP %ld: the reply did not say which of its entries is this file's; "
			 "it may be stored, so it is not sent again while duplicates are "
			 "allowed (setfattr ... retry sends it anyway)",
			 status);
	}
}

static void judge_files(const cJSON *files, long status, const char *top,
			const struct reply_request *req, struct reply_file out[])
{
	int *tie = calloc(req->nsamples + 1, sizeof(*tie));

	if (!tie) {
		set_all(req, out, REPLY_RETRY, "out of memory reading the reply");
		return;
	}
	if (!tie_by_position(files, req, tie))
		tie_by_name(files, req, tie);
	for (size_t i = 0; i < req->nsamples; i++) {
		if (tie[i] >= 0)
			judge_entry(cJSON_GetArrayItem(files, tie[i]), req->names[i], &out[i]);
		else
			judge_untied(status, top, req, &out[i]);
	}
	free(tie);
}

/* Refused as a whole (a 4xx, or a 200 saying success:false).  With one
 * sample the words are its own; with several they may be about any one
 * of them, so each goes again alone to get its own answer. */
static void judge_refusal(long status, const char *msg, const struct reply_request *req,
			  struct reply_file out[])
{
	char text[REPLY_TEXT_MAX];

	if (req->nsamples > 1 && status != 421) {
		snprintf(text, sizeof(text),
			 "HTTP %ld: %s (sending each file alone to learn which)", status, msg);
		set_all(req, out, REPLY_SOLO, text);
		return;
	}
	if (is_duplicate_message(msg) && status != 421) {
		set_all(req, out, REPLY_DUPLICATE, msg);
		return;
	}
	snprintf(text, sizeof(text), "HTTP %ld: %s", status, msg);
	set_all(req, out, REPLY_REJECTED, text);
}

/* A 200 that does not say what became of the files is final, as the
 * official clients treat it; the service may have stored them, which
 * the queue remembers (a later duplicate is then ours). */
static void judge_ok(const cJSON *root, const cJSON *files, const char *msg, const char *body,
		     size_t len, const struct reply_request *req, struct reply_file out[])
{
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "success");
	char raw[REPLY_TEXT_MAX - 64], text[REPLY_TEXT_MAX];

	if (cJSON_IsArray(files)) {
		judge_files(files, 200, msg, req, out);
		return;
	}
	if (cJSON_IsObject(root) && cJSON_IsFalse(ok)) {
		judge_refusal(200, msg, req, out);
		return;
	}
	reply_sanitize(raw, sizeof(raw), body ? body : "", body ? len : 0);
	snprintf(text, sizeof(text), "HTTP 200 with a reply that is not the expected JSON%s%s",
		 raw[0] ? ": " : "", raw);
	set_all(req, out, REPLY_REJECTED, text);
}

void reply_classify(long status, const char *body, size_t len, const struct reply_request *req,
		    struct reply_file out[])
{
	char msg[REPLY_TEXT_MAX - 64], text[REPLY_TEXT_MAX];
	cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	const cJSON *files;

	if (root && !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		root = NULL;
	}
	files = cJSON_GetObjectItemCaseSensitive(root, "files");
	server_message(root, body, len, msg, sizeof(msg));
	snprintf(text, sizeof(text), "HTTP %ld: %s", status, msg);
	if (status == 401)
		set_all(req, out, REPLY_AUTH, text);
	else if (status == 408 || status == 429 || status >= 500 || status < 200)
		set_all(req, out, REPLY_RETRY, text);
	else if (status >= 200 && status < 300)
		judge_ok(root, files, msg, body, len, req, out);
	else if (cJSON_IsArray(files))
		judge_files(files, status, msg, req, out);
	else if (status >= 400)
		judge_refusal(status, msg, req, out);
	else
		set_all(req, out, REPLY_REJECTED, text);
	cJSON_Delete(root);
}
