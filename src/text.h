/* text.h: text from outside (file names, the service's words, annotation
 * files) made safe for a terminal, a log line, an extended attribute or
 * JSON.  Control characters (C0, DEL, and C1 written as UTF-8) and bytes
 * that are not UTF-8 (a raw 8-bit C1 among them) become \xNN, so a name
 * can neither forge a line nor move a terminal's cursor, and the rest
 * stays readable.  Pure. */
#ifndef INGESTFS_TEXT_H
#define INGESTFS_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Escape at most SRCLEN bytes of SRC (stopping at a NUL) into DST, always
 * NUL-terminated; an escape is never cut in half.  Returns the length. */
size_t text_escape(char *dst, size_t dstsz, const char *src, size_t srclen);

/* The line and column (from 1) of byte OFF of TEXT, for an error that
 * points into a file. */
void text_line_col(const char *text, size_t off, unsigned *line, unsigned *col);

/* FNV-1a of the N bytes at S: the hash of every name index here. */
uint64_t text_hash(const char *s, size_t n);

#endif
