/* passthrough.c: the fast data path; see passthrough.h for what and why.
 *
 * One mount per process, so the state is one static struct: libfuse hands
 * the custom I/O hooks its own struct fuse, not ours. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "log.h"
#include "passthrough.h"

/* The INIT flags2 word (FUSE_INIT_EXT) came with 7.36; older headers
 * cannot describe what this file reads and writes. */
#if FUSE_KERNEL_MINOR_VERSION < 36
#error "<linux/fuse.h> older than protocol 7.36 (Linux 5.17)"
#endif

/* Protocol 7.38 and 7.40 pieces that <linux/fuse.h> may lack: Debian 12's
 * own headers say 7.38, its cross headers (linux-libc-dev-*-cross, from
 * Linux 6.1.4) 7.37.  The names are ours so that newer headers do not
 * clash. */
#define PT_INIT_PASSTHROUGH (1ULL << 37)
#define PT_FOPEN_PASSTHROUGH (1u << 7)
#define PT_FOPEN_PARALLEL_DIRECT_WRITES (1u << 6)
/* What the kernel accepts alongside FOPEN_PASSTHROUGH. */
#define PT_FOPEN_ALLOWED (FOPEN_DIRECT_IO | FOPEN_NOFLUSH | PT_FOPEN_PARALLEL_DIRECT_WRITES)
/* The spool may itself be stacked (overlayfs in a container, depth 1);
 * nothing needs to stack on top of the mount. */
#define PT_MAX_STACK_DEPTH 2
#define CAP_SYS_ADMIN_BIT 21

struct pt_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define PT_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

/* struct fuse_init_out as of 7.40: unused[0] became max_stack_depth. */
struct pt_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
	uint32_t unused[6];
};

/* struct fuse_open_out as of 7.40: padding became backing_id. */
struct pt_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

#define BACKING_BUCKETS 256
#define REPLY_MAX 256

struct backing {
	uint64_t ino;
	int id;
	unsigned refs;
	struct backing *next;
};

struct armed_reply {
	bool on;
	uint64_t fh;
	int backing_id;
	bool direct_io;
};

static struct {
	int dev_fd;
	bool want;
	atomic_bool init_seen;
	atomic_bool ready;
	_Atomic(const char *) off_reason;
	/* Guards offer and the backing table. */
	pthread_mutex_t lock;
	struct passthrough_offer offer;
	struct backing *buckets[BACKING_BUCKETS];
} pt = {.dev_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .off_reason = "not set up"};

static _Thread_local struct armed_reply armed;

/* ---- protocol pieces ---- */

bool passthrough_parse_init(const void *buf, size_t len, struct passthrough_offer *offer)
{
	struct fuse_in_header in;
	struct fuse_init_in init;
	size_t base = sizeof(in) + offsetof(struct fuse_init_in, flags2);

	if (len < base)
		return false;
	memcpy(&in, buf, sizeof(in));
	if (in.opcode != FUSE_INIT)
		return false;
	memset(&init, 0, sizeof(init));
	memcpy(&init, (const char *)buf + sizeof(in),
	       len - sizeof(in) < sizeof(init) ? len - sizeof(in) : sizeof(init));
	offer->unique = in.unique;
	offer->minor = init.minor;
	offer->flags = init.flags;
	if ((init.flags & FUSE_INIT_EXT) && len >= base + sizeof(init.flags2))
		offer->flags |= (uint64_t)init.flags2 << 32;
	return true;
}

bool passthrough_patch_init(void *payload, size_t len, const struct passthrough_offer *offer,
			    bool want)
{
	struct pt_init_out out;
	bool accept;

	if (len < offsetof(struct pt_init_out, unused))
		return false;
	memset(&out, 0, sizeof(out));
	memcpy(&out, payload, len < sizeof(out) ? len : sizeof(out));
	/* We keep no setuid/setgid bits and no security.capability (fs.c
	 * refuses them), so "the server kills privileges" holds trivially.
	 * In return the kernel stops asking for security.capability before
	 * every write(2): one round trip per file instead of per write. */
	if (offer->flags & FUSE_HANDLE_KILLPRIV_V2)
		out.flags |= FUSE_HANDLE_KILLPRIV_V2;
	accept = want && (offer->flags & PT_INIT_PASSTHROUGH) && (out.flags & FUSE_INIT_EXT) &&
		 !(out.flags & FUSE_WRITEBACK_CACHE);
	if (accept) {
		out.flags2 |= (uint32_t)(PT_INIT_PASSTHROUGH >> 32);
		out.max_stack_depth = PT_MAX_STACK_DEPTH;
	}
	memcpy(payload, &out, len < sizeof(out) ? len : sizeof(out));
	return accept;
}

bool passthrough_patch_open(void *payload, size_t len, uint64_t fh, int backing_id, bool direct_io)
{
	struct pt_open_out open;
	char *at;

	if (len != sizeof(open) && len != sizeof(struct fuse_entry_out) + sizeof(open))
		return false;
	at = (char *)payload + len - sizeof(open);
	memcpy(&open, at, sizeof(open));
	if (open.fh != fh)
		return false;
	open.open_flags = (open.open_flags & PT_FOPEN_ALLOWED) | PT_FOPEN_PASSTHROUGH;
	if (direct_io)
		open.open_flags |= FOPEN_DIRECT_IO;
	open.backing_id = backing_id;
	memcpy(at, &open, sizeof(open));
	return true;
}

/* ---- state ---- */

/* ERR, when not 0, is told too: WHY alone does not say what happened. */
static void turn_off(const char *why, int err)
{
	const char *was = NULL;

	atomic_store(&pt.ready, false);
	if (atomic_compare_exchange_strong(&pt.off_reason, &was, why))
		log_info("file data now goes through the daemon: %s%s%s", why, err ? ": " : "",
			 err ? strerror(err) : "");
}

bool passthrough_ready(void)
{
	return atomic_load(&pt.ready);
}

static void note_init_reply(bool accepted)
{
	const char *why = NULL;

	if (accepted) {
		atomic_store(&pt.off_reason, NULL);
		atomic_store(&pt.ready, true);
		log_info("file data goes straight to the spool (kernel passthrough)");
		return;
	}
	if (!pt.want)
		why = atomic_load(&pt.off_reason);
	else if (!(pt.offer.flags & PT_INIT_PASSTHROUGH))
		why = "this kernel does not offer passthrough (Linux 6.9 or later with "
		      "CONFIG_FUSE_PASSTHROUGH has it)";
	else
		why = "passthrough could not be negotiated";
	atomic_store(&pt.off_reason, why);
	log_info("file data goes through the daemon: %s", why);
}

/* ---- the backing table ---- */

static struct backing **bucket_of(uint64_t ino)
{
	return &pt.buckets[(ino * 0x9e3779b97f4a7c15ULL) >> 56];
}

static int backing_open(int fd)
{
	struct pt_backing_map map = {.fd = fd};
	int id = ioctl(pt.dev_fd, PT_IOC_BACKING_OPEN, &map), err = errno;

	if (id >= 0)
		return id;
	switch (err) {
	case ENOMEM:
	case ENFILE:
	case EMFILE:
	case ENOSPC:
		/* Short of memory, descriptors or backing ids: this open goes
		 * through the daemon, the next may not. */
		break;
	case EPERM:
		turn_off("the kernel refused a backing file (passthrough needs CAP_SYS_ADMIN)", 0);
		break;
	case ELOOP:
		turn_off("the spool is on a file system stacked too deep (overlayfs over FUSE?)",
			 0);
		break;
	default:
		/* EINVAL, ENOTTY, EOPNOTSUPP from the kernel; ENOSYS from an
		 * emulator that does not know the ioctl (qemu-user); anything
		 * else no later open would fare better with.  Left on, every
		 * open would fall back to direct I/O, where shared mmap fails:
		 * off for the whole mount, said once. */
		turn_off("the kernel refused a backing file", err);
		break;
	}
	return -err;
}

int passthrough_get(uint64_t ino, int fd, bool may_open)
{
	struct backing **head = bucket_of(ino), *b;
	int id;

	pthread_mutex_lock(&pt.lock);
	for (b = *head; b && b->ino != ino; b = b->next)
		;
	if (b) {
		b->refs++;
		id = b->id;
		goto out;
	}
	if (!may_open) {
		id = -EAGAIN;
		goto out;
	}
	b = malloc(sizeof(*b));
	if (!b) {
		id = -ENOMEM;
		goto out;
	}
	id = backing_open(fd);
	if (id < 0) {
		free(b);
		goto out;
	}
	*b = (struct backing){.ino = ino, .id = id, .refs = 1, .next = *head};
	*head = b;
out:
	pthread_mutex_unlock(&pt.lock);
	return id;
}

void passthrough_put(uint64_t ino)
{
	struct backing **link = bucket_of(ino), *b;
	uint32_t id;

	pthread_mutex_lock(&pt.lock);
	while (*link && (*link)->ino != ino)
		link = &(*link)->next;
	b = *link;
	if (b && --b->refs == 0) {
		/* The kernel keeps its own reference for files still open. */
		id = (uint32_t)b->id;
		if (ioctl(pt.dev_fd, PT_IOC_BACKING_CLOSE, &id) < 0)
			log_debug("closing backing file %u: %s", id, strerror(errno));
		*link = b->next;
		free(b);
	}
	pthread_mutex_unlock(&pt.lock);
}

void passthrough_arm(uint64_t fh, int backing_id, bool direct_io)
{
	armed = (struct armed_reply){
		.on = true, .fh = fh, .backing_id = backing_id, .direct_io = direct_io};
}

/* ---- the custom I/O hooks ---- */

static ssize_t hook_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);

	if (n > 0 && !atomic_load(&pt.init_seen)) {
		pthread_mutex_lock(&pt.lock);
		passthrough_parse_init(buf, (size_t)n, &pt.offer);
		pthread_mutex_unlock(&pt.lock);
	}
	return n;
}

/* The payload is libfuse's own buffer: amend a copy. */
static ssize_t writev_amended(int fd, struct iovec *iov, bool (*patch)(void *, size_t, void *),
			      void *arg, bool *patched)
{
	char copy[REPLY_MAX];
	struct iovec out[2] = {iov[0], {copy, iov[1].iov_len}};

	if (iov[1].iov_len > sizeof(copy))
		return writev(fd, iov, 2);
	memcpy(copy, iov[1].iov_base, iov[1].iov_len);
	*patched = patch(copy, iov[1].iov_len, arg);
	return writev(fd, out, 2);
}

static bool patch_armed(void *payload, size_t len, void *arg)
{
	const struct armed_reply *a = arg;

	return passthrough_patch_open(payload, len, a->fh, a->backing_id, a->direct_io);
}

static bool patch_init(void *payload, size_t len, void *arg)
{
	return passthrough_patch_init(payload, len, arg, pt.want);
}

static ssize_t hook_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct armed_reply a = armed;
	struct fuse_out_header hdr;
	struct passthrough_offer offer;
	bool patched = false;
	ssize_t n;

	armed.on = false;
	if (count != 2 || iov[0].iov_len != sizeof(hdr))
		return writev(fd, iov, count);
	memcpy(&hdr, iov[0].iov_base, sizeof(hdr));
	if (hdr.error != 0)
		return writev(fd, iov, count);
	if (a.on) {
		n = writev_amended(fd, iov, patch_armed, &a, &patched);
		if (!patched)
			log_debug("open reply for handle %llx left unmarked",
				  (unsigned long long)a.fh);
		return n;
	}
	if (atomic_load(&pt.init_seen))
		return writev(fd, iov, count);
	pthread_mutex_lock(&pt.lock);
	offer = pt.offer;
	pthread_mutex_unlock(&pt.lock);
	if (hdr.unique != offer.unique || offer.unique == 0)
		return writev(fd, iov, count);
	n = writev_amended(fd, iov, patch_init, &offer, &patched);
	if (n >= 0 && offer.minor > 0) {
		atomic_store(&pt.init_seen, true);
		note_init_reply(patched);
	}
	return n;
}

/* libfuse's hook passes off_t where splice(2) takes loff_t: the same type
 * only with a 64-bit off_t (AC_SYS_LARGEFILE on 32-bit systems). */
_Static_assert(sizeof(off_t) == sizeof(loff_t), "splice offsets need a 64-bit off_t");

/* Both directions: libfuse treats splice as unsupported unless a custom
 * I/O provides it. */
static ssize_t hook_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			   unsigned int flags, void *userdata)
{
	return splice(fdin, offin, fdout, offout, len, flags);
}

/* The kernel lends backing files only to CAP_SYS_ADMIN (in the initial
 * namespace; a container's root gets EPERM later, which turns it off). */
static bool may_admin(void)
{
	char line[256];
	unsigned long long caps = 0;
	bool found = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return geteuid() == 0;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "CapEff: %llx", &caps) == 1;
	fclose(f);
	return found ? (caps >> CAP_SYS_ADMIN_BIT) & 1 : geteuid() == 0;
}

int passthrough_install(struct fuse_session *se, bool want)
{
	static const struct fuse_custom_io io = {
		.writev = hook_writev,
		.read = hook_read,
		.splice_receive = hook_splice,
		.splice_send = hook_splice,
	};
	int fd = fuse_session_fd(se);

	pt.dev_fd = fd;
	pt.want = want && may_admin();
	if (!want)
		atomic_store(&pt.off_reason, "passthrough turned off by -o no_passthrough");
	else if (!pt.want)
		atomic_store(&pt.off_reason, "passthrough needs root (CAP_SYS_ADMIN)");
	return fuse_session_custom_io(se, &io, fd);
}

void passthrough_uninstall(void)
{
	struct backing *b, *next;
	size_t i;

	pthread_mutex_lock(&pt.lock);
	for (i = 0; i < BACKING_BUCKETS; i++) {
		for (b = pt.buckets[i]; b; b = next) {
			next = b->next;
			free(b);
		}
		pt.buckets[i] = NULL;
	}
	pthread_mutex_unlock(&pt.lock);
	atomic_store(&pt.ready, false);
}
