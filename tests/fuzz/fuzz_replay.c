/*
 * fuzz_replay.c: the replay driver every fuzz harness links when it is built without libFuzzer
 * (the unit suite runs it over the harness's committed corpus): each file named on the command
 * line, or each file in each directory named, goes through LLVMFuzzerTestOneInput once. A harness
 * may define fuzz_replay_report() to print what it counted.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_replay_report(void) __attribute__((weak));

static int
replay_file(const char *path)
{
	static uint8_t buf[1 << 20];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

/* A directory's files, or the path itself when it is a file. */
static int
replay_path(const char *p, int *count)
{
	char path[4096];
	struct dirent *e;
	DIR *dh = opendir(p);

	if (dh == NULL) {
		if (replay_file(p) != 0)
			return -1;
		++*count;
		return 0;
	}
	while ((e = readdir(dh)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", p, e->d_name);
		if (replay_file(path) != 0) {
			closedir(dh);
			return -1;
		}
		++*count;
	}
	closedir(dh);
	return 0;
}

int
main(int argc, char **argv)
{
	int count = 0;

	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) != 0)
			return 1;
	printf("replayed %d inputs\n", count);
	if (fuzz_replay_report)
		fuzz_replay_report();
	return count > 0 ? 0 : 1;
}
