/*
 * The smallest logger that serves a daemon and a command-line tool alike: messages below the
 * chosen level cost one comparison.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_prog = "gpool";
static enum log_level log_level = LOG_INFO;

void log_init(const char *progname, enum log_level level)
{
    log_prog = progname;
    log_level = level;
}

static void log_vprint(enum log_level level, const char *fmt, va_list ap)
{
    static const char *const tag[] = {"error", "warning", "info", "debug"};

    if (level > log_level)
        return;
    fprintf(stderr, "%s: %s: ", log_prog, tag[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void log_warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vprint(LOG_WARN, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vprint(LOG_INFO, fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vprint(LOG_DEBUG, fmt, ap);
    va_end(ap);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vprint(LOG_ERROR, fmt, ap);
    va_end(ap);
    exit(1);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        fatalx("out of memory");
    return p;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
    void *q = reallocarray(p, n ? n : 1, size ? size : 1);
    if (q == NULL)
        fatalx("out of memory");
    return q;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        fatalx("out of memory");
    return p;
}
