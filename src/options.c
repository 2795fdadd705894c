/* options.c: defaults, -o parsing and the config file. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "options.h"
#include "request.h"

void options_init(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->url = strdup(DEFAULT_URL);
	o->settle_ms = 500;
	o->concurrency = 4;
	o->batch = 100;
	o->backoff_ms = 1000;
	o->backoff_max_ms = 300000;
	o->timeout_s = 120;
	o->reply_timeout_s = 1200;
	o->annotation_wait_s = 60;
	o->log_level = LOG_LEVEL_INFO;
}

static void free_secret(char *s)
{
	if (s) {
		/* Do not leave the key in freed heap for a core dump. */
		volatile char *v = s;
		while (*v)
			*v++ = 0;
		free(s);
	}
}

void options_free(struct options *o)
{
	free(o->mountpoint);
	free(o->source);
	free(o->url);
	free(o->api_key_file);
	free_secret(o->api_key);
	free(o->spool);
	free(o->state_dir);
	free(o->cafile);
	free(o->fuse_opts);
	free(o->metadata);
	free(o->owner);
	memset(o, 0, sizeof(*o));
}

static int parse_uint(const char *key, const char *value, unsigned min, unsigned max, unsigned *out,
		      char *err, size_t errsz)
{
	char *end;
	unsigned long v;

	if (!value || !*value) {
		snprintf(err, errsz, "option '%s' needs a number", key);
		return -1;
	}
	errno = 0;
	v = strtoul(value, &end, 10);
	if (errno || *end || !isdigit((unsigned char)value[0]) || v < min || v > max) {
		snprintf(err, errsz, "option '%s': '%s' is not a number from %u to %u", key, value,
			 min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int set_string(char **dst, const char *key, const char *value, char *err, size_t errsz)
{
	char *copy;

	if (!value || !*value) {
		snprintf(err, errsz, "option '%s' needs a value", key);
		return -1;
	}
	copy = strdup(value);
	if (!copy) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

static int set_flag(bool *dst, const char *key, const char *value, char *err, size_t errsz)
{
	if (value) {
		snprintf(err, errsz, "option '%s' takes no value", key);
		return -1;
	}
	*dst = true;
	return 0;
}

static bool has_controls(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

/* A header that could never be sent is refused now, not at every upload. */
static int metadata_fits(const char *json, char *err, size_t errsz)
{
	char *header = NULL;
	int rc = request_metadata(json, NULL, &header);

	free(header);
	if (rc == -E2BIG) {
		snprintf(err, errsz,
			 "option 'metadata': too long for the x-metadata header (at most %d bytes)",
			 REQUEST_METADATA_MAX);
		return -1;
	}
	return 0;
}

/* "site=lab" (or, in the config file, "site=lab, device=pi") added to the
 * JSON object sent as x-metadata with every request. */
static int add_metadata(struct options *o, const char *value, char *err, size_t errsz)
{
	cJSON *obj = o->metadata ? cJSON_Parse(o->metadata) : cJSON_CreateObject();
	char *copy = value ? strdup(value) : NULL, *save = NULL, *text;
	int rc = 0;

	if (!obj || !copy) {
		snprintf(err, errsz, "option 'metadata' needs KEY=VALUE");
		rc = -1;
		goto out;
	}
	for (char *pair = strtok_r(copy, ",", &save); pair && rc == 0;
	     pair = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(pair, '='), *k = pair;

		while (*k == ' ')
			k++;
		if (!eq || eq == k || has_controls(pair)) {
			snprintf(err, errsz, "option 'metadata': '%s' is not KEY=VALUE", pair);
			rc = -1;
			break;
		}
		*eq = '\0';
		cJSON_DeleteItemFromObjectCaseSensitive(obj, k);
		cJSON_AddStringToObject(obj, k, eq + 1);
	}
	text = rc == 0 ? cJSON_PrintUnformatted(obj) : NULL;
	if (text && metadata_fits(text, err, errsz) < 0) {
		free(text);
		text = NULL;
		rc = -1;
	}
	if (text) {
		free(o->metadata);
		o->metadata = text;
	}
out:
	cJSON_Delete(obj);
	free(copy);
	return rc;
}

int options_set(struct options *o, const char *key, const char *value, bool from_config, char *err,
		size_t errsz)
{
	if (strcmp(key, "url") == 0) {
		/* The only schemes the service speaks; anything else would fail
		 * at every attempt. */
		if (value && strncasecmp(value, "https://", 8) != 0 &&
		    strncasecmp(value, "http://", 7) != 0) {
			snprintf(err, errsz, "option 'url': '%s' is not an http:// or https:// URL",
				 value);
			return -1;
		}
		return set_string(&o->url, key, value, err, errsz);
	}
	if (strcmp(key, "api_key_file") == 0)
		return set_string(&o->api_key_file, key, value, err, errsz);
	if (strcmp(key, "api_key") == 0) {
		if (!from_config) {
			snprintf(err, errsz,
				 "the API key must not be given on the command line "
				 "(anyone can read it in ps); use api_key_file= or EI_API_KEY");
			return -1;
		}
		return set_string(&o->api_key, key, value, err, errsz);
	}
	if (strcmp(key, "metadata") == 0)
		return add_metadata(o, value, err, errsz);
	if (strcmp(key, "spool") == 0)
		return set_string(&o->spool, key, value, err, errsz);
	if (strcmp(key, "state") == 0)
		return set_string(&o->state_dir, key, value, err, errsz);
	if (strcmp(key, "cafile") == 0)
		return set_string(&o->cafile, key, value, err, errsz);
	if (strcmp(key, "settle") == 0)
		return parse_uint(key, value, 0, 3600000, &o->settle_ms, err, errsz);
	if (strcmp(key, "concurrency") == 0)
		return parse_uint(key, value, 1, 64, &o->concurrency, err, errsz);
	if (strcmp(key, "batch") == 0)
		return parse_uint(key, value, 1, 1000, &o->batch, err, errsz);
	if (strcmp(key, "backoff") == 0)
		return parse_uint(key, value, 1, 300000, &o->backoff_ms, err, errsz);
	if (strcmp(key, "timeout") == 0)
		return parse_uint(key, value, 1, 3600, &o->timeout_s, err, errsz);
	if (strcmp(key, "reply_timeout") == 0)
		return parse_uint(key, value, 1, 86400, &o->reply_timeout_s, err, errsz);
	if (strcmp(key, "annotation_wait") == 0)
		return parse_uint(key, value, 1, 3600, &o->annotation_wait_s, err, errsz);
	if (strcmp(key, "owner") == 0)
		return set_string(&o->owner, key, value, err, errsz);
	if (strcmp(key, "backoff_max") == 0)
		return parse_uint(key, value, 1, 300000, &o->backoff_max_ms, err, errsz);
	if (strcmp(key, "allow_duplicates") == 0)
		return set_flag(&o->allow_duplicates, key, value, err, errsz);
	if (strcmp(key, "add_date_id") == 0)
		return set_flag(&o->add_date_id, key, value, err, errsz);
	if (strcmp(key, "no_label_infer") == 0)
		return set_flag(&o->no_label_infer, key, value, err, errsz);
	if (strcmp(key, "insecure") == 0)
		return set_flag(&o->insecure, key, value, err, errsz);
	if (strcmp(key, "no_passthrough") == 0)
		return set_flag(&o->no_passthrough, key, value, err, errsz);
	if (strcmp(key, "log_level") == 0) {
		if (!value || log_level_parse(value, &o->log_level) < 0) {
			snprintf(err, errsz,
				 "option 'log_level' is one of error, warn, info, debug");
			return -1;
		}
		return 0;
	}
	return 1;
}

static int append_fuse_opt(struct options *o, const char *opt)
{
	size_t old = o->fuse_opts ? strlen(o->fuse_opts) : 0;
	char *p = realloc(o->fuse_opts, old + strlen(opt) + 2);

	if (!p)
		return -1;
	if (old)
		p[old++] = ',';
	strcpy(p + old, opt);
	o->fuse_opts = p;
	return 0;
}

/* One comma-separated -o argument.  Commas inside values are not
 * supported: none of our values needs one. */
static int parse_dash_o(struct options *o, const char *arg, char *err, size_t errsz)
{
	char *copy = strdup(arg), *save = NULL, *tok;
	int rc = 0;

	if (!copy) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	for (tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int r;

		if (eq)
			*eq = '\0';
		r = options_set(o, tok, eq ? eq + 1 : NULL, false, err, errsz);
		if (eq)
			*eq = '=';
		if (r < 0)
			rc = -1;
		else if (r == 1 && append_fuse_opt(o, tok) < 0)
			rc = -1;
	}
	free(copy);
	return rc;
}

int options_parse_args(struct options *o, int argc, char **argv, char *err, size_t errsz)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-f") == 0) {
			o->foreground = true;
		} else if (strcmp(a, "-d") == 0) {
			o->debug = o->foreground = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->show_help = true;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			o->show_version = true;
		} else if (strncmp(a, "-o", 2) == 0) {
			const char *v = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);

			if (!v) {
				snprintf(err, errsz, "-o needs an argument");
				return -1;
			}
			if (parse_dash_o(o, v, err, errsz) < 0)
				return -1;
		} else if (a[0] == '-') {
			snprintf(err, errsz, "unknown option '%s' (see ingestfs --help)", a);
			return -1;
		} else if (!o->mountpoint) {
			o->mountpoint = strdup(a);
		} else if (!o->source) {
			/* mount(8) style, "ingestfs SOURCE MOUNTPOINT": what fstab
			 * and mount.fuse3 pass.  The source names nothing. */
			o->source = o->mountpoint;
			o->mountpoint = strdup(a);
		} else {
			snprintf(err, errsz, "too many arguments ('%s')", a);
			return -1;
		}
	}
	return 0;
}

static char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

char *options_config_path(void)
{
	const char *env = getenv("INGESTFS_CONFIG"), *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	if (env && *env)
		return strdup(env);
	if (xdg && *xdg)
		return path_join(xdg, "ingestfs/config");
	if (geteuid() == 0)
		return strdup("/etc/ingestfs/config");
	if (home && *home)
		return path_join(home, ".config/ingestfs/config");
	return NULL;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* One line of the config file: blank, "# comment", "key", or "key = value". */
static int config_line(struct options *o, char *line, char *err, size_t errsz)
{
	char *eq, *key, *value = NULL;
	int r;

	line = trim(line);
	if (!*line || *line == '#')
		return 0;
	eq = strchr(line, '=');
	if (eq) {
		*eq = '\0';
		value = trim(eq + 1);
	}
	key = trim(line);
	r = options_set(o, key, value, true, err, errsz);
	if (r == 1)
		snprintf(err, errsz, "unknown setting '%s'", key);
	return r == 0 ? 0 : -1;
}

int options_load_config(struct options *o, const char *path, char *err, size_t errsz)
{
	FILE *f = fopen(path, "re");
	char line[4096], why[512];
	unsigned lineno = 0;
	int rc = 0;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errsz, "cannot read config file %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errsz, "%s:%u: line too long", path, lineno);
			rc = -1;
			break;
		}
		if (config_line(o, line, why, sizeof(why)) < 0) {
			snprintf(err, errsz, "%s:%u: %s", path, lineno, why);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

void options_usage(FILE *out)
{
	fputs("usage: ingestfs [-f] [-d] [-o OPTION[,OPTION...]] MOUNTPOINT\n"
	      "       ingestfs watch [-f] [-o OPTION[,OPTION...]] DIR\n"
	      "       ingestfs status [--wait] [--timeout S] [--failed] [--json] PATH...\n"
	      "\n"
	      "Mount a folder whose files are uploaded to the Edge Impulse ingestion API.\n"
	      "\n"
	      "  -f                   stay in the foreground, log to stderr\n"
	      "  -d                   foreground with FUSE debug output\n"
	      "  -h, --help           this text\n"
	      "  -V, --version        print the version\n"
	      "\n"
	      "options (-o):\n"
	      "  url=URL              service base URL (" DEFAULT_URL ")\n"
	      "  api_key_file=PATH    file holding the API key (else $EI_API_KEY, else config)\n"
	      "  spool=DIR            where files and queue state are kept\n"
	      "  settle=MS            quiet time after the last close before upload (500)\n"
	      "  batch=N              most files in one request, 1..1000 (100)\n"
	      "  concurrency=N        parallel requests (4)\n"
	      "  backoff=MS           first retry delay (1000)\n"
	      "  backoff_max=MS       longest retry delay, at most 5 minutes (300000)\n"
	      "  timeout=S            give up on a request without progress for S s (120)\n"
	      "  reply_timeout=S      wait this long for the reply to a sent request (1200)\n"
	      "  annotation_wait=S    samples wait this long for their .labels file (60)\n"
	      "  owner=USER[:GROUP]   who may write in the categories (root and categories)\n"
	      "  allow_duplicates     do not ask the service to refuse duplicates\n"
	      "  add_date_id          make stored sample names unique\n"
	      "  no_label_infer       files directly under a category get no label\n"
	      "  cafile=PATH          trust these CA certificates\n"
	      "  insecure             do not verify TLS certificates (test servers only)\n"
	      "  no_passthrough       file data through the daemon, not kernel passthrough\n"
	      "  log_level=LEVEL      error, warn, info or debug (info)\n"
	      "  metadata=KEY=VALUE   add to x-metadata of every sample (repeatable)\n"
	      "  state=DIR            watch mode: where the queue state is kept\n"
	      "Other -o options (allow_other, ...) are passed to FUSE.\n"
	      "See ingestfs(1).\n",
	      out);
}
