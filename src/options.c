/* options.c: defaults, -o parsing and the config file. */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
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

/* ---- the one table of settings ----
 *
 * Parsing, defaults and --help come from it; tests/options_docs.t checks
 * that ingestfs(1), ingestfs.conf(5) and the bash completion list every
 * name in it (taken from --help). */

enum option_kind {
	OPT_STRING,   /* char * */
	OPT_UINT,     /* unsigned, MIN..MAX */
	OPT_FLAG,     /* bool, no value */
	OPT_SIZE,     /* uint64_t bytes: 20G, 500M, 4096 */
	OPT_DURATION, /* uint64_t seconds: 90s, 10m, 12h, 7d, 90 */
	OPT_SPECIAL,  /* its own parser (url, api_key, metadata, log_level) */
};

struct option_spec {
	const char *name;
	enum option_kind kind;
	size_t offset;
	unsigned min, max, def; /* OPT_UINT */
	const char *arg;        /* how --help shows the value */
	const char *help;       /* one line; "(DEFAULT)" is added for numbers */
	int (*special)(struct options *o, const char *key, const char *value, bool from_config,
		       char *err, size_t errsz);
};

static int set_url(struct options *o, const char *key, const char *value, bool from_config,
		   char *err, size_t errsz);
static int set_api_key(struct options *o, const char *key, const char *value, bool from_config,
		       char *err, size_t errsz);
static int set_metadata(struct options *o, const char *key, const char *value, bool from_config,
			char *err, size_t errsz);
static int set_log_level(struct options *o, const char *key, const char *value, bool from_config,
			 char *err, size_t errsz);

#define AT(field) offsetof(struct options, field)

static const struct option_spec option_table[] = {
	{"url", OPT_SPECIAL, 0, 0, 0, 0, "URL", "service base URL (" DEFAULT_URL ")", set_url},
	{"api_key_file", OPT_STRING, AT(api_key_file), 0, 0, 0, "PATH",
	 "file holding the API key (else $EI_API_KEY, else config)", NULL},
	{"api_key", OPT_SPECIAL, 0, 0, 0, 0, NULL, NULL, set_api_key},
	{"spool", OPT_STRING, AT(spool), 0, 0, 0, "DIR", "where files and queue state are kept",
	 NULL},
	{"settle", OPT_UINT, AT(settle_ms), 0, 3600000, 500, "MS",
	 "quiet time after the last close before upload", NULL},
	{"batch", OPT_UINT, AT(batch), 1, 1000, 100, "N", "most files in one request, 1..1000",
	 NULL},
	{"concurrency", OPT_UINT, AT(concurrency), 1, 64, 4, "N", "parallel requests", NULL},
	{"backoff", OPT_UINT, AT(backoff_ms), 1, 300000, 1000, "MS", "first retry delay", NULL},
	{"backoff_max", OPT_UINT, AT(backoff_max_ms), 1, 300000, 300000, "MS",
	 "longest retry delay, at most 5 minutes", NULL},
	{"timeout", OPT_UINT, AT(timeout_s), 1, 3600, 120, "S",
	 "give up on a request without progress for S s", NULL},
	{"reply_timeout", OPT_UINT, AT(reply_timeout_s), 1, 86400, 1200, "S",
	 "wait this long for the reply to a sent request", NULL},
	{"annotation_wait", OPT_UINT, AT(annotation_wait_s), 1, 3600, 60, "S",
	 "samples wait this long for their .labels file", NULL},
	{"keep", OPT_DURATION, AT(keep_s), 0, 0, 0, "DURATION",
	 "remove uploaded files this long after (30m, 12h, 7d; forever)", NULL},
	{"max_spool", OPT_SIZE, AT(max_spool_bytes), 0, 0, 0, "SIZE",
	 "remove the oldest uploaded files past this size (20G; no limit)", NULL},
	{"min_free", OPT_SIZE, AT(min_free_bytes), 0, 0, 0, "SIZE",
	 "and while the spool's disk has less free (1G; none)", NULL},
	{"metrics", OPT_STRING, AT(metrics), 0, 0, 0, "PATH",
	 "keep Prometheus metrics in this file (node_exporter textfile)", NULL},
	{"owner", OPT_STRING, AT(owner), 0, 0, 0, "USER[:GROUP]",
	 "who may write in the categories (root and categories)", NULL},
	{"allow_duplicates", OPT_FLAG, AT(allow_duplicates), 0, 0, 0, NULL,
	 "do not ask the service to refuse duplicates", NULL},
	{"add_date_id", OPT_FLAG, AT(add_date_id), 0, 0, 0, NULL, "make stored sample names unique",
	 NULL},
	{"no_label_infer", OPT_FLAG, AT(no_label_infer), 0, 0, 0, NULL,
	 "files directly under a category get no label", NULL},
	{"no_datasets", OPT_FLAG, AT(no_datasets), 0, 0, 0, NULL,
	 "upload dataset annotation files (YOLO, COCO...) as they are", NULL},
	{"cafile", OPT_STRING, AT(cafile), 0, 0, 0, "PATH", "trust these CA certificates", NULL},
	{"insecure", OPT_FLAG, AT(insecure), 0, 0, 0, NULL,
	 "do not verify TLS certificates (test servers only)", NULL},
	{"no_passthrough", OPT_FLAG, AT(no_passthrough), 0, 0, 0, NULL,
	 "file data through the daemon, not kernel passthrough", NULL},
	{"log_level", OPT_SPECIAL, 0, 0, 0, 0, "LEVEL", "error, warn, info or debug (info)",
	 set_log_level},
	{"metadata", OPT_SPECIAL, 0, 0, 0, 0, "KEY=VALUE",
	 "add to x-metadata of every sample (repeatable)", set_metadata},
	{"state", OPT_STRING, AT(state_dir), 0, 0, 0, "DIR",
	 "watch mode: where the queue state is kept", NULL},
};

#define NOPTIONS (sizeof(option_table) / sizeof(option_table[0]))

void options_init(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->url = strdup(DEFAULT_URL);
	for (size_t i = 0; i < NOPTIONS; i++) {
		if (option_table[i].kind == OPT_UINT)
			*(unsigned *)((char *)o + option_table[i].offset) = option_table[i].def;
	}
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
	free(o->metrics);
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

static int set_url(struct options *o, const char *key, const char *value, bool from_config,
		   char *err, size_t errsz)
{
	/* The only schemes the service speaks; anything else would fail at
	 * every attempt. */
	if (value && strncasecmp(value, "https://", 8) != 0 &&
	    strncasecmp(value, "http://", 7) != 0) {
		snprintf(err, errsz, "option 'url': '%s' is not an http:// or https:// URL", value);
		return -1;
	}
	return set_string(&o->url, key, value, err, errsz);
}

static int set_api_key(struct options *o, const char *key, const char *value, bool from_config,
		       char *err, size_t errsz)
{
	if (!from_config) {
		snprintf(err, errsz,
			 "the API key must not be given on the command line "
			 "(anyone can read it in ps); use api_key_file= or EI_API_KEY");
		return -1;
	}
	return set_string(&o->api_key, key, value, err, errsz);
}

static int set_metadata(struct options *o, const char *key, const char *value, bool from_config,
			char *err, size_t errsz)
{
	return add_metadata(o, value, err, errsz);
}

static int set_log_level(struct options *o, const char *key, const char *value, bool from_config,
			 char *err, size_t errsz)
{
	if (!value || log_level_parse(value, &o->log_level) < 0) {
		snprintf(err, errsz, "option 'log_level' is one of error, warn, info, debug");
		return -1;
	}
	return 0;
}

/* NUMBER[UNIT], UNIT from UNITS (letters, each FACTORS[i] times the
 * plain number); no unit is UNITS' first factor. */
static int parse_scaled(const char *key, const char *value, const char *units,
			const uint64_t *factors, const char *what, uint64_t *out, char *err,
			size_t errsz)
{
	char *end;
	unsigned long long v;
	const char *u;
	uint64_t f = factors[0];

	if (!value || !isdigit((unsigned char)value[0]))
		goto bad;
	errno = 0;
	v = strtoull(value, &end, 10);
	if (errno)
		goto bad;
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u || end[1])
			goto bad;
		f = factors[u - units];
	}
	if (v > UINT64_MAX / f)
		goto bad;
	*out = (uint64_t)v * f;
	return 0;
bad:
	snprintf(err, errsz, "option '%s': '%s' is not %s", key, value ? value : "", what);
	return -1;
}

static int parse_size(const char *key, const char *value, uint64_t *out, char *err, size_t errsz)
{
	static const uint64_t f[] = {1, 1, 1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40};

	return parse_scaled(key, value, "BBKMGT", f, "a size like 500M, 20G or 1T", out, err,
			    errsz);
}

static int parse_duration(const char *key, const char *value, uint64_t *out, char *err,
			  size_t errsz)
{
	static const uint64_t f[] = {1, 1, 60, 3600, 86400, 7 * 86400};

	return parse_scaled(key, value, "SSMHDW", f, "a duration like 90s, 30m, 12h or 7d", out,
			    err, errsz);
}

static const struct option_spec *option_named(const char *key)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		if (strcmp(option_table[i].name, key) == 0)
			return &option_table[i];
	}
	return NULL;
}

int options_set(struct options *o, const char *key, const char *value, bool from_config, char *err,
		size_t errsz)
{
	const struct option_spec *spec = option_named(key);
	void *field;

	if (!spec)
		return 1;
	field = (char *)o + spec->offset;
	switch (spec->kind) {
	case OPT_STRING: return set_string(field, key, value, err, errsz);
	case OPT_UINT: return parse_uint(key, value, spec->min, spec->max, field, err, errsz);
	case OPT_FLAG: return set_flag(field, key, value, err, errsz);
	case OPT_SIZE: return parse_size(key, value, field, err, errsz);
	case OPT_DURATION: return parse_duration(key, value, field, err, errsz);
	case OPT_SPECIAL: return spec->special(o, key, value, from_config, err, errsz);
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

static void usage_option(FILE *out, const struct option_spec *spec)
{
	char left[64];

	snprintf(left, sizeof(left), "%s%s%s", spec->name, spec->arg ? "=" : "",
		 spec->arg ? spec->arg : "");
	fprintf(out, "  %-20s %s", left, spec->help);
	if (spec->kind == OPT_UINT)
		fprintf(out, " (%u)", spec->def);
	fputc('\n', out);
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
	      "options (-o):\n",
	      out);
	for (size_t i = 0; i < NOPTIONS; i++) {
		if (option_table[i].help)
			usage_option(out, &option_table[i]);
	}
	fputs("Other -o options (allow_other, ...) are passed to FUSE.\n"
	      "See ingestfs(1).\n",
	      out);
}
