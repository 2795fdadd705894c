/* inoset.c: see inoset.h.  Linear probing; removal shifts the entries
 * after the hole back, so that no "deleted" marks pile up. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "inoset.h"

static size_t home(const struct inoset *s, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 17) & (s->cap - 1);
}

static int grow(struct inoset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	uint64_t *old = s->slot, *fresh = calloc(cap, sizeof(*fresh));
	size_t old_cap = s->cap;

	if (!fresh)
		return -ENOMEM;
	s->slot = fresh;
	s->cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		size_t j;

		if (!old[i])
			continue;
		for (j = home(s, old[i]); s->slot[j]; j = (j + 1) & (cap - 1))
			;
		s->slot[j] = old[i];
	}
	free(old);
	return 0;
}

int inoset_add(struct inoset *s, uint64_t ino)
{
	size_t i;

	if (!ino)
		return 0;
	if ((s->n + 1) * 4 > s->cap * 3 && grow(s) < 0)
		return -ENOMEM;
	for (i = home(s, ino); s->slot[i]; i = (i + 1) & (s->cap - 1)) {
		if (s->slot[i] == ino)
			return 0;
	}
	s->slot[i] = ino;
	s->n++;
	return 0;
}

bool inoset_has(const struct inoset *s, uint64_t ino)
{
	if (!s->n || !ino)
		return false;
	for (size_t i = home(s, ino); s->slot[i]; i = (i + 1) & (s->cap - 1)) {
		if (s->slot[i] == ino)
			return true;
	}
	return false;
}

void inoset_remove(struct inoset *s, uint64_t ino)
{
	size_t i, j;

	if (!s->n || !ino)
		return;
	for (i = home(s, ino); s->slot[i] != ino; i = (i + 1) & (s->cap - 1)) {
		if (!s->slot[i])
			return;
	}
	s->slot[i] = 0;
	s->n--;
	/* Move back each later entry of the run that the hole now hides
	 * from its home slot. */
	for (j = (i + 1) & (s->cap - 1); s->slot[j]; j = (j + 1) & (s->cap - 1)) {
		size_t h = home(s, s->slot[j]);

		if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
			s->slot[i] = s->slot[j];
			s->slot[j] = 0;
			i = j;
		}
	}
}

void inoset_list(const struct inoset *s, uint64_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->cap; i++) {
		if (s->slot[i])
			out[n++] = s->slot[i];
	}
}

void inoset_free(struct inoset *s)
{
	free(s->slot);
	s->slot = NULL;
	s->cap = s->n = 0;
}
