/* request.c: URL, headers and parts of one upload request (request.h).
 * Header rules, as the official uploader sends them: x-label percent-
 * encoded; x-no-label for unlabeled samples; x-metadata a JSON object. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "annot.h"
#include "layout.h"
#include "request.h"

#define KEY_HEADER "x-api-key"

char *request_url(const char *base, int category)
{
	size_t blen = strlen(base);
	char *url;

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	if (asprintf(&url, "%.*s/api/%s/files", (int)blen, base, layout_category_name(category)) <
	    0)
		return NULL;
	return url;
}

/* ---- x-metadata ---- */

/* One UTF-8 sequence at P: its code point and length; U+FFFD for bytes
 * that are not UTF-8. */
static unsigned decode_utf8(const unsigned char *p, size_t *len)
{
	int n = p[0] >= 0xF0 && p[0] < 0xF8 ? 3 : p[0] >= 0xE0 ? 2 : p[0] >= 0xC2 ? 1 : -1;
	unsigned cp;

	*len = 1;
	if (n < 0 || p[0] >= 0xF8)
		return 0xFFFD;
	cp = p[0] & (0x3F >> n);
	for (int i = 1; i <= n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0xFFFD;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	*len = (size_t)n + 1;
	return cp > 0x10FFFF ? 0xFFFD : cp;
}

/* JSON text with every non-ASCII character as \uXXXX (JSON strings are
 * the only place such bytes can be). */
static char *ascii_json(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	char *out = malloc(strlen(text) * 12 + 1), *o = out;

	if (!out)
		return NULL;
	while (*p) {
		size_t len;
		unsigned cp;

		if (*p < 0x80) {
			*o++ = (char)*p++;
			continue;
		}
		cp = decode_utf8(p, &len);
		p += len;
		if (cp > 0xFFFF) {
			cp -= 0x10000;
			o += sprintf(o, "\\u%04x\\u%04x", 0xD800 + (cp >> 10),
				     0xDC00 + (cp & 0x3FF));
		} else {
			o += sprintf(o, "\\u%04x", cp);
		}
	}
	*o = '\0';
	return out;
}

static int merge_object(cJSON *into, const char *text)
{
	cJSON *add = cJSON_Parse(text), *item;

	if (!cJSON_IsObject(add)) {
		cJSON_Delete(add);
		return -EINVAL;
	}
	while ((item = add->child)) {
		cJSON_DetachItemViaPointer(add, item);
		cJSON_DeleteItemFromObjectCaseSensitive(into, item->string);
		cJSON_AddItemToObject(into, item->string, item);
	}
	cJSON_Delete(add);
	return 0;
}

int request_metadata(const char *global, const char *own, char **out)
{
	cJSON *obj = NULL;
	char *text = NULL;
	int rc = 0;

	*out = NULL;
	if (!global && !own)
		return 0;
	obj = cJSON_CreateObject();
	if (!obj)
		return -ENOMEM;
	if ((global && (rc = merge_object(obj, global)) < 0) ||
	    (own && (rc = merge_object(obj, own)) < 0))
		goto out;
	text = cJSON_PrintUnformatted(obj);
	*out = text ? ascii_json(text) : NULL;
	rc = *out ? 0 : -ENOMEM;
	if (rc == 0 && strlen(*out) > REQUEST_METADATA_MAX) {
		free(*out);
		*out = NULL;
		rc = -E2BIG;
	}
out:
	free(text);
	cJSON_Delete(obj);
	return rc;
}

/* ---- headers ---- */

static int append_header(struct curl_slist **list, const char *name, const char *value)
{
	struct curl_slist *n;
	char *line;

	if (asprintf(&line, "%s: %s", name, value) < 0)
		return -ENOMEM;
	n = curl_slist_append(*list, line);
	free(line);
	if (!n)
		return -ENOMEM;
	*list = n;
	return 0;
}

static int label_header(struct curl_slist **h, const struct queue_batch *b, char *why, size_t whysz)
{
	char *label;
	int rc;

	switch (b->label_mode) {
	case QUEUE_LABEL_GIVEN:
		label = layout_url_encode(b->label, strlen(b->label));
		if (!label)
			return -ENOMEM;
		rc = strlen(label) > REQUEST_LABEL_MAX ? -E2BIG
						       : append_header(h, "x-label", label);
		if (rc == -E2BIG)
			snprintf(why, whysz,
				 "its label is too long to send (%zu bytes encoded; at "
				 "most %d)",
				 strlen(label), REQUEST_LABEL_MAX);
		free(label);
		return rc;
	case QUEUE_LABEL_NONE: return append_header(h, "x-no-label", "1");
	case QUEUE_LABEL_INFER:
	case QUEUE_LABEL_PARTS:
	default: return 0;
	}
}

static int metadata_header(struct curl_slist **h, const struct options *o,
			   const struct queue_batch *b, char *why, size_t whysz)
{
	char *meta;
	int rc = request_metadata(o->metadata, b->metadata, &meta);

	if (rc == -E2BIG || rc == -EINVAL) {
		snprintf(why, whysz, "its metadata (from info.labels) %s",
			 rc == -E2BIG ? "is too long to send as x-metadata (at most 8192 bytes)"
				      : "is not a JSON object");
		return -E2BIG;
	}
	if (rc == 0 && meta)
		rc = append_header(h, "x-metadata", meta);
	free(meta);
	return rc;
}

int request_headers(struct curl_slist **h, const struct options *o, const struct queue_batch *b,
		    char *why, size_t whysz)
{
	int rc = label_header(h, b, why, whysz);

	if (rc == 0 && !o->allow_duplicates)
		rc = append_header(h, "x-disallow-duplicates", "1");
	if (rc == 0 && o->add_date_id)
		rc = append_header(h, "x-add-date-id", "1");
	if (rc == 0)
		rc = metadata_header(h, o, b, why, whysz);
	if (rc == 0)
		rc = append_header(h, "x-upload-source", PACKAGE_NAME "/" PACKAGE_VERSION);
	if (rc == 0) /* curl waits a second for "100 Continue" otherwise */
		rc = append_header(h, "Expect", "");
	return rc;
}

int request_add_key(struct curl_slist **list, const char *key)
{
	return append_header(list, KEY_HEADER, key);
}

void request_forget_key(struct curl_slist *list)
{
	for (; list; list = list->next) {
		if (strncmp(list->data, KEY_HEADER ":", strlen(KEY_HEADER) + 1) == 0)
			explicit_bzero(list->data, strlen(list->data));
	}
}

/* ---- parts ---- */

char *request_part_filename(const char *name)
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

static int add_annotation_part(curl_mime *mime, enum annot_kind kind, const struct queue_batch *b,
			       const bool sent[])
{
	const char **keys = calloc(b->count + 1, sizeof(*keys));
	const char **values = calloc(b->count + 1, sizeof(*values));
	curl_mimepart *part;
	char *json = NULL;
	size_t n = 0;
	int rc = -ENOMEM;

	if (!keys || !values)
		goto out;
	for (size_t i = 0; i < b->count; i++) {
		if (sent[i] && b->items[i].part[kind]) {
			keys[n] = b->items[i].send_name;
			values[n++] = b->items[i].part[kind];
		}
	}
	rc = 0;
	if (n == 0)
		goto out;
	json = annot_build_part(kind, n, keys, values);
	part = json ? curl_mime_addpart(mime) : NULL;
	if (!part || curl_mime_name(part, "data") != CURLE_OK ||
	    curl_mime_filename(part, annot_part_filename(kind)) != CURLE_OK ||
	    curl_mime_type(part, "application/json") != CURLE_OK ||
	    curl_mime_data(part, json, CURL_ZERO_TERMINATED) != CURLE_OK)
		rc = -ENOMEM;
out:
	free(json);
	free(keys);
	free(values);
	return rc;
}

int request_add_annotations(curl_mime *mime, const struct queue_batch *b, const bool sent[])
{
	int rc = 0;

	for (int k = 0; k < ANNOT_PART_KINDS && rc == 0; k++)
		rc = add_annotation_part(mime, (enum annot_kind)k, b, sent);
	return rc;
}
