/* mount.h: "ingestfs [-f] [-d] [-o ...] MOUNTPOINT": check everything, set
 * up the spool, queue and uploader, and run the FUSE loop. */
#ifndef INGESTFS_MOUNT_H
#define INGESTFS_MOUNT_H

/* ARGV[0] is the program name.  Returns the process exit status. */
int mount_main(int argc, char **argv);

#endif
