/* openfiles.h: files open for writing whose writes may bypass the daemon
 * (kernel passthrough, a shared mmap), and what their content looked like
 * when the daemon last looked.  A change of size or mtime since then is a
 * write we did not see; a change of times the daemon made itself
 * (utimens: touch, cp -p) is not.
 *
 * Thread-safe: one mutex, held only to read or update the table. */
#ifndef INGESTFS_OPENFILES_H
#define INGESTFS_OPENFILES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* A handle of INO opens (the first one's ST is the first look) or closes.
 * Returns 0 or -ENOMEM. */
int openfiles_open(uint64_t ino, const struct stat *st);
void openfiles_close(uint64_t ino);

/* NOW is INO's stat at a close: whether its content changed since the
 * last look.  NOW becomes the last look. */
bool openfiles_changed(uint64_t ino, const struct stat *now);

/* The daemon is setting INO's times: BEFORE is its stat just before, AFTER
 * just after.  A change already in BEFORE stays a change; the new times
 * are not one. */
void openfiles_set_times(uint64_t ino, const struct stat *before, const struct stat *after);

#endif
