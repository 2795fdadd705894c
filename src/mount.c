/* mount.c: the FUSE front end: check the mountpoint, mount, run the loop. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "mount.h"
#include "passthrough.h"
#include "service.h"

struct mount_state {
	struct service svc;
	char *mountpoint; /* absolute */
	struct fs_context fs;
	struct fuse *fuse;
	bool mounted;
};

/* Whether PATH is the root of a mount (a live ingestfs, say). */
static bool is_mount_root(const char *path)
{
	struct stat here, up;
	char *parent;
	bool root;

	if (asprintf(&parent, "%s/..", path) < 0)
		return false;
	root = stat(path, &here) == 0 && stat(parent, &up) == 0 &&
	       (here.st_dev != up.st_dev || here.st_ino == up.st_ino);
	free(parent);
	return root;
}

static int check_mountpoint(struct mount_state *m)
{
	char real[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (!realpath(m->svc.opt.mountpoint, real))
		return service_fail("mountpoint %s: %s", m->svc.opt.mountpoint, strerror(errno));
	d = opendir(real);
	if (!d)
		return service_fail("mountpoint %s: %s", real, strerror(errno));
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			closedir(d);
			if (is_mount_root(real))
				return service_fail("mountpoint %s is already mounted "
						    "(fusermount3 -u %s to unmount it)",
						    real, real);
			return service_fail("mountpoint %s is not empty", real);
		}
	}
	closedir(d);
	m->mountpoint = strdup(real);
	return m->mountpoint ? 0 : service_fail("out of memory");
}

static int open_spool(struct mount_state *m)
{
	char *dir = m->svc.opt.spool ? strdup(m->svc.opt.spool) : spool_default_dir(m->mountpoint);
	char err[512];
	int rc;

	if (!dir)
		return service_fail("cannot choose a spool directory: set -o spool=DIR");
	rc = service_open(&m->svc, dir, NULL, NULL);
	free(dir);
	if (rc == 0 && m->svc.opt.owner &&
	    spool_set_owner(&m->svc.spool, m->svc.opt.owner, err, sizeof(err)) < 0)
		rc = service_fail("%s", err);
	return rc;
}

static int start_fuse(struct mount_state *m, const char *argv0)
{
	char opts[4096];
	char *args_v[] = {(char *)argv0, "-o", opts, "-d", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(m->svc.opt.debug ? 4 : 3, args_v);

	snprintf(opts, sizeof(opts), "fsname=ingestfs,subtype=ingestfs,default_permissions%s%s",
		 m->svc.opt.fuse_opts ? "," : "", m->svc.opt.fuse_opts ? m->svc.opt.fuse_opts : "");
	m->fs = (struct fs_context){.files_fd = m->svc.spool.files_fd,
				    .files_path = m->svc.spool.files_path,
				    .q = m->svc.queue};
	m->fuse = fuse_new(&args, &fs_operations, sizeof(fs_operations), &m->fs);
	fuse_opt_free_args(&args);
	if (!m->fuse)
		return service_fail("cannot set up FUSE (see the message above; "
				    "ingestfs --help lists ingestfs's own options)");
	if (fuse_mount(m->fuse, m->mountpoint) != 0)
		return service_fail("cannot mount on %s", m->mountpoint);
	m->mounted = true;
	if (passthrough_install(fuse_get_session(m->fuse), !m->svc.opt.no_passthrough) < 0)
		return service_fail("cannot set up the FUSE channel of %s", m->mountpoint);
	return 0;
}

/* Retention removed PATH behind the kernel's back: drop what it caches. */
static void forget_path(void *arg, const char *path)
{
	char abs[PATH_MAX];

	snprintf(abs, sizeof(abs), "/%s", path);
	fuse_invalidate_path(arg, abs);
}

static int run(struct mount_state *m)
{
	struct fuse_session *se = fuse_get_session(m->fuse);
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int rc;

	/* FUSE's handlers unmount on SIGHUP; service_start takes it back. */
	if (!loop || fuse_set_signal_handlers(se) != 0)
		return 1;
	if (fuse_daemonize(m->svc.opt.foreground) != 0 || service_after_fork(&m->svc))
		return 1;
	retention_set_forget(m->svc.retention, forget_path, m->fuse);
	if (!m->svc.opt.foreground)
		log_use_syslog(true);
	if (service_start(&m->svc))
		return 1;
	log_info("mounted %s (spool %s, service %s)", m->mountpoint, m->svc.spool.dir,
		 m->svc.opt.url);
	fuse_loop_cfg_set_max_threads(loop, 16);
	rc = fuse_loop_mt(m->fuse, loop);
	fuse_loop_cfg_destroy(loop);
	service_stop(&m->svc, "unmounted");
	fuse_remove_signal_handlers(se);
	return rc == 0 ? 0 : 1;
}

int mount_main(int argc, char **argv)
{
	struct mount_state m = {0};
	struct options *o = &m.svc.opt;
	bool exit_now;
	int rc;

	/* What users make in the mount gets exactly the mode they asked for
	 * (the kernel applied their umask); our own files and folders are
	 * made with explicit modes. */
	umask(0);
	rc = service_parse(&m.svc, argc, argv, "mountpoint", &exit_now);
	if (rc || exit_now)
		goto out;
	if ((rc = service_make_absolute(&o->spool)) ||
	    (rc = service_make_absolute(&o->api_key_file)) ||
	    (rc = service_make_absolute(&o->cafile)) || (rc = service_make_absolute(&o->metrics)) ||
	    (rc = check_mountpoint(&m)) || (rc = open_spool(&m)) || (rc = start_fuse(&m, argv[0])))
		goto out;
	rc = run(&m);
out:
	if (m.mounted)
		fuse_unmount(m.fuse);
	if (m.fuse)
		fuse_destroy(m.fuse);
	passthrough_uninstall();
	service_close(&m.svc);
	free(m.mountpoint);
	return rc;
}
