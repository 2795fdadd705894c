/* reply.h: what an HTTP reply from the ingestion service means for each
 * sample of the request.  Pure: no I/O, no global state; fuzzed.
 *
 * The rules (doc/internals.md "Replies"): entries describe sample parts
 * only, in order, and .labels parts get none; a stored entry may name the
 * stored sample, a refused one names nothing.  An entry is tied to a
 * sample by position when the counts agree and every name given agrees,
 * otherwise by an exact name; a sample no entry can be tied to with
 * certainty is sent again, never counted as stored. */
#ifndef INGESTFS_REPLY_H
#define INGESTFS_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define REPLY_TEXT_MAX 256
#define REPLY_DUPLICATE_MESSAGE "An item with this hash already exists"

enum reply_outcome {
	REPLY_STORED,    /* text: stored sample name */
	REPLY_DUPLICATE, /* the project already holds these bytes */
	REPLY_REJECTED,  /* final failure; text says why */
	REPLY_RETRY,     /* try again later, with backoff */
	REPLY_AUTH,      /* the key was refused: pause, mark nothing */
	REPLY_SOLO,      /* refused as a whole, without saying which sample
			    was at fault: send each sample alone, now */
};

struct reply_file {
	enum reply_outcome outcome;
	char text[REPLY_TEXT_MAX];
};

/* What was sent: the part file names of the SAMPLES, in request order
 * (annotation parts left out), whether x-add-date-id was asked for, and
 * whether x-disallow-duplicates was (then a resend is harmless). */
struct reply_request {
	size_t nsamples;
	const char *const *names;
	bool date_ids;
	bool duplicates_refused;
};

/* Fill OUT[0..nsamples-1].  Never fails: a reply it cannot make sense of
 * means "retry" or, for a 200, a final failure with the service's words. */
void reply_classify(long http_status, const char *body, size_t body_len,
		    const struct reply_request *req, struct reply_file out[]);

/* Whether the service's NAME for a stored sample is the file SENT: the
 * whole name, its stem, or (DATE_IDS) the stem plus an appended id. */
bool reply_name_matches(const char *name, const char *sent, bool date_ids);

/* Copy at most DSTSZ-1 bytes of SRC into DST as one printable line. */
void reply_sanitize(char *dst, size_t dstsz, const char *src, size_t srclen);

#endif
