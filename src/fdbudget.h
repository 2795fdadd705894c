/* fdbudget.h: the daemon's file descriptors are shared by everyone who
 * opens files in the mount, so one user holding a thousand open files
 * must not stop the others, nor the uploads.  At start the soft limit is
 * raised to the hard one; a reserve is kept for the uploader, the journal
 * and FUSE itself; the rest is what open files and folders of the mount
 * may hold, and no user but root may hold more than half of it.  Running
 * out gives EMFILE to whoever asked, and is logged once until it passes.
 *
 * Thread-safe. */
#ifndef INGESTFS_FDBUDGET_H
#define INGESTFS_FDBUDGET_H

#include <sys/types.h>

/* Raise the limit and keep RESERVE descriptors aside.  Returns the new
 * soft limit. */
unsigned long fdbudget_init(unsigned reserve);
/* One more descriptor for a file or folder UID opens: 0, or -EMFILE. */
int fdbudget_take(uid_t uid);
void fdbudget_give(uid_t uid);

#endif
