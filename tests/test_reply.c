/* Unit tests of reply.c: every kind of answer the service gives. */
#include "config.h"

#include <string.h>

#include "reply.h"
#include "tap.h"

static struct reply_file out[4];

static void classify(long status, const char *body, size_t n, const char *const names[])
{
	memset(out, 0, sizeof(out));
	reply_classify(status, body, body ? strlen(body) : 0, n, names, out);
}

static void test_success_and_mixed(void)
{
	const char *names[] = {"car.01.json", "bad.png", "dup.wav"};

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"car.01\","
		 "\"sampleId\":1}]}",
		 1, names);
	is_int(out[0].outcome, REPLY_STORED, "200 with a stored file");
	is_str(out[0].text, "car.01", "stored name is kept");

	classify(400,
		 "{\"success\":false,\"error\":\"x\",\"files\":["
		 "{\"success\":true,\"fileName\":\"car.01\"},"
		 "{\"success\":false,\"fileName\":\"bad.png\",\"error\":\"Unsupported file type\"},"
		 "{\"success\":false,\"fileName\":\"dup.wav\",\"error\":\"An item with this hash "
		 "already exists (ids: 4)\"}]}",
		 3, names);
	is_int(out[0].outcome, REPLY_STORED, "400 can still hold a stored file");
	is_int(out[1].outcome, REPLY_REJECTED, "per-file rejection");
	is_str(out[1].text, "HTTP 400: Unsupported file type", "rejection text");
	is_int(out[2].outcome, REPLY_DUPLICATE, "duplicate recognised");
}

static void test_matching(void)
{
	const char *names[] = {"a.json", "b.json"};

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"b\"},"
		 "{\"success\":true,\"fileName\":\"a\"}]}",
		 2, names);
	is_str(out[0].text, "a", "entries matched by name when out of order");
	is_str(out[1].text, "b", "second file matched by name");

	classify(200, "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"a\"}]}", 2,
		 names);
	is_int(out[0].outcome, REPLY_STORED, "the file the reply names is stored");
	is_int(out[1].outcome, REPLY_RETRY, "a file the reply forgot is retried");
	classify(400,
		 "{\"success\":false,\"error\":\"Bad\",\"files\":[{\"success\":true,"
		 "\"fileName\":\"a\"}]}",
		 2, names);
	is_int(out[1].outcome, REPLY_REJECTED, "a file a 400 forgot is rejected, not retried");
	is_str(out[1].text, "HTTP 400: Bad", "with the top-level error");
}

static void test_mangled_names(void)
{
	const char *names[] = {"\xff\xfe.json", "b.json", "c.json"};

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"c\"},"
		 "{\"success\":true,\"fileName\":\"\u00ff\u00fe\"},"
		 "{\"success\":false,\"fileName\":\"b.json\",\"error\":\"nope\"}]}",
		 3, names);
	is_int(out[0].outcome, REPLY_STORED, "a name the service mangled still finds its entry");
	is_int(out[1].outcome, REPLY_REJECTED, "named entries match out of order");
	is_int(out[2].outcome, REPLY_STORED, "and the rest by name");
}

static void test_status_codes(void)
{
	const char *names[] = {"a.json"};

	classify(401, "{\"success\":false,\"error\":\"Invalid API key\"}", 1, names);
	is_int(out[0].outcome, REPLY_AUTH, "401 pauses");
	classify(429, "slow down", 1, names);
	is_int(out[0].outcome, REPLY_RETRY, "429 retries");
	classify(503, NULL, 1, names);
	is_int(out[0].outcome, REPLY_RETRY, "503 retries");
	classify(421, "{\"error\":\"Missing header x-file-name\"}", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "421 is final");
	is_str(out[0].text, "HTTP 421: Missing header x-file-name", "421 text");
	classify(400, "{\"success\":false,\"error\":\"No files uploaded\"}", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "400 without per-file entries fails all");
	is_str(out[0].text, "HTTP 400: No files uploaded", "400 text is the server's");
	classify(200, "<html>oops</html>", 1, names);
	is_int(out[0].outcome, REPLY_RETRY, "200 with junk is retried, never trusted");
	classify(200, "{\"success\":true}", 1, names);
	is_int(out[0].outcome, REPLY_STORED, "200 success without entries is stored");
	classify(200, "{\"files\":\"nope\",\"success\":false}", 1, names);
	is_int(out[0].outcome, REPLY_RETRY, "200 of the wrong shape is retried");
	classify(404, "Not found\r\nx-evil: 1", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "404 is final");
	ok(strchr(out[0].text, '\n') == NULL && strchr(out[0].text, '\r') == NULL,
	   "control characters never reach the result");
}

int main(void)
{
	test_success_and_mixed();
	test_matching();
	test_mangled_names();
	test_status_codes();
	return done_testing();
}
