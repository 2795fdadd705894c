/* Unit tests of reply.c: every kind of answer the service gives, in the
 * shape the official clients expect (doc/internals.md "Replies") and in
 * the older shape with an entry, named, for every part. */
#include "config.h"

#include <string.h>

#include "reply.h"
#include "tap.h"

static struct reply_file out[4];

static bool allow_duplicates;

static void classify_ids(long status, const char *body, size_t n, const char *const names[],
			 bool date_ids)
{
	struct reply_request req = {.nsamples = n,
				    .names = names,
				    .date_ids = date_ids,
				    .duplicates_refused = !allow_duplicates};

	memset(out, 0, sizeof(out));
	reply_classify(status, body, body ? strlen(body) : 0, &req, out);
}

static void classify(long status, const char *body, size_t n, const char *const names[])
{
	classify_ids(status, body, n, names, false);
}

static void test_official_shapes(void)
{
	const char *names[] = {"car.01.json", "dup.wav"};

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"car.01\","
		 "\"sampleId\":1,\"projectId\":1},{\"success\":false,\"error\":\"An item with "
		 "this hash already exists (ids: 4)\"}]}",
		 2, names);
	is_int(out[0].outcome, REPLY_STORED, "200: a stored entry");
	is_str(out[0].text, "car.01", "its stored name is the result");
	is_int(out[1].outcome, REPLY_DUPLICATE, "a refused entry without a name, by position");

	classify(200, "{\"success\":true,\"files\":[{\"success\":true},{\"success\":true}]}", 2,
		 names);
	is_int(out[1].outcome, REPLY_STORED, "entries without names are tied by position");
	is_str(out[1].text, "dup", "and the stored name is the stem we sent");

	classify(400,
		 "{\"success\":false,\"error\":\"An item with this hash already exists (ids: 3)\"}",
		 1, names);
	is_int(out[0].outcome, REPLY_DUPLICATE, "a one-sample 400 with the duplicate message");
	classify(400, "An item with this hash already exists", 1, names);
	is_int(out[0].outcome, REPLY_DUPLICATE, "the duplicate message as a plain-text body");
	classify(400, "{\"success\":false,\"error\":\"An item with this hash already exists\"}", 2,
		 names);
	is_int(out[0].outcome, REPLY_SOLO, "a several-sample 400: each sample goes again alone");
	is_int(out[1].outcome, REPLY_SOLO, "all of them");
	classify(400, "{\"success\":false,\"error\":\"File is empty\"}", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "a one-sample 400 is final");
	is_str(out[0].text, "HTTP 400: File is empty", "with the service's words");

	classify(200, "{\"success\":false,\"error\":\"Project is full\"}", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "200 with success:false is a failure, not a retry");
	is_str(out[0].text, "HTTP 200: Project is full", "with the service's words");
	classify(200, "<html>oops</html>", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "200 that is not JSON is final, never trusted");
	ok(strstr(out[0].text, "not the expected JSON") && strstr(out[0].text, "oops"),
	   "and says so with the body's start: %s", out[0].text);
	classify(200, "{\"success\":true}", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "200 without entries is not counted as stored");
	classify(200, "[1,2]", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "200 with JSON of another shape");
}

/* img1 is a prefix of img10: a name must match exactly. */
static void test_prefix_names(void)
{
	const char *names[] = {"img1.jpg", "img10.jpg"};

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":false,\"error\":\"An item with this "
		 "hash already exists\"},{\"success\":true,\"fileName\":\"img10\"}]}",
		 2, names);
	is_int(out[0].outcome, REPLY_DUPLICATE, "img1 (a duplicate) keeps its own entry");
	is_int(out[1].outcome, REPLY_STORED, "img10 is the stored one");
	is_str(out[1].text, "img10", "named img10");

	/* One entry missing: only the named one can be tied. */
	classify(200, "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"img10\"}]}", 2,
		 names);
	is_int(out[0].outcome, REPLY_RETRY, "img1 is not stored by img10's entry");
	is_int(out[1].outcome, REPLY_STORED, "img10 is");

	allow_duplicates = true;
	classify(200, "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"img10\"}]}", 2,
		 names);
	allow_duplicates = false;
	is_int(out[0].outcome, REPLY_REJECTED,
	       "with duplicates allowed, an untied sample is not sent again (it may be stored)");
	classify(200, "{\"success\":true,\"files\":[{\"success\":false,\"error\":\"nope\"}]}", 2,
		 names);
	is_int(out[0].outcome, REPLY_RETRY, "an unnamed entry short of the count ties nothing");
	is_int(out[1].outcome, REPLY_RETRY, "for either sample");
	ok(strstr(out[0].text, "did not say") != NULL, "and the result says why: %s", out[0].text);

	ok(!reply_name_matches("img10", "img1.jpg", false), "img10 is not img1");
	ok(!reply_name_matches("img1", "img10.jpg", false), "img1 is not img10");
	ok(reply_name_matches("img1", "img1.jpg", false), "the stem matches");
	ok(reply_name_matches("img1.jpg", "img1.jpg", false), "the whole name matches");
	ok(reply_name_matches("img1.x7f3a", "img1.jpg", true), "the stem plus a date id matches");
	ok(!reply_name_matches("img1.x7f3a", "img1.jpg", false), "only when ids were asked for");
	ok(!reply_name_matches("img10.x7f3a", "img1.jpg", true), "a date id is not a digit more");
	ok(!reply_name_matches("img1.a.b", "img1.jpg", true), "nor two more components");
}

static void test_reordered_and_missing(void)
{
	const char *names[] = {"a.json", "b.json", "c.json"};

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"c\"},"
		 "{\"success\":true,\"fileName\":\"a\"},{\"success\":true,\"fileName\":\"b\"}]}",
		 3, names);
	is_str(out[0].text, "a", "reordered entries are tied by their names");
	is_str(out[2].text, "c", "all of them");

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"c\"},"
		 "{\"success\":false,\"error\":\"x\"},{\"success\":true,\"fileName\":\"b\"}]}",
		 3, names);
	is_int(out[0].outcome, REPLY_RETRY, "reordered: an unnamed entry cannot be placed");
	is_int(out[1].outcome, REPLY_STORED, "the named ones can");
	is_int(out[2].outcome, REPLY_STORED, "both");

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"a\"},"
		 "{\"success\":true,\"fileName\":\"a\"},{\"success\":true,\"fileName\":\"c\"}]}",
		 3, names);
	is_int(out[0].outcome, REPLY_RETRY, "two entries naming one sample: neither counts");
	is_int(out[1].outcome, REPLY_RETRY, "and the sample nobody named is retried");
	is_int(out[2].outcome, REPLY_STORED, "the rest stand");

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"a\"},7,"
		 "{\"success\":true,\"fileName\":\"c\"}]}",
		 3, names);
	is_int(out[1].outcome, REPLY_RETRY, "an entry that is not an object ties nothing");
	is_int(out[2].outcome, REPLY_STORED, "the others still tie by name");

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"a\"},"
		 "{\"success\":true,\"fileName\":\"b\"},{\"success\":true,\"fileName\":\"c\"},"
		 "{\"success\":true,\"fileName\":\"d\"}]}",
		 3, names);
	is_int(out[2].outcome, REPLY_STORED, "an entry too many does not disturb the named ones");
}

static void test_date_ids(void)
{
	const char *names[] = {"cam.jpg", "cam.1.jpg"};

	classify_ids(200,
		     "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"cam.1.ab12\"},"
		     "{\"success\":true,\"fileName\":\"cam.ab34\"}]}",
		     2, names, true);
	is_str(out[0].text, "cam.ab34", "with date ids, reordered entries find their stems");
	is_str(out[1].text, "cam.1.ab12", "both");
}

/* The older shape: an entry for every part, named, and a 400 holding the
 * per-file verdicts when any failed. */
static void test_legacy_shape(void)
{
	const char *names[] = {"car.01.json", "bad.png", "dup.wav"};

	classify(400,
		 "{\"success\":false,\"error\":\"x\",\"files\":["
		 "{\"success\":true,\"fileName\":\"bounding_boxes\"},"
		 "{\"success\":true,\"fileName\":\"car.01\"},"
		 "{\"success\":false,\"fileName\":\"bad.png\",\"error\":\"Unsupported file type\"},"
		 "{\"success\":false,\"fileName\":\"dup.wav\",\"error\":\"An item with this hash "
		 "already exists (ids: 4)\"}]}",
		 3, names);
	is_int(out[0].outcome, REPLY_STORED, "a 400 can still hold a stored file");
	is_int(out[1].outcome, REPLY_REJECTED, "per-file rejection, by its full name");
	is_str(out[1].text, "refused: Unsupported file type", "rejection text");
	is_int(out[2].outcome, REPLY_DUPLICATE, "duplicate recognised");

	classify(400, "{\"success\":false,\"error\":\"Bad things\",\"files\":[]}", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "a 400 listing nothing: its words are the verdict");
	is_str(out[0].text, "HTTP 400: Bad things", "with them");
	classify(400,
		 "{\"success\":false,\"error\":\"Bad\",\"files\":[{\"success\":true,"
		 "\"fileName\":\"car.01\"}]}",
		 3, names);
	is_int(out[0].outcome, REPLY_STORED, "a 400 naming one stored sample");
	is_int(out[1].outcome, REPLY_SOLO, "the ones it forgot go alone, not retried for ever");
}

static void test_mangled_names(void)
{
	const char *names[] = {"\xff\xfe.json", "b.json"};

	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"\u00ff\u00fe\"},"
		 "{\"success\":true,\"fileName\":\"b\"}]}",
		 2, names);
	is_int(out[0].outcome, REPLY_STORED, "a name the service may decode its own way: position");
	classify(200,
		 "{\"success\":true,\"files\":[{\"success\":true,\"fileName\":\"b\"},"
		 "{\"success\":true,\"fileName\":\"\u00ff\u00fe\"}]}",
		 2, names);
	is_int(out[0].outcome, REPLY_RETRY, "out of order, it cannot be tied");
	is_int(out[1].outcome, REPLY_STORED, "the other can");
}

static void test_status_codes(void)
{
	const char *names[] = {"a.json", "b.json"};

	classify(401, "{\"success\":false,\"error\":\"Invalid API key\"}", 1, names);
	is_int(out[0].outcome, REPLY_AUTH, "401 pauses");
	classify(429, "slow down", 1, names);
	is_int(out[0].outcome, REPLY_RETRY, "429 retries");
	classify(503, NULL, 1, names);
	is_int(out[0].outcome, REPLY_RETRY, "503 retries");
	classify(503, "An item with this hash already exists", 1, names);
	is_int(out[0].outcome, REPLY_RETRY, "a 5xx is retried whatever it says");
	classify(421, "{\"error\":\"Missing header x-file-name\"}", 2, names);
	is_int(out[1].outcome, REPLY_REJECTED, "421 is final for every file: our bug");
	is_str(out[0].text, "HTTP 421: Missing header x-file-name", "421 text");
	classify(404, "Not found\r\nx-evil: 1", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "404 is final");
	ok(strchr(out[0].text, '\n') == NULL && strchr(out[0].text, '\r') == NULL,
	   "control characters never reach the result");
	classify(302, "", 1, names);
	is_int(out[0].outcome, REPLY_REJECTED, "a redirect is not followed: final");
}

int main(void)
{
	test_official_shapes();
	test_prefix_names();
	test_reordered_and_missing();
	test_date_ids();
	test_legacy_shape();
	test_mangled_names();
	test_status_codes();
	return done_testing();
}
