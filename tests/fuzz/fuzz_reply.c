/* Fuzz the reply parser: any status and body from the service. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"a.json", "b.wav", "car.01.jpg", "x", ".labels"};
	struct reply_file out[5];
	long status;

	if (size < 2)
		return 0;
	status = 100 + (data[0] | data[1] << 8) % 500;
	reply_classify(status, (const char *)data + 2, size - 2, 1 + data[0] % 5, names, out);
	for (size_t i = 0; i < 5 && i < 1u + data[0] % 5; i++) {
		/* Results end up in xattrs and logs: one printable line. */
		if (memchr(out[i].text, '\n', strlen(out[i].text)) ||
		    strlen(out[i].text) >= REPLY_TEXT_MAX)
			abort();
	}
	return 0;
}
