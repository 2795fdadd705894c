/* spool.h: the local directory behind a mount.  SPOOL/files holds what the
 * mount shows (training/, testing/, anomaly/ and below); SPOOL/state is
 * private to ingestfs and never visible in the mount. */
#ifndef INGESTFS_SPOOL_H
#define INGESTFS_SPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include "queue.h"

struct spool {
	char *dir;
	char *files_path;
	char *state_path;
	int files_fd;
	int state_fd;
	int lock_fd; /* holds the flock that keeps a second daemon out */
};

/* Nothing open: every fd -1.  spool_close leaves it so too. */
void spool_init(struct spool *s);
/* Create (0700) and open the spool at DIR.  Returns 0 or -1 with ERR set. */
int spool_open(struct spool *s, const char *dir, char *err, size_t errsz);
void spool_close(struct spool *s);
/* Watch mode: the files are an existing folder FILES_DIR (categories are
 * created in it), the state lives apart in STATE_DIR (created 0700). */
int spool_open_split(struct spool *s, const char *files_dir, const char *state_dir, char *err,
		     size_t errsz);
/* The default state directory for a watched folder (absolute), malloc'd. */
char *spool_default_state_dir(const char *watched);

/* The default spool for MOUNTPOINT (an absolute path), malloc'd:
 * $XDG_STATE_HOME/ingestfs/<escaped mountpoint>, or /var/lib/ingestfs/... as root. */
char *spool_default_dir(const char *mountpoint);

/* owner=USER[:GROUP]: the mount root and the categories belong to USER
 * (and GROUP, with group write), so that a camera's user may write there
 * on a mount root started.  0, or -1 with ERR set. */
int spool_set_owner(struct spool *s, const char *owner, char *err, size_t errsz);

/* Reconcile the queue with every file already in the spool.  With
 * SWEEP_HIDDEN (a mount's own spool, never a watched folder) files that
 * were unlinked while open when we stopped are removed.  Returns the
 * number of files found, or -errno. */
long spool_scan(struct spool *s, struct queue *q, bool sweep_hidden);
/* After a clean stop: reconcile only the files the queue has in memory
 * (the journal's), each where it says.  Returns how many were found. */
long spool_check_known(struct spool *s, struct queue *q);

/* Names in the spool change only under this lock: the mount's
 * operations that add, remove or rename a name, or open a file for
 * writing, share it; retention owns it while it checks a file and
 * removes it, so no rename or open slips in between. */
void spool_names_share(void);
void spool_names_own(void);
void spool_names_release(void);

#endif
