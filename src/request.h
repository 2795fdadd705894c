/* request.h: what one upload request puts on the wire, from a batch: the
 * URL, the headers (doc/internals.md "Requests"), the sample parts and
 * the annotation parts.  No transfer here: upload.c sends it. */
#ifndef INGESTFS_REQUEST_H
#define INGESTFS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "options.h"
#include "queue.h"

/* Node's HTTP parser takes 16 KiB of headers in all: leave room for the
 * others. */
#define REQUEST_METADATA_MAX 8192
#define REQUEST_LABEL_MAX 4096

/* "POST /api/<category>/files" under the service URL.  Malloc'd. */
char *request_url(const char *base, int category);

/* x-metadata: OWN (a JSON object from info.labels, or NULL) over GLOBAL
 * (metadata=, or NULL), as ASCII-only JSON (\u escapes), so no proxy or
 * header parser mangles it.  0 with *OUT (NULL when there is none),
 * -E2BIG when it is longer than REQUEST_METADATA_MAX, -EINVAL when one
 * is not a JSON object, -ENOMEM. */
int request_metadata(const char *global, const char *own, char **out);

/* Every header but x-api-key, for BATCH.  0, -E2BIG with WHY (it can
 * never be sent: a final failure) or -ENOMEM. */
int request_headers(struct curl_slist **list, const struct options *o,
		    const struct queue_batch *batch, char *why, size_t whysz);
/* The key goes last, so request_forget_key can find it. */
int request_add_key(struct curl_slist **list, const char *key);
/* Wipe the key from the header list before it is freed (core dumps). */
void request_forget_key(struct curl_slist *list);

/* The multipart file name for NAME: curl sends a backslash as it is,
 * which multipart parsers read as an escape, so it is doubled. */
char *request_part_filename(const char *name);

/* After the samples: one part per annotation kind that any sample SENT
 * has entries in, holding only those entries.  0 or -ENOMEM. */
int request_add_annotations(curl_mime *mime, const struct queue_batch *batch, const bool sent[]);

#endif
