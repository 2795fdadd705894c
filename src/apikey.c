/* apikey.c: reading the key without ever printing it. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikey.h"
#include "log.h"

#define KEY_MAX 512

void apikey_free(char *key)
{
	if (key) {
		volatile char *v = key;
		while (*v)
			*v++ = 0;
		free(key);
	}
}

static char *trimmed_copy(const char *s, size_t len)
{
	while (len && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	return len ? strndup(s, len) : NULL;
}

/* A key goes into an HTTP header: refuse anything that could break one. */
static bool key_is_sane(const char *key)
{
	for (const char *p = key; *p; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p == 0x7f)
			return false;
	}
	return true;
}

static int read_key_file(const char *path, char **key, char *err, size_t errsz)
{
	char buf[KEY_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errsz, "cannot read API key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		log_warn("API key file %s can be read by other users; chmod 600 it", path);
	n = read(fd, buf, KEY_MAX + 1);
	close(fd);
	if (n < 0 || n > KEY_MAX) {
		snprintf(err, errsz, "API key file %s: %s", path,
			 n < 0 ? strerror(errno) : "too long to be a key");
		return -1;
	}
	*key = trimmed_copy(buf, (size_t)n);
	memset(buf, 0, sizeof(buf));
	if (!*key) {
		snprintf(err, errsz, "API key file %s is empty", path);
		return -1;
	}
	return 0;
}

/* The environment's key, taken out of the environment at start. */
static char *env_key;

void apikey_take_from_env(void)
{
	const char *env = getenv("EI_API_KEY");

	if (env && *env && !env_key) {
		env_key = strdup(env);
		/* unsetenv only drops the pointer; the bytes would stay readable
		 * in /proc/PID/environ.  Nothing we run should inherit it either. */
		explicit_bzero((char *)env, strlen(env));
		unsetenv("EI_API_KEY");
	}
}

int apikey_load(const struct options *o, char **key, char *err, size_t errsz)
{
	const char *env = env_key ? env_key : getenv("EI_API_KEY");

	*key = NULL;
	if (o->api_key_file) {
		if (read_key_file(o->api_key_file, key, err, errsz) < 0)
			return -1;
	} else if (env && *env) {
		*key = trimmed_copy(env, strlen(env));
	} else if (o->api_key) {
		*key = trimmed_copy(o->api_key, strlen(o->api_key));
	}
	if (!*key) {
		snprintf(err, errsz,
			 "no API key: use -o api_key_file=PATH, set EI_API_KEY, "
			 "or put api_key in the config file");
		return -1;
	}
	if (!key_is_sane(*key)) {
		apikey_free(*key);
		*key = NULL;
		snprintf(err, errsz, "the API key contains spaces or control characters");
		return -1;
	}
	return 0;
}

void apikey_stamp(const struct options *o, struct apikey_stamp *out)
{
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (!o->api_key_file || stat(o->api_key_file, &st) < 0)
		return;
	out->valid = true;
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	out->size = st.st_size;
	out->mtime = st.st_mtim;
}

bool apikey_stamp_equal(const struct apikey_stamp *a, const struct apikey_stamp *b)
{
	return a->valid == b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}
