/* passthrough.h: the fast data path (kernel FUSE passthrough, Linux 6.9+).
 *
 * With passthrough the kernel sends read(2), write(2) and mmap of a file
 * in the mount straight to its spool file, at the speed of the disk; the
 * daemon still sees every create, open, flush, release, rename and unlink,
 * which is all the queue needs.  libfuse 3.14 (Debian 12) predates the
 * feature, so this module adds the protocol pieces itself through
 * libfuse's custom I/O hooks: it accepts FUSE_PASSTHROUGH and
 * FUSE_HANDLE_KILLPRIV_V2 in the reply to INIT, and it marks the reply to
 * an open or create that fs.c armed with FOPEN_PASSTHROUGH and the backing
 * file's id.  Every other message goes to and from /dev/fuse untouched.
 *
 * Thread model: the hooks run on every FUSE worker thread.  The backing
 * table has its own mutex; the armed reply is per thread, because libfuse
 * sends the reply to an open from the thread that ran the handler. */
#ifndef INGESTFS_PASSTHROUGH_H
#define INGESTFS_PASSTHROUGH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fuse_session;

/* Put the hooks in place: after the mount, before the loop.  WANT false
 * keeps the daemon path for file data (the hooks still accept
 * FUSE_HANDLE_KILLPRIV_V2).  Returns 0 or -errno. */
int passthrough_install(struct fuse_session *se, bool want);
void passthrough_uninstall(void);
/* Whether new opens may use passthrough: negotiated, and not turned off
 * after the kernel refused a backing file. */
bool passthrough_ready(void);

/* The backing id of the spool file behind inode INO, one per inode however
 * many files have it open (the kernel wants a single backing file per
 * inode); FD is an open fd of that spool file.  Without MAY_OPEN only an
 * inode already open with passthrough gets one (else -EAGAIN).  Every
 * successful call is matched by one passthrough_put.  Returns the id or
 * -errno. */
int passthrough_get(uint64_t ino, int fd, bool may_open);
void passthrough_put(uint64_t ino);

/* The next reply this thread sends answers the open or create that made
 * file handle FH: mark it as passthrough to BACKING_ID.  DIRECT_IO keeps
 * read(2)/write(2) coming to the daemon (only mmap goes to the spool). */
void passthrough_arm(uint64_t fh, int backing_id, bool direct_io);

/* ---- protocol pieces, pure, for the unit tests ---- */

struct passthrough_offer {
	uint64_t unique; /* of the INIT request */
	uint32_t minor;
	uint64_t flags; /* flags | flags2 << 32 */
};

/* Whether BUF (LEN bytes read from /dev/fuse) is an INIT request; fills
 * OFFER when it is. */
bool passthrough_parse_init(const void *buf, size_t len, struct passthrough_offer *offer);
/* Amend libfuse's INIT reply payload (struct fuse_init_out, LEN bytes) in
 * place.  Returns whether passthrough was accepted. */
bool passthrough_patch_init(void *payload, size_t len, const struct passthrough_offer *offer,
			    bool want);
/* Amend an open reply (fuse_open_out) or create reply (fuse_entry_out and
 * fuse_open_out) payload in place when its file handle is FH.  Returns
 * whether it was changed. */
bool passthrough_patch_open(void *payload, size_t len, uint64_t fh, int backing_id, bool direct_io);

#endif
