/* Unit tests of options.c: -o parsing and the config file. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"
#include "tap.h"

static void test_args(void)
{
	struct options o;
	char err[512];
	char *argv[] = {"-f", "-o", "url=http://x:1,settle=0,batch=7,allow_other", "/mnt", NULL};
	char *bad[] = {"-o", "batch=1001", "/mnt", NULL};
	char *key[] = {"-o", "api_key=ei_123", "/mnt", NULL};

	options_init(&o);
	is_int(options_parse_args(&o, 4, argv, err, sizeof(err)), 0, "good arguments parse");
	ok(o.foreground, "-f");
	is_str(o.url, "http://x:1", "url");
	is_int(o.settle_ms, 0, "settle");
	is_int(o.batch, 7, "batch");
	is_str(o.fuse_opts, "allow_other", "unknown options go to FUSE");
	is_str(o.mountpoint, "/mnt", "mountpoint");
	options_free(&o);

	options_init(&o);
	is_int(options_parse_args(&o, 3, bad, err, sizeof(err)), -1, "batch over 1000 refused");
	ok(strstr(err, "batch") != NULL, "error names the option: %s", err);
	options_free(&o);

	options_init(&o);
	is_int(options_parse_args(&o, 3, key, err, sizeof(err)), -1, "api_key in argv refused");
	ok(strstr(err, "ei_123") == NULL, "the key is not echoed");
	options_free(&o);
}

static void test_retention(void)
{
	struct options o;
	char err[512];
	char *argv[] = {"-o", "keep=7d,max_spool=20G,min_free=512m", "/mnt"};
	const char *bad[] = {"keep=7x",        "keep=",       "keep=-1",
			     "max_spool=1.5G", "max_spool=G", "max_spool=99999999999T",
			     "keep=1dd"};

	options_init(&o);
	is_int((int)o.keep_s + (int)o.max_spool_bytes, 0, "no retention by default");
	is_int(options_parse_args(&o, 3, argv, err, sizeof(err)), 0, "retention options parse");
	ok(o.keep_s == 7 * 86400, "keep=7d is a week");
	ok(o.max_spool_bytes == 20ull << 30, "max_spool=20G is 20 GiB");
	ok(o.min_free_bytes == 512ull << 20, "min_free=512m is 512 MiB, in any case");
	is_int(options_set(&o, "keep", "90", false, err, sizeof(err)), 0, "a plain number");
	ok(o.keep_s == 90, "is seconds");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *eq = strchr(bad[i], '='), key[32];

		snprintf(key, sizeof(key), "%.*s", (int)(eq - bad[i]), bad[i]);
		is_int(options_set(&o, key, eq + 1, false, err, sizeof(err)), -1, "%s refused: %s",
		       bad[i], err);
	}
	options_free(&o);
}

static void test_metadata(void)
{
	struct options o;
	char err[512];
	char *argv[] = {"-o", "metadata=site=lab,metadata=device=pi 4,metadata=site=field", "/mnt"};
	char *bad[] = {"-o", "metadata=novalue", "/mnt"};

	options_init(&o);
	is_int(options_parse_args(&o, 3, argv, err, sizeof(err)), 0, "metadata options parse");
	is_str(o.metadata, "{\"device\":\"pi 4\",\"site\":\"field\"}",
	       "as one JSON object, last wins");
	options_free(&o);
	options_init(&o);
	is_int(options_parse_args(&o, 3, bad, err, sizeof(err)), -1,
	       "metadata without = is refused");
	options_free(&o);
	options_init(&o);
	is_int(options_set(&o, "metadata", "a=1, b=2", true, err, sizeof(err)), 0,
	       "the config file may list several");
	is_str(o.metadata, "{\"a\":\"1\",\"b\":\"2\"}", "pairs from one line");
	options_free(&o);
}

static void test_config(void)
{
	char path[] = "/tmp/ingestfs-test-config-XXXXXX", err[512];
	struct options o;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs("# comment\n\nurl = http://emu:8080\napi_key = ei_abc\nconcurrency=2\n"
	      "add_date_id\nbogus = 1\n",
	      f);
	fclose(f);
	options_init(&o);
	is_int(options_load_config(&o, path, err, sizeof(err)), -1, "a bad line is an error");
	ok(strstr(err, ":7:") != NULL && strstr(err, "bogus") != NULL,
	   "error gives file, line and name: %s", err);
	is_str(o.url, "http://emu:8080", "lines before the bad one applied");
	is_str(o.api_key, "ei_abc", "api_key allowed in the config file");
	is_int(o.concurrency, 2, "concurrency");
	ok(o.add_date_id, "flag without a value");
	options_free(&o);
	options_init(&o);
	is_int(options_load_config(&o, "/nonexistent/ingestfs/config", err, sizeof(err)), 0,
	       "a missing config file is fine");
	options_free(&o);
	unlink(path);
}

int main(void)
{
	test_args();
	test_metadata();
	test_retention();
	test_config();
	return done_testing();
}
