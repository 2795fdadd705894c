/* Fuzz the config file parser and the -o option parser. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/ingestfs-fuzz-config-XXXXXX", err[512];
	struct options o;
	char *copy, *argv[3];
	int fd = mkstemp(path);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	options_init(&o);
	options_load_config(&o, path, err, sizeof(err));
	options_free(&o);
	unlink(path);

	copy = malloc(size + 1);
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[0] = "-o";
	argv[1] = copy;
	argv[2] = "/mnt";
	options_init(&o);
	options_parse_args(&o, 3, argv, err, sizeof(err));
	options_free(&o);
	free(copy);
	return 0;
}
