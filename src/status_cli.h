/* status_cli.h: "ingestfs status": what happened to files in a mount. */
#ifndef INGESTFS_STATUS_CLI_H
#define INGESTFS_STATUS_CLI_H

enum status_exit {
	STATUS_EXIT_DONE = 0,    /* everything uploaded, duplicate or ignored */
	STATUS_EXIT_FAILED = 1,  /* at least one file failed */
	STATUS_EXIT_PENDING = 2, /* still pending (at the timeout, with --wait) */
	STATUS_EXIT_USAGE = 3,   /* bad usage or not an ingestfs path */
};

/* ARGV[0] is "status". */
int status_main(int argc, char **argv);

#endif
