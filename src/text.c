/* text.c: see text.h. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

/* The length of the UTF-8 sequence at P (at most LEFT bytes), or 0 when
 * it is not one. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	size_t n = p[0] < 0x80   ? 1
		   : p[0] < 0xC2 ? 0
		   : p[0] < 0xE0 ? 2
		   : p[0] < 0xF0 ? 3
		   : p[0] < 0xF5 ? 4
				 : 0;

	if (n == 0 || n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	}
	/* Overlong three- and four-byte forms, and surrogates. */
	if ((n == 3 && p[0] == 0xE0 && p[1] < 0xA0) || (n == 3 && p[0] == 0xED && p[1] >= 0xA0) ||
	    (n == 4 && p[0] == 0xF0 && p[1] < 0x90) || (n == 4 && p[0] == 0xF4 && p[1] >= 0x90))
		return 0;
	return n;
}

static bool is_control(const unsigned char *p, size_t n)
{
	return (n == 1 && (p[0] < 0x20 || p[0] == 0x7F)) || (n == 2 && p[0] == 0xC2 && p[1] < 0xA0);
}

size_t text_escape(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t o = 0, i = 0;

	if (dstsz == 0)
		return 0;
	while (i < srclen && p[i]) {
		size_t n = utf8_len(p + i, srclen - i);

		if (n == 0 || is_control(p + i, n)) {
			size_t k = n ? n : 1;

			if (o + 4 * k >= dstsz)
				break;
			for (size_t j = 0; j < k; j++)
				o += (size_t)snprintf(dst + o, dstsz - o, "\\x%02x", p[i + j]);
			i += k;
			continue;
		}
		if (o + n >= dstsz)
			break;
		memcpy(dst + o, p + i, n);
		o += n;
		i += n;
	}
	dst[o] = '\0';
	return o;
}

uint64_t text_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

void text_line_col(const char *text, size_t off, unsigned *line, unsigned *col)
{
	*line = *col = 1;
	for (size_t i = 0; i < off; i++) {
		*col = text[i] == '\n' ? 1 : *col + 1;
		*line += text[i] == '\n';
	}
}
