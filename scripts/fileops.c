/*
 * What a first build asks of the file system, without airlock: the kernel's
 * own curve, to set beside benches/scale.rs's (docs/BENCHMARKS.md, "the
 * kernel's state").
 *
 * For N files in projects of 10, as benches/support/upstream.rs lays them
 * out: create a temporary file in one shared directory, write 25 bytes,
 * rename it into its project's directory in the store (a new directory
 * every 10 files): the fetch. Then per project a directory and a 4 KiB and
 * a 12 KiB page, and per file a hard link from the store into the tree:
 * the render. Prints each phase's seconds.
 *
 *   gcc -O2 -o /tmp/fileops scripts/fileops.c
 *   mkdir /dev/shm/ops && /tmp/fileops /dev/shm/ops 1000000; rm -rf /dev/shm/ops
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void check(int ok, const char *what, const char *path) {
    if (!ok) {
        perror(path);
        fprintf(stderr, "fileops: %s failed\n", what);
        exit(1);
    }
}

static void write_file(const char *path, const char *bytes, size_t len) {
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
    check(fd >= 0, "open", path);
    check(write(fd, bytes, len) == (ssize_t)len, "write", path);
    check(close(fd) == 0, "close", path);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fileops EMPTY-DIR FILES\n");
        return 2;
    }
    const char *root = argv[1];
    long n = atol(argv[2]);
    char tmp[1024], dst[1024], dir[300];
    static char page[12288];
    memset(page, 'x', sizeof page);
    const char *sub[] = {"tmp", "store", "tree"};
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/%s", root, sub[i]);
        check(mkdir(dir, 0755) == 0, "mkdir", dir);
    }

    double t0 = now();
    for (long i = 0; i < n; i++) {
        long p = i / 10;
        snprintf(dir, sizeof dir, "%s/store/project-%06ld", root, p);
        if (i % 10 == 0) check(mkdir(dir, 0755) == 0, "mkdir", dir);
        snprintf(tmp, sizeof tmp, "%s/tmp/.tmp%ld", root, i);
        write_file(tmp, "project_000000-1.0.tar.gz\n", 25);
        snprintf(dst, sizeof dst, "%s/project_%06ld-1.%ld.tar.gz", dir, p, i % 10);
        check(rename(tmp, dst) == 0, "rename", dst);
    }
    double t1 = now();
    for (long i = 0; i < n; i++) {
        long p = i / 10;
        if (i % 10 == 0) {
            snprintf(dir, sizeof dir, "%s/tree/project-%06ld", root, p);
            check(mkdir(dir, 0755) == 0, "mkdir", dir);
            snprintf(dst, sizeof dst, "%s/index.html", dir);
            write_file(dst, page, 4096);
            snprintf(dst, sizeof dst, "%s/browse.html", dir);
            write_file(dst, page, sizeof page);
        }
        snprintf(tmp, sizeof tmp, "%s/store/project-%06ld/project_%06ld-1.%ld.tar.gz", root, p, p, i % 10);
        snprintf(dst, sizeof dst, "%s/tree/project-%06ld/project_%06ld-1.%ld.tar.gz", root, p, p, i % 10);
        check(link(tmp, dst) == 0, "link", dst);
    }
    double t2 = now();
    printf("%ld files: fetch-like %.2f s, render-like %.2f s, all %.2f s\n", n, t1 - t0, t2 - t1, t2 - t0);
    return 0;
}
