/* apikey.h: where the API key comes from (ingestfs(1): api_key_file, then
 * $EI_API_KEY, then the config file), and noticing that it changed. */
#ifndef INGESTFS_APIKEY_H
#define INGESTFS_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "options.h"

/* On success *KEY is a malloc'd key (free with apikey_free).  On failure
 * returns -1 with a message for the user in ERR that never contains the key. */
int apikey_load(const struct options *o, char **key, char *err, size_t errsz);
void apikey_free(char *key);
/* Move $EI_API_KEY out of the environment into private memory. */
void apikey_take_from_env(void);

/* A fingerprint of the key file, to notice that it was replaced. */
struct apikey_stamp {
	bool valid;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};
void apikey_stamp(const struct options *o, struct apikey_stamp *out);
bool apikey_stamp_equal(const struct apikey_stamp *a, const struct apikey_stamp *b);

#endif
