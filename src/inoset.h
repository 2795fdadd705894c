/* inoset.h: a set of inode numbers (open addressing), for the queue's
 * index rows waiting to be deleted and for the scan after a crash. */
#ifndef INGESTFS_INOSET_H
#define INGESTFS_INOSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct inoset {
	uint64_t *slot; /* 0 is free: inode 0 does not exist */
	size_t cap, n;
};

/* 0 or -ENOMEM (the set is unchanged then). */
int inoset_add(struct inoset *s, uint64_t ino);
bool inoset_has(const struct inoset *s, uint64_t ino);
void inoset_remove(struct inoset *s, uint64_t ino);
/* Every member into OUT (room for s->n), in no order. */
void inoset_list(const struct inoset *s, uint64_t *out);
void inoset_free(struct inoset *s);

#endif
