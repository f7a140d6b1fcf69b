/* Job logs on the server: appends by offset (retries harmless, gaps refused), the cap, the end
 * mark, and a new run replacing an old one's files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/logs.h"

struct fixture {
    char dir[64];
    struct logs l;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/gpool-logs-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    strcat(f->dir, "/logs"); /* made by logs_init */
    if (logs_init(&f->l, f->dir, 64) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strlen(f->dir) - 5), f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* The whole stream as it is stored: its bytes, NUL-terminated, and whether it has ended. */
static char *read_all(const struct logs *l, int64_t job, int64_t run, enum logs_stream st,
                      bool *ended)
{
    int64_t size;
    char *buf;
    int fd;

    assert_int_equal(logs_open(l, job, run, st, &fd, &size, ended), 0);
    buf = calloc(1, (size_t)size + 1);
    assert_non_null(buf);
    if (fd >= 0) {
        assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
        close(fd);
    }
    return buf;
}

static void test_appends_by_offset(void **state)
{
    struct fixture *f = *state;
    int64_t next;
    bool ended;
    char *text;

    assert_int_equal(logs_append(&f->l, 7, 100, LOGS_STDOUT, 0, "hello ", 6, &next), 0);
    assert_int_equal(next, 6);
    /* A retry of what the server has changes nothing; one that overlaps adds only the rest. */
    assert_int_equal(logs_append(&f->l, 7, 100, LOGS_STDOUT, 0, "hello ", 6, &next), 0);
    assert_int_equal(next, 6);
    assert_int_equal(logs_append(&f->l, 7, 100, LOGS_STDOUT, 3, "lo world", 8, &next), 0);
    assert_int_equal(next, 11);
    /* Past the end: refused, with what the server has. */
    assert_int_equal(logs_append(&f->l, 7, 100, LOGS_STDOUT, 20, "x", 1, &next), -ESPIPE);
    assert_int_equal(next, 11);
    text = read_all(&f->l, 7, 100, LOGS_STDOUT, &ended);
    assert_string_equal(text, "hello world");
    assert_false(ended);
    free(text);
    /* The other stream is its own. */
    text = read_all(&f->l, 7, 100, LOGS_STDERR, &ended);
    assert_string_equal(text, "");
    free(text);
    assert_int_equal(logs_end(&f->l, 7, 100, LOGS_STDOUT), 0);
    text = read_all(&f->l, 7, 100, LOGS_STDOUT, &ended);
    assert_true(ended);
    free(text);
}

static void test_cap(void **state)
{
    struct fixture *f = *state;
    char big[100];
    const char *note;
    int64_t next;
    bool ended;
    char *text;

    memset(big, 'x', sizeof(big));
    assert_int_equal(logs_append(&f->l, 8, 1, LOGS_STDERR, 0, big, 40, &next), 0);
    assert_int_equal(next, 40);
    /* This one crosses the cap of 64 bytes: 24 more are kept, then a note, then nothing. */
    assert_int_equal(logs_append(&f->l, 8, 1, LOGS_STDERR, 40, big, 60, &next), 0);
    assert_int_equal(next, -1);
    assert_int_equal(logs_append(&f->l, 8, 1, LOGS_STDERR, 100, "more", 4, &next), 0);
    assert_int_equal(next, -1);
    text = read_all(&f->l, 8, 1, LOGS_STDERR, &ended);
    assert_int_equal(strspn(text, "x"), 64);
    note = strstr(text, "reached its cap of 64 bytes");
    assert_non_null(note);
    assert_true(note - text > 64);
    assert_null(strstr(text, "more"));
    free(text);
}

static void test_new_run_replaces_old(void **state)
{
    struct fixture *f = *state;
    int64_t next;
    bool ended;
    char *text;

    assert_int_equal(logs_append(&f->l, 9, 1, LOGS_STDOUT, 0, "run one", 7, &next), 0);
    assert_int_equal(logs_end(&f->l, 9, 1, LOGS_STDOUT), 0);
    assert_int_equal(logs_append(&f->l, 9, 2, LOGS_STDOUT, 0, "run two", 7, &next), 0);
    text = read_all(&f->l, 9, 2, LOGS_STDOUT, &ended);
    assert_string_equal(text, "run two");
    assert_false(ended);
    free(text);
    text = read_all(&f->l, 9, 1, LOGS_STDOUT, &ended);
    assert_string_equal(text, "");
    assert_false(ended);
    free(text);
}

static void test_names(void **state)
{
    enum logs_stream st;

    assert_int_equal(logs_stream_parse("stderr", &st), 0);
    assert_int_equal(st, LOGS_STDERR);
    assert_string_equal(logs_stream_name(LOGS_STDOUT), "stdout");
    assert_int_equal(logs_stream_parse("stdin", &st), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_appends_by_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_run_replaces_old, setup, teardown),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
