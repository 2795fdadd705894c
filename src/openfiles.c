/* openfiles.c: see openfiles.h.  Few files are open at once: a small
 * chained hash table. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "openfiles.h"

#define BUCKETS 256

struct open_file {
	uint64_t ino;
	unsigned refs;
	bool changed; /* a change seen before the last look was taken */
	off_t size;
	struct timespec mtime;
	struct open_file *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_file *buckets[BUCKETS];

static struct open_file **slot(uint64_t ino)
{
	struct open_file **p = &buckets[(ino * 0x9E3779B97F4A7C15ull) >> 56];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

static void look(struct open_file *f, const struct stat *st)
{
	f->size = st->st_size;
	f->mtime = st->st_mtim;
}

static bool differs(const struct open_file *f, const struct stat *st)
{
	return st->st_size != f->size || st->st_mtim.tv_sec != f->mtime.tv_sec ||
	       st->st_mtim.tv_nsec != f->mtime.tv_nsec;
}

int openfiles_open(uint64_t ino, const struct stat *st)
{
	struct open_file **p, *f;
	int rc = 0;

	pthread_mutex_lock(&lock);
	p = slot(ino);
	if (*p) {
		(*p)->refs++;
	} else if ((f = calloc(1, sizeof(*f)))) {
		f->ino = ino;
		f->refs = 1;
		look(f, st);
		*p = f;
	} else {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void openfiles_close(uint64_t ino)
{
	struct open_file **p, *f;

	pthread_mutex_lock(&lock);
	p = slot(ino);
	f = *p;
	if (f && --f->refs == 0) {
		*p = f->next;
		free(f);
	}
	pthread_mutex_unlock(&lock);
}

bool openfiles_changed(uint64_t ino, const struct stat *now)
{
	struct open_file *f;
	bool changed = false;

	pthread_mutex_lock(&lock);
	f = *slot(ino);
	if (f) {
		changed = f->changed || differs(f, now);
		f->changed = false;
		look(f, now);
	}
	pthread_mutex_unlock(&lock);
	return changed;
}

void openfiles_set_times(uint64_t ino, const struct stat *before, const struct stat *after)
{
	struct open_file *f;

	pthread_mutex_lock(&lock);
	f = *slot(ino);
	if (f) {
		f->changed = f->changed || differs(f, before);
		look(f, after);
	}
	pthread_mutex_unlock(&lock);
}
