/* driver.c: run a libFuzzer-style harness without libFuzzer.
 *
 *   fuzz_X FILE_OR_DIR...        run every input once (the corpus)
 *   FUZZ_SECONDS=N fuzz_X DIR    then mutate corpus inputs for N seconds
 *
 * The mutations are simple (bit flips, byte changes, inserts, deletes,
 * splices of two inputs), enough to shake parsers under ASan in CI; use
 * scripts/fuzz.sh with clang for coverage-guided fuzzing. */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz.h"

#define INPUT_MAX_BYTES (64 * 1024)
#define MAX_CORPUS 4096

static unsigned char *corpus[MAX_CORPUS];
static size_t corpus_len[MAX_CORPUS];
static size_t ncorpus;

static void add_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (!f || ncorpus >= MAX_CORPUS) {
		if (f)
			fclose(f);
		return;
	}
	buf = malloc(INPUT_MAX_BYTES);
	n = fread(buf, 1, INPUT_MAX_BYTES, f);
	fclose(f);
	corpus[ncorpus] = buf;
	corpus_len[ncorpus++] = n;
	LLVMFuzzerTestOneInput(buf, n);
}

static void add_path(const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;

	if (stat(path, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		add_file(path);
		return;
	}
	d = opendir(path);
	while (d && (de = readdir(d))) {
		char sub[4096];

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		add_path(sub);
	}
	if (d)
		closedir(d);
}

static size_t mutate(unsigned char *buf, size_t n, unsigned *seed)
{
	int rounds = 1 + rand_r(seed) % 8;

	for (int r = 0; r < rounds; r++) {
		size_t pos = n ? (size_t)rand_r(seed) % n : 0;

		switch (rand_r(seed) % 6) {
		case 0:
			if (n)
				buf[pos] ^= (unsigned char)(1u << (rand_r(seed) % 8));
			break;
		case 1:
			if (n)
				buf[pos] = (unsigned char)rand_r(seed);
			break;
		case 2: /* interesting bytes for text formats */
			if (n)
				buf[pos] =
					(unsigned char)"\0\n\r %=/.\"\\{}[],:0\xff"[rand_r(seed) %
										    19];
			break;
		case 3:
			if (n < INPUT_MAX_BYTES) {
				memmove(buf + pos + 1, buf + pos, n - pos);
				buf[pos] = (unsigned char)rand_r(seed);
				n++;
			}
			break;
		case 4:
			if (n) {
				memmove(buf + pos, buf + pos + 1, n - pos - 1);
				n--;
			}
			break;
		case 5: { /* splice in part of another input */
			size_t k = ncorpus ? (size_t)rand_r(seed) % ncorpus : 0;
			size_t take =
				ncorpus && corpus_len[k] ? (size_t)rand_r(seed) % corpus_len[k] : 0;

			if (pos + take > INPUT_MAX_BYTES)
				take = INPUT_MAX_BYTES - pos;
			if (take)
				memcpy(buf + pos, corpus[k], take);
			if (pos + take > n)
				n = pos + take;
			break;
		}
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	const char *secs = getenv("FUZZ_SECONDS");
	unsigned char *buf = malloc(INPUT_MAX_BYTES);
	unsigned seed = 12345;
	unsigned long runs = 0;
	time_t end;

	for (int i = 1; i < argc; i++)
		add_path(argv[i]);
	end = time(NULL) + (secs ? atoi(secs) : 0);
	while (secs && ncorpus && time(NULL) < end) {
		size_t k = (size_t)rand_r(&seed) % ncorpus, n = corpus_len[k];

		memcpy(buf, corpus[k], n);
		n = mutate(buf, n, &seed);
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	printf("ok 1 - %zu corpus inputs, %lu mutated runs, no crash\n1..1\n", ncorpus, runs);
	for (size_t i = 0; i < ncorpus; i++)
		free(corpus[i]);
	free(buf);
	return 0;
}
