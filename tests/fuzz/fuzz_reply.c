/* Fuzz the reply parser: any status and body from the service. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"a.json", "img1.jpg", "img10.jpg", "x", "\xff.wav"};
	struct reply_file out[5];
	struct reply_request req = {.names = names};
	long status;

	if (size < 2)
		return 0;
	status = 100 + (data[0] | data[1] << 8) % 500;
	req.nsamples = 1 + data[0] % 5;
	req.date_ids = data[1] & 1;
	req.duplicates_refused = data[1] & 2;
	reply_classify(status, (const char *)data + 2, size - 2, &req, out);
	for (size_t i = 0; i < req.nsamples; i++) {
		/* Results end up in xattrs and logs: one printable line. */
		if (memchr(out[i].text, '\n', strlen(out[i].text)) ||
		    strlen(out[i].text) >= REPLY_TEXT_MAX || out[i].outcome > REPLY_SOLO)
			abort();
	}
	return 0;
}
