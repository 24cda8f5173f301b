/* dirs.h: small file-system helpers shared by the programs and tests. */
#ifndef EDGEGW_DIRS_H
#define EDGEGW_DIRS_H

/* Removes the files in dir (one level: no subfolders), then dir itself. Errors are ignored:
 * for cleaning up a runtime directory (a DPDK EAL's /var/run/dpdk/PREFIX) on the way out. */
void dirs_remove_flat(const char *dir);

#endif
