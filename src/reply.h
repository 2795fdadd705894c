/* reply.h: what an HTTP reply from the ingestion service means for each
 * file of the request.  Pure: no I/O, no global state; fuzzed. */
#ifndef INGESTFS_REPLY_H
#define INGESTFS_REPLY_H

#include <stddef.h>

#define REPLY_TEXT_MAX 256

enum reply_outcome {
	REPLY_STORED,    /* text: stored sample name */
	REPLY_DUPLICATE, /* the project already holds these bytes */
	REPLY_REJECTED,  /* final failure; text says why */
	REPLY_RETRY,     /* try again later; the service may have stored it */
	REPLY_AUTH,      /* the key was refused: pause, mark nothing */
};

struct reply_file {
	enum reply_outcome outcome;
	char text[REPLY_TEXT_MAX];
};

/* Classify a reply to a request that carried NFILES files named NAMES (the
 * multipart file names, in request order).  Fills OUT[0..NFILES-1].
 * Never fails: a reply it cannot make sense of means "retry". */
void reply_classify(long http_status, const char *body, size_t body_len, size_t nfiles,
		    const char *const names[], struct reply_file out[]);

/* Copy at most DSTSZ-1 bytes of SRC into DST as one printable line. */
void reply_sanitize(char *dst, size_t dstsz, const char *src, size_t srclen);

#endif
