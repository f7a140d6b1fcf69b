/*
 * What the commands share when they refuse their arguments.
 */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "gpool %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'gpool %s --help')\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_check_writable(const char *cmd, const char *opt, const char *path)
{
    char *copy;
    int rc;

    if (path == NULL)
        return 0;
    copy = xstrdup(path);
    rc = access(dirname(copy), W_OK);
    free(copy);
    if (rc < 0)
        return cli_usage_error(cmd, "%s: cannot write '%s': %s", opt, path, strerror(errno));
    return 0;
}
