/* dirs.c: see dirs.h. */
#include "dirs.h"

#include <dirent.h>
#include <string.h>
#include <unistd.h>

void
dirs_remove_flat(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}
