/* main.c: choose the subcommand. */
#include "config.h"

#include <string.h>

#include "mount.h"
#include "status_cli.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, argv + 1);
	return mount_main(argc, argv);
}
