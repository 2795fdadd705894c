/* Fuzz the path rules: any bytes as a path inside the mount. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);
	struct layout_path lp;
	char *enc;

	memcpy(path, data, size);
	path[size] = '\0';
	if (layout_classify(path, &lp) == 0 && lp.label) {
		enc = layout_url_encode(lp.label, lp.label_len);
		/* An encoded label must be safe in a header. */
		if (enc && layout_has_control_chars(enc, strlen(enc)))
			abort();
		free(enc);
	}
	layout_check_dir(path);
	layout_check_file(path);
	layout_content_type(path);
	free(path);
	return 0;
}
