/* main.c: choose the subcommand. */
#include "config.h"

#include <string.h>

#include "mount.h"
#include "status_cli.h"
#include "watch.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "watch") == 0)
		return watch_main(argc - 1, argv + 1);
	return mount_main(argc, argv);
}
