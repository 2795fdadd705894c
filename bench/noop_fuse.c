/* noop_fuse.c: the cheapest FUSE server there is, for bench/throughput.py.
 *
 * It holds one file, "f", and answers every getxattr at once, so timing
 * getxattr on it measures what any FUSE file system pays per request on
 * this machine (the kernel's round trip and the scheduler's wake-ups),
 * apart from anything ingestfs does.  Built by the bench, not by make.
 *
 *     cc -O2 -o noop_fuse noop_fuse.c $(pkg-config --cflags --libs fuse3)
 *     ./noop_fuse MOUNTPOINT      # runs in the foreground, multithreaded
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <string.h>
#include <sys/stat.h>

static void fill(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0644;
	st->st_nlink = 1;
}

static void noop_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	fill(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void noop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.ino = 2, .attr_timeout = 3600, .entry_timeout = 3600};

	if (parent != FUSE_ROOT_ID || strcmp(name, "f") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill(2, &e.attr);
	fuse_reply_entry(req, &e);
}

static void noop_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, 1);
	else
		fuse_reply_buf(req, "x", 1);
}

static const struct fuse_lowlevel_ops ops = {
	.getattr = noop_getattr,
	.lookup = noop_lookup,
	.getxattr = noop_getxattr,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct fuse_loop_config *loop;
	struct fuse_session *se;
	int rc = 1;

	if (argc != 2)
		return 2;
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	loop = fuse_loop_cfg_create();
	if (!se || !loop || fuse_set_signal_handlers(se) != 0)
		return 1;
	if (fuse_session_mount(se, argv[1]) == 0) {
		rc = fuse_session_loop_mt(se, loop) == 0 ? 0 : 1;
		fuse_session_unmount(se);
	}
	fuse_remove_signal_handlers(se);
	fuse_loop_cfg_destroy(loop);
	fuse_session_destroy(se);
	return rc;
}
