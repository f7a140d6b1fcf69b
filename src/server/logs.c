/*
 * Job logs in files: appends by offset, synced; a cap per stream; one run's files per job.
 */
#include "server/logs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const stream_names[] = {"stdout", "stderr"};

int logs_stream_parse(const char *name, enum logs_stream *out)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(name, stream_names[i]) == 0) {
            *out = (enum logs_stream)i;
            return 0;
        }
    return -EINVAL;
}

const char *logs_stream_name(enum logs_stream st)
{
    return stream_names[st == LOGS_STDERR];
}

int logs_init(struct logs *l, const char *dir, int64_t cap)
{
    struct stat sb;

    if ((size_t)snprintf(l->dir, sizeof(l->dir), "%s", dir) >= sizeof(l->dir))
        return -ENAMETOOLONG;
    l->cap = cap;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    if (stat(dir, &sb) != 0)
        return -errno;
    if (!S_ISDIR(sb.st_mode))
        return -ENOTDIR;
    return access(dir, W_OK | X_OK) == 0 ? 0 : -errno;
}

static void job_dir(const struct logs *l, int64_t job, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%" PRId64, l->dir, job);
}

static void file_path(const struct logs *l, int64_t job, int64_t run, enum logs_stream st,
                      const char *suffix, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%" PRId64 "/%" PRId64 ".%s%s", l->dir, job, run,
             logs_stream_name(st), suffix);
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

    if (fd < 0)
        return -errno;
    rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* A new run's logs replace those of the job's earlier runs. */
static void remove_other_runs(const char *dir, int64_t run)
{
    char prefix[32], path[4608];
    struct dirent *e;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    snprintf(prefix, sizeof(prefix), "%" PRId64 ".", run);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* The stream's file open for appending, created (durably) when it is new. */
static int open_for_append(const struct logs *l, int64_t job, int64_t run, enum logs_stream st)
{
    char dir[4200], path[4400];
    int fd, rc;

    file_path(l, job, run, st, "", path, sizeof(path));
    if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) >= 0 || errno != ENOENT)
        return fd >= 0 ? fd : -errno;
    job_dir(l, job, dir, sizeof(dir));
    if (mkdir(dir, 0700) == 0 && (rc = sync_dir(l->dir)) != 0)
        return rc;
    remove_other_runs(dir, run);
    if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return -errno;
    if ((rc = sync_dir(dir)) != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes what is new of [offset, offset + len) to a file of `size` bytes, up to the cap. */
static int append_new(const struct logs *l, int fd, int64_t size, int64_t offset,
                      const char *data, size_t len)
{
    int64_t skip = size - offset, room = l->cap - size;
    size_t n = len - (size_t)skip;
    int rc;

    if ((int64_t)n > room) {
        char note[160];

        if ((rc = write_all(fd, data + skip, (size_t)room)) != 0)
            return rc;
        snprintf(note, sizeof(note),
                 "\n[gpool: this log reached its cap of %" PRId64 " bytes; the rest is dropped]\n",
                 l->cap);
        return write_all(fd, note, strlen(note));
    }
    return write_all(fd, data + skip, n);
}

int logs_append(const struct logs *l, int64_t job, int64_t run, enum logs_stream st,
                int64_t offset, const void *data, size_t len, int64_t *next)
{
    struct stat sb;
    int fd = open_for_append(l, job, run, st), rc = 0;

    if (fd < 0)
        return fd;
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
    } else if (sb.st_size >= l->cap) {
        *next = -1;
    } else if (offset > sb.st_size) {
        *next = sb.st_size;
        rc = -ESPIPE;
    } else if (offset + (int64_t)len > sb.st_size) {
        rc = append_new(l, fd, sb.st_size, offset, data, len);
        if (rc == 0 && fdatasync(fd) != 0)
            rc = -errno;
        *next = offset + (int64_t)len;
        if (rc == 0 && fstat(fd, &sb) == 0 && sb.st_size >= l->cap)
            *next = -1;
    } else {
        *next = offset + (int64_t)len; /* a retry of bytes it has */
    }
    close(fd);
    return rc;
}

int logs_end(const struct logs *l, int64_t job, int64_t run, enum logs_stream st)
{
    char path[4400], dir[4200];
    int fd = open_for_append(l, job, run, st);

    if (fd < 0)
        return fd;
    close(fd);
    file_path(l, job, run, st, ".end", path, sizeof(path));
    if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return -errno;
    close(fd);
    job_dir(l, job, dir, sizeof(dir));
    return sync_dir(dir);
}

int logs_open(const struct logs *l, int64_t job, int64_t run, enum logs_stream st, int *fd,
              int64_t *size, bool *ended)
{
    char path[4400];
    struct stat sb;

    file_path(l, job, run, st, ".end", path, sizeof(path));
    *ended = access(path, F_OK) == 0;
    *size = 0;
    file_path(l, job, run, st, "", path, sizeof(path));
    if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (fstat(*fd, &sb) != 0) {
        int rc = -errno;

        close(*fd);
        *fd = -1;
        return rc;
    }
    *size = sb.st_size;
    return 0;
}
