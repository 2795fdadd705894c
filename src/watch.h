/* watch.h: "ingestfs watch DIR": the same queue fed by inotify on an
 * ordinary folder instead of by FUSE. */
#ifndef INGESTFS_WATCH_H
#define INGESTFS_WATCH_H

/* ARGV[0] is "watch".  Returns the process exit status. */
int watch_main(int argc, char **argv);

#endif
