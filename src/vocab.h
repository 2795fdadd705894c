/* vocab.h: the words ingestfs shows users and scripts, in one place: the
 * extended attributes of the mount (ingestfs(1) STATUS). */
#ifndef INGESTFS_VOCAB_H
#define INGESTFS_VOCAB_H

#define XATTR_PREFIX "user.ingest."
#define XATTR_STATUS XATTR_PREFIX "status"   /* a file's state; "retry"/"resend" to write */
#define XATTR_RESULT XATTR_PREFIX "result"   /* a file's stored name, or why not */
#define XATTR_SUMMARY XATTR_PREFIX "summary" /* a folder's counts per state */
#define XATTR_BYTES XATTR_PREFIX "bytes"     /* a folder's done=N total=N */
#define XATTR_WATCH XATTR_PREFIX "watch"     /* marks a watched tree (watch mode) */

/* The values of user.ingest.status a user may write. */
#define STATUS_RETRY "retry"
#define STATUS_RESEND "resend"

#endif
