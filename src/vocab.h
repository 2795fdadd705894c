/* vocab.h: the words ingestfs shows users and scripts, in one place: the
 * extended attributes of the mount, the names of the states, and the
 * format of a folder's summary (ingestfs(1) STATUS).  Scripts parse
 * these: change them only with the man page. */
#ifndef INGESTFS_VOCAB_H
#define INGESTFS_VOCAB_H

#define XATTR_PREFIX "user.ingest."
#define XATTR_STATUS XATTR_PREFIX "status"   /* a file's state; "retry"/"resend" to write */
#define XATTR_RESULT XATTR_PREFIX "result"   /* a file's stored name, or why not */
#define XATTR_SUMMARY XATTR_PREFIX "summary" /* a folder's counts per state */
#define XATTR_BYTES XATTR_PREFIX "bytes"     /* a folder's done=N total=N */
#define XATTR_WATCH XATTR_PREFIX "watch"     /* marks a watched tree (watch mode) */
/* The mount root's totals since the spool was made (LIFETIME_FORMAT). */
#define XATTR_LIFETIME XATTR_PREFIX "lifetime"

/* enum file_state, in order (queue.h). */
#define STATE_NAMES                                                                                \
	{                                                                                          \
		"writing", "pending", "uploading", "uploaded", "duplicate", "failed", "ignored"    \
	}

/* A folder's user.ingest.summary, and the last line of ingestfs status;
 * pending counts files still being written too.  Arguments: the counts
 * of uploaded, duplicate, pending, uploading, failed, ignored (size_t). */
#define SUMMARY_FORMAT "uploaded=%zu duplicate=%zu pending=%zu uploading=%zu failed=%zu ignored=%zu"
/* A folder's user.ingest.bytes: bytes done (uploaded or duplicate) and
 * in all (but failed and ignored files). */
#define BYTES_FORMAT "done=%llu total=%llu"
/* user.ingest.lifetime: uploaded, duplicate, failed, bytes uploaded. */
#define LIFETIME_FORMAT "uploaded=%llu duplicate=%llu failed=%llu bytes=%llu"

/* The values of user.ingest.status a user may write. */
#define STATUS_RETRY "retry"
#define STATUS_RESEND "resend"

#endif
