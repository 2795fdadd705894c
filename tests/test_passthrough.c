/* Unit tests of passthrough.c's protocol pieces: reading the kernel's INIT,
 * amending libfuse's INIT reply and open replies, byte for byte. */
#include "config.h"

#include <linux/fuse.h>
#include <stdint.h>
#include <string.h>

#include "passthrough.h"
#include "tap.h"

#define INIT_PASSTHROUGH_FLAGS2 (1u << 5) /* FUSE_PASSTHROUGH >> 32 */
#define FOPEN_PASSTHROUGH_BIT (1u << 7)

/* An INIT request as the kernel sends it. */
static size_t make_init(unsigned char *buf, uint32_t opcode, uint32_t flags, uint32_t flags2)
{
	struct fuse_in_header in = {.opcode = opcode, .unique = 2};
	struct fuse_init_in init = {.major = 7, .minor = 45, .flags = flags, .flags2 = flags2};

	in.len = sizeof(in) + sizeof(init);
	memcpy(buf, &in, sizeof(in));
	memcpy(buf + sizeof(in), &init, sizeof(init));
	return in.len;
}

static void test_parse_init(void)
{
	unsigned char buf[256];
	struct passthrough_offer offer = {0};
	size_t n = make_init(buf, FUSE_INIT, FUSE_INIT_EXT | FUSE_HANDLE_KILLPRIV_V2,
			     INIT_PASSTHROUGH_FLAGS2);

	ok(passthrough_parse_init(buf, n, &offer), "an INIT request is recognised");
	is_int(offer.unique, 2, "its unique id is kept");
	is_int(offer.minor, 45, "and the kernel's minor version");
	ok((offer.flags & (1ULL << 37)) != 0, "passthrough offered (flags2 folded in)");
	ok(offer.flags & FUSE_HANDLE_KILLPRIV_V2, "killpriv_v2 offered");

	n = make_init(buf, FUSE_INIT, FUSE_HANDLE_KILLPRIV_V2, INIT_PASSTHROUGH_FLAGS2);
	ok(passthrough_parse_init(buf, n, &offer) && !(offer.flags & (1ULL << 37)),
	   "flags2 is ignored without FUSE_INIT_EXT");
	n = make_init(buf, FUSE_LOOKUP, 0, 0);
	ok(!passthrough_parse_init(buf, n, &offer), "other requests are not INIT");
	ok(!passthrough_parse_init(buf, 20, &offer), "a short read is not INIT");
}

static void test_patch_init(void)
{
	struct passthrough_offer offer = {.unique = 2,
					  .minor = 45,
					  .flags = FUSE_INIT_EXT | FUSE_HANDLE_KILLPRIV_V2 |
						   (1ULL << 37)};
	struct fuse_init_out out = {
		.major = 7, .minor = 31, .flags = FUSE_INIT_EXT, .max_write = 4096};
	struct fuse_init_out copy;
	uint32_t depth;

	ok(passthrough_patch_init(&out, sizeof(out), &offer, true), "passthrough accepted");
	ok(out.flags2 & INIT_PASSTHROUGH_FLAGS2, "FUSE_PASSTHROUGH set in flags2");
	memcpy(&depth, &out.unused[0], sizeof(depth));
	is_int(depth, 2, "max_stack_depth 2 (the spool may be an overlayfs)");
	ok(out.flags & FUSE_HANDLE_KILLPRIV_V2, "killpriv_v2 accepted");
	is_int(out.max_write, 4096, "the rest is left alone");

	out = (struct fuse_init_out){.flags = FUSE_INIT_EXT};
	ok(!passthrough_patch_init(&out, sizeof(out), &offer, false), "not wanted: not accepted");
	ok(!(out.flags2 & INIT_PASSTHROUGH_FLAGS2), "and not set");
	ok(out.flags & FUSE_HANDLE_KILLPRIV_V2, "killpriv_v2 still accepted");

	out = (struct fuse_init_out){.flags = FUSE_INIT_EXT | FUSE_WRITEBACK_CACHE};
	ok(!passthrough_patch_init(&out, sizeof(out), &offer, true),
	   "the kernel forbids it with the writeback cache");

	offer.flags = FUSE_INIT_EXT;
	out = (struct fuse_init_out){.flags = FUSE_INIT_EXT};
	copy = out;
	ok(!passthrough_patch_init(&out, sizeof(out), &offer, true), "not offered: not accepted");
	ok(memcmp(&out, &copy, sizeof(out)) == 0, "and the reply is unchanged");
	ok(!passthrough_patch_init(&out, 16, &offer, true), "a short reply is left alone");
}

struct create_reply {
	struct fuse_entry_out entry;
	struct fuse_open_out open;
};

static void test_patch_open(void)
{
	struct fuse_open_out open = {.fh = 0xabc, .open_flags = FOPEN_KEEP_CACHE | FOPEN_NOFLUSH};
	struct create_reply create = {.entry = {.nodeid = 9}, .open = {.fh = 0xdef}};
	int32_t id;

	ok(passthrough_patch_open(&open, sizeof(open), 0xabc, 7, false), "open reply marked");
	ok(open.open_flags & FOPEN_PASSTHROUGH_BIT, "FOPEN_PASSTHROUGH set");
	ok(!(open.open_flags & FOPEN_KEEP_CACHE), "flags the kernel refuses with it are dropped");
	ok(open.open_flags & FOPEN_NOFLUSH, "allowed flags are kept");
	memcpy(&id, &open.padding, sizeof(id));
	is_int(id, 7, "backing id in place");

	ok(passthrough_patch_open(&create, sizeof(create), 0xdef, 3, true), "create reply marked");
	ok(create.open.open_flags & FOPEN_DIRECT_IO, "direct I/O when asked");
	is_int(create.entry.nodeid, 9, "the entry part is left alone");

	open = (struct fuse_open_out){.fh = 0x111};
	ok(!passthrough_patch_open(&open, sizeof(open), 0x222, 7, false),
	   "a reply for another handle is left alone");
	ok(!passthrough_patch_open(&open, 8, 0x111, 7, false), "so is one of the wrong size");
	is_int(open.open_flags, 0, "unchanged");
}

int main(void)
{
	test_parse_init();
	test_patch_init();
	test_patch_open();
	return done_testing();
}
