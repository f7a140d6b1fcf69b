/*
 * Trace files are CSV (parsed by libcsv) with a header row. Columns are found by name so that
 * extra columns and any column order are accepted; every value is checked before a trace is used.
 */
#include "trace.h"
#include "sim/replay.h"

#include <csv.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define TRACE_MAX_COLUMNS 64

struct csv_reader;
typedef int (*row_fn)(struct csv_reader *r, void *ctx);

struct csv_reader {
    const char *path;
    char *field[TRACE_MAX_COLUMNS];
    int nfield;
    int line;     /* physical line being read, from 1 */
    int row_line; /* line where the current record began */
    int rows;     /* records seen, header included */
    bool failed;
    row_fn row;
    void *ctx;
    char *err;
    size_t errlen;
};

static void reader_error(struct csv_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reader_error(struct csv_reader *r, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (r->failed)
        return;
    r->failed = true;
    n = snprintf(r->err, r->errlen, "%s:%d: ", r->path, r->row_line);
    if (n < 0 || (size_t)n >= r->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void on_field(void *s, size_t len, void *data)
{
    struct csv_reader *r = data;

    if (r->nfield == 0)
        r->row_line = r->line;
    if (r->nfield == TRACE_MAX_COLUMNS) {
        reader_error(r, "more than %d columns", TRACE_MAX_COLUMNS);
        return;
    }
    r->field[r->nfield] = xcalloc(len + 1, 1);
    if (len)
        memcpy(r->field[r->nfield], s, len);
    r->nfield++;
}

static void clear_fields(struct csv_reader *r)
{
    for (int i = 0; i < r->nfield; i++)
        free(r->field[i]);
    r->nfield = 0;
}

static void on_record(int c, void *data)
{
    struct csv_reader *r = data;
    bool blank = r->nfield == 0 || (r->nfield == 1 && r->field[0][0] == '\0');

    if (!blank && !r->failed) {
        r->rows++;
        if (r->row(r, r->ctx) < 0 && !r->failed)
            reader_error(r, "bad record");
    }
    clear_fields(r);
    if (c == '\n')
        r->line++;
}

static int csv_read_file(const char *path, row_fn row, void *ctx, char *err, size_t errlen)
{
    struct csv_reader r = {.path = path,
                           .line = 1,
                           .row_line = 1,
                           .row = row,
                           .ctx = ctx,
                           .err = err,
                           .errlen = errlen};
    struct csv_parser p;
    char buf[65536];
    size_t n;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (csv_init(&p, CSV_REPALL_NL) != 0)
        fatalx("out of memory");
    while (!r.failed && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (csv_parse(&p, buf, n, on_field, on_record, &r) != n)
            reader_error(&r, "%s", csv_strerror(csv_error(&p)));
    }
    if (!r.failed && ferror(f))
        reader_error(&r, "read error");
    if (!r.failed)
        csv_fini(&p, on_field, on_record, &r);
    clear_fields(&r);
    csv_free(&p);
    fclose(f);
    if (!r.failed && r.rows == 0) {
        snprintf(err, errlen, "%s:1: empty file: no header row", path);
        return -1;
    }
    if (!r.failed && r.rows == 1) {
        snprintf(err, errlen, "%s:2: no rows after the header", path);
        return -1;
    }
    return r.failed ? -1 : 0;
}

/* Columns of one file: where each named column sits, -1 when absent. */
struct columns {
    const char *const *names;
    int n;
    int nreq; /* the first nreq names are required */
    int at[16];
    int width; /* number of header fields */
};

static int columns_map(struct csv_reader *r, struct columns *c)
{
    for (int i = 0; i < c->n; i++) {
        c->at[i] = -1;
        for (int j = 0; j < r->nfield; j++)
            if (strcmp(r->field[j], c->names[i]) == 0)
                c->at[i] = j;
        if (c->at[i] < 0 && i < c->nreq) {
            reader_error(r, "missing required column '%s'", c->names[i]);
            return -1;
        }
    }
    c->width = r->nfield;
    return 0;
}

static const char *column_value(struct csv_reader *r, const struct columns *c, int i)
{
    if (c->at[i] < 0 || c->at[i] >= r->nfield)
        return "";
    return r->field[c->at[i]];
}

/* A whole number in [0, max], or an error naming the column. */
static int column_int(struct csv_reader *r, const struct columns *c, int i, int64_t max,
                      int64_t *out)
{
    const char *s = column_value(r, c, i);
    char *end;
    long long v;

    if (c->at[i] >= r->nfield) {
        reader_error(r, "column '%s': missing value (row has %d fields, header %d)", c->names[i],
                     r->nfield, c->width);
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno == ERANGE) {
        reader_error(r, "column '%s': '%s' is not a whole number", c->names[i], s);
        return -1;
    }
    if (v < 0) {
        reader_error(r, "column '%s': %lld is negative", c->names[i], v);
        return -1;
    }
    if (v > max) {
        reader_error(r, "column '%s': %lld is over %lld", c->names[i], v, (long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- node lists ---- */

enum { N_SN, N_CPU, N_MEM, N_GPU, N_MODEL };
static const char *const node_columns[] = {"sn", "cpu_milli", "memory_mib", "gpu", "model"};

struct node_ctx {
    struct trace_nodes *out;
    struct columns cols;
    int cap;
};

static char *keep_name(struct trace_nodes *t, const char *s)
{
    t->names = xreallocarray(t->names, (size_t)t->nnames + 1, sizeof(*t->names));
    return t->names[t->nnames++] = xstrdup(s);
}

static int node_row(struct csv_reader *r, void *data)
{
    struct node_ctx *x = data;
    struct sched_cluster *c = &x->out->cluster;
    struct sched_node *n;
    int64_t cpu, mem, gpu;
    const char *sn, *model;

    if (r->rows == 1)
        return columns_map(r, &x->cols);
    sn = column_value(r, &x->cols, N_SN);
    if (*sn == '\0') {
        reader_error(r, "column 'sn': empty node name");
        return -1;
    }
    for (int i = 0; i < c->nnodes; i++) {
        if (strcmp(c->nodes[i].name, sn) == 0) {
            reader_error(r, "column 'sn': duplicate node '%s'", sn);
            return -1;
        }
    }
    if (column_int(r, &x->cols, N_CPU, INT64_MAX / 2, &cpu) < 0 ||
        column_int(r, &x->cols, N_MEM, INT64_MAX / 2, &mem) < 0 ||
        column_int(r, &x->cols, N_GPU, SCHED_NODE_MAX_GPUS, &gpu) < 0)
        return -1;
    if (c->nnodes == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 256;
        c->nodes = xreallocarray(c->nodes, (size_t)x->cap, sizeof(*c->nodes));
    }
    n = &c->nodes[c->nnodes];
    memset(n, 0, sizeof(*n));
    n->name = keep_name(x->out, sn);
    n->pool = -1;
    n->model = -1;
    n->cpu_milli = n->cpu_free = cpu;
    n->mem_mib = n->mem_free = mem;
    n->ngpu = (int)gpu;
    for (int i = 0; i < n->ngpu; i++)
        n->gpu[i].free_milli = SCHED_MILLI;
    model = column_value(r, &x->cols, N_MODEL);
    if (*model != '\0') {
        n->model = sched_cluster_model(c, keep_name(x->out, model));
        if (n->model < 0) {
            reader_error(r, "column 'model': more than %d GPU models", SCHED_MAX_MODELS);
            return -1;
        }
    }
    c->nnodes++;
    return 0;
}

int trace_read_nodes(const char *path, struct trace_nodes *out, char *err, size_t errlen)
{
    struct node_ctx x = {.out = out, .cols = {.names = node_columns, .n = 5, .nreq = 4}};

    memset(out, 0, sizeof(*out));
    if (csv_read_file(path, node_row, &x, err, errlen) < 0) {
        trace_nodes_fini(out);
        return -1;
    }
    return 0;
}

void trace_nodes_fini(struct trace_nodes *t)
{
    for (int i = 0; i < t->nnames; i++)
        free(t->names[i]);
    free(t->names);
    free(t->cluster.nodes);
    memset(t, 0, sizeof(*t));
}

/* ---- pod lists ---- */

enum { P_NAME, P_CPU, P_MEM, P_NGPU, P_MILLI, P_SPEC, P_QOS, P_CREATED, P_DELETED, P_SCHEDULED };
static const char *const pod_columns[] = {
    "name",     "cpu_milli", "memory_mib",    "num_gpu",       "gpu_milli",
    "gpu_spec", "qos",       "creation_time", "deletion_time", "scheduled_time"};

/* An optional time column: -1 when the column or the value is absent. */
static int column_time(struct csv_reader *r, const struct columns *c, int i, int64_t *out)
{
    *out = -1;
    if (c->at[i] < 0 || *column_value(r, c, i) == '\0')
        return 0;
    return column_int(r, c, i, INT64_MAX / 4, out);
}

static const char *const qos_names[] = {"", "LS", "Guaranteed", "Burstable", "BE"};

static int column_qos(struct csv_reader *r, const struct columns *c, enum trace_qos *out)
{
    const char *v = column_value(r, c, P_QOS);

    for (size_t i = 0; i < sizeof(qos_names) / sizeof(qos_names[0]); i++)
        if (strcmp(v, qos_names[i]) == 0) {
            *out = (enum trace_qos)i;
            return 0;
        }
    reader_error(r, "column 'qos': '%s' is not one of LS, Guaranteed, Burstable, BE", v);
    return -1;
}

struct pod_ctx {
    struct trace_nodes *nodes;
    struct trace_pods *out;
    struct columns cols;
    int cap;
};

static int parse_spec(struct csv_reader *r, struct trace_nodes *nodes, const char *spec,
                      sched_models_t *out)
{
    char *copy = xstrdup(spec), *save = NULL;
    int rc = 0;

    *out = 0;
    for (char *m = strtok_r(copy, "|", &save); m; m = strtok_r(NULL, "|", &save)) {
        int i = -1;
        for (int k = 0; k < nodes->cluster.nmodels; k++)
            if (strcmp(nodes->cluster.models[k], m) == 0)
                i = k;
        if (i < 0)
            i = sched_cluster_model(&nodes->cluster, keep_name(nodes, m));
        if (i < 0) {
            reader_error(r, "column 'gpu_spec': more than %d GPU models", SCHED_MAX_MODELS);
            rc = -1;
            break;
        }
        *out |= (sched_models_t)1 << i;
    }
    free(copy);
    return rc;
}

static int pod_check(struct csv_reader *r, const struct sched_pod *p)
{
    if (p->num_gpu == 0 && p->gpu_milli != 0) {
        reader_error(r, "column 'gpu_milli': %d on a pod with num_gpu 0 (must be 0)", p->gpu_milli);
        return -1;
    }
    if (p->num_gpu > 0 && p->gpu_milli == 0) {
        reader_error(r, "column 'gpu_milli': 0 on a GPU pod (num_gpu %d)", p->num_gpu);
        return -1;
    }
    return 0;
}

static int pod_row(struct csv_reader *r, void *data)
{
    struct pod_ctx *x = data;
    struct trace_pod *tp;
    int64_t cpu, mem, ngpu, milli;
    const char *name;

    if (r->rows == 1)
        return columns_map(r, &x->cols);
    name = column_value(r, &x->cols, P_NAME);
    if (*name == '\0') {
        reader_error(r, "column 'name': empty pod name");
        return -1;
    }
    if (column_int(r, &x->cols, P_CPU, INT64_MAX / 2, &cpu) < 0 ||
        column_int(r, &x->cols, P_MEM, INT64_MAX / 2, &mem) < 0 ||
        column_int(r, &x->cols, P_NGPU, SCHED_NODE_MAX_GPUS, &ngpu) < 0 ||
        column_int(r, &x->cols, P_MILLI, SCHED_MILLI, &milli) < 0)
        return -1;
    if (x->out->npods == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->out->pods = xreallocarray(x->out->pods, (size_t)x->cap, sizeof(*x->out->pods));
    }
    tp = &x->out->pods[x->out->npods];
    memset(tp, 0, sizeof(*tp));
    tp->pod.cpu_milli = cpu;
    tp->pod.mem_mib = mem;
    tp->pod.num_gpu = (int)ngpu;
    tp->pod.gpu_milli = (int)milli;
    if (pod_check(r, &tp->pod) < 0 ||
        parse_spec(r, x->nodes, column_value(r, &x->cols, P_SPEC), &tp->pod.models) < 0 ||
        column_qos(r, &x->cols, &tp->qos) < 0 ||
        column_time(r, &x->cols, P_CREATED, &tp->created) < 0 ||
        column_time(r, &x->cols, P_DELETED, &tp->deleted) < 0 ||
        column_time(r, &x->cols, P_SCHEDULED, &tp->scheduled) < 0)
        return -1;
    tp->name = xstrdup(name);
    x->out->npods++;
    return 0;
}

int trace_read_pods(const char *path, struct trace_nodes *nodes, struct trace_pods *out, char *err,
                    size_t errlen)
{
    struct pod_ctx x = {
        .nodes = nodes, .out = out, .cols = {.names = pod_columns, .n = 10, .nreq = 5}};

    memset(out, 0, sizeof(*out));
    if (csv_read_file(path, pod_row, &x, err, errlen) < 0) {
        trace_pods_fini(out);
        return -1;
    }
    return 0;
}

void trace_pods_fini(struct trace_pods *t)
{
    for (int i = 0; i < t->npods; i++)
        free(t->pods[i].name);
    free(t->pods);
    memset(t, 0, sizeof(*t));
}

/* ---- finding trace files ---- */

static char *exe_relative_traces(void)
{
    char exe[PATH_MAX], *slash, *out;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    /* The binary sits in <repo>/<build dir>/; traces sit beside the repository. */
    for (int up = 0; up < 2 && (slash = strrchr(exe, '/')) != NULL; up++)
        *slash = '\0';
    if (asprintf(&out, "%s/../shared/traces", exe) < 0)
        return NULL;
    return out;
}

/* The ways a short name may be spelled under a traces folder: prefix, then suffix. */
static const char *const trace_forms[][2] = {
    {"", ""},
    {"openb/", ""},
    {"genai-duty-cycle/", ""},
    {"openb/openb_pod_list_", ".csv"},
    {"openb/openb_node_list_", "_node.csv"},
};

static char *try_path(const char *dir, const char *const form[2], const char *name)
{
    char *full;

    if (asprintf(&full, "%s/%s%s%s", dir, form[0], name, form[1]) < 0)
        return NULL;
    if (access(full, R_OK) == 0)
        return full;
    free(full);
    return NULL;
}

char *trace_find(const char *name)
{
    const char *env = getenv("GPOOL_TRACES");
    char *exe_dir = exe_relative_traces();
    const char *dirs[] = {env, "../shared/traces", exe_dir};
    size_t nforms = sizeof(trace_forms) / sizeof(trace_forms[0]);
    char *found = NULL;

    if (access(name, R_OK) == 0 || strchr(name, '/') != NULL) {
        free(exe_dir);
        return xstrdup(name);
    }
    for (size_t d = 0; d < 3 && !found; d++) {
        if (dirs[d] == NULL || (d > 0 && env != NULL))
            continue;
        for (size_t f = 0; f < nforms && !found; f++)
            found = try_path(dirs[d], trace_forms[f], name);
    }
    free(exe_dir);
    return found;
}

const char *trace_search_path(void)
{
    const char *env = getenv("GPOOL_TRACES");
    return env ? env : "../shared/traces (or set GPOOL_TRACES)";
}

/* ---- usage series ---- */

struct sample {
    char pod[40];
    double t, v;
};

struct usage_ctx {
    struct columns cols;
    struct sample *s;
    int n, cap;
};

enum { U_VALUE, U_TIME, U_POD };
static const char *const usage_columns[] = {"value", "timestamp_anon", "container_ip"};

/* A number >= 0 (decimals allowed), or an error naming the column. */
static int column_num(struct csv_reader *r, const struct columns *c, int i, double *out)
{
    const char *s = column_value(r, c, i);
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || !(*out >= 0)) {
        reader_error(r, "column '%s': '%s' is not a number >= 0", c->names[i], s);
        return -1;
    }
    return 0;
}

static int usage_row(struct csv_reader *r, void *data)
{
    struct usage_ctx *x = data;
    struct sample *s;
    const char *pod;

    if (r->rows == 1)
        return columns_map(r, &x->cols);
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 4096;
        x->s = xreallocarray(x->s, (size_t)x->cap, sizeof(*x->s));
    }
    s = &x->s[x->n];
    pod = column_value(r, &x->cols, U_POD);
    if (*pod == '\0' || strlen(pod) >= sizeof(s->pod)) {
        reader_error(r, "column 'container_ip': empty or over %zu characters",
                     sizeof(s->pod) - 1);
        return -1;
    }
    snprintf(s->pod, sizeof(s->pod), "%s", pod);
    if (column_num(r, &x->cols, U_TIME, &s->t) < 0 || column_num(r, &x->cols, U_VALUE, &s->v) < 0)
        return -1;
    x->n++;
    return 0;
}

static int sample_cmp(const void *a, const void *b)
{
    const struct sample *x = a, *y = b;
    int c = strcmp(x->pod, y->pod);

    return c != 0 ? c : (x->t > y->t) - (x->t < y->t);
}

static int read_samples(const char *path, struct usage_ctx *x, char *err, size_t errlen)
{
    memset(x, 0, sizeof(*x));
    x->cols = (struct columns){.names = usage_columns, .n = 3, .nreq = 3};
    if (csv_read_file(path, usage_row, x, err, errlen) < 0) {
        free(x->s);
        return -1;
    }
    qsort(x->s, (size_t)x->n, sizeof(*x->s), sample_cmp);
    return 0;
}

/* Appends each pod's values of one file to its series, creating series for new pods. */
static void add_series(struct trace_usage *u, const struct usage_ctx *x, bool busy)
{
    for (int i = 0; i < x->n;) {
        int k = i, at = -1;
        float *v;

        while (k < x->n && strcmp(x->s[k].pod, x->s[i].pod) == 0)
            k++;
        for (int j = 0; j < u->n && at < 0; j++)
            if (strcmp(u->s[j].pod, x->s[i].pod) == 0)
                at = j;
        if (at < 0) {
            u->s = xreallocarray(u->s, (size_t)u->n + 1, sizeof(*u->s));
            at = u->n++;
            memset(&u->s[at], 0, sizeof(u->s[at]));
            u->s[at].pod = xstrdup(x->s[i].pod);
        }
        v = xcalloc((size_t)(k - i), sizeof(float));
        for (int j = i; j < k; j++)
            v[j - i] = busy ? (float)(x->s[j].v > 100 ? 1.0 : x->s[j].v / 100) : (float)x->s[j].v;
        if (busy) {
            u->s[at].busy = v;
            u->s[at].nbusy = k - i;
        } else {
            u->s[at].mem = v;
            u->s[at].nmem = k - i;
        }
        i = k;
    }
}

int trace_read_usage(const char *duty_path, const char *mem_path, struct trace_usage *out,
                     char *err, size_t errlen)
{
    struct usage_ctx duty, mem;
    int keep = 0;

    memset(out, 0, sizeof(*out));
    if (read_samples(duty_path, &duty, err, errlen) < 0)
        return -1;
    if (read_samples(mem_path, &mem, err, errlen) < 0) {
        free(duty.s);
        return -1;
    }
    add_series(out, &duty, true);
    add_series(out, &mem, false);
    free(duty.s);
    free(mem.s);
    /* A pod needs both series to be drawn. */
    for (int i = 0; i < out->n; i++) {
        if (out->s[i].nbusy > 0 && out->s[i].nmem > 0) {
            out->s[keep++] = out->s[i];
            continue;
        }
        free(out->s[i].pod);
        free(out->s[i].busy);
        free(out->s[i].mem);
    }
    out->n = keep;
    if (keep == 0) {
        snprintf(err, errlen, "%s and %s: no pod has both busy and memory samples", duty_path,
                 mem_path);
        trace_usage_fini(out);
        return -1;
    }
    return 0;
}

void trace_usage_fini(struct trace_usage *u)
{
    for (int i = 0; i < u->n; i++) {
        free(u->s[i].pod);
        free(u->s[i].busy);
        free(u->s[i].mem);
    }
    free(u->s);
    memset(u, 0, sizeof(*u));
}

/* ---- projects ---- */

struct project_ctx {
    struct columns cols;
    struct replay_projects *out;
    double deserved_sum;
};

enum { J_NAME, J_DESERVED, J_WEIGHT, J_LIMIT };
static const char *const project_columns[] = {"name", "deserved_pct", "weight", "limit_pct"};

static int project_pct(struct csv_reader *r, const struct columns *c, int i, double *out)
{
    if (column_num(r, c, i, out) < 0)
        return -1;
    if (*out > 100) {
        reader_error(r, "column '%s': %g is over 100 (percent of the cluster's GPUs)",
                     c->names[i], *out);
        return -1;
    }
    *out /= 100;
    return 0;
}

static int project_row(struct csv_reader *r, void *data)
{
    struct project_ctx *x = data;
    struct replay_project_def d = {.limit_share = -1, .weight = 1};
    const char *name;
    int64_t w;

    if (r->rows == 1)
        return columns_map(r, &x->cols);
    name = column_value(r, &x->cols, J_NAME);
    if (*name == '\0') {
        reader_error(r, "column 'name': empty project name");
        return -1;
    }
    for (int i = 0; i < x->out->n; i++)
        if (strcmp(x->out->p[i].name, name) == 0) {
            reader_error(r, "column 'name': duplicate project '%s'", name);
            return -1;
        }
    if (project_pct(r, &x->cols, J_DESERVED, &d.deserved_share) < 0)
        return -1;
    if (x->cols.at[J_WEIGHT] >= 0) {
        if (column_int(r, &x->cols, J_WEIGHT, 1000, &w) < 0)
            return -1;
        d.weight = (int)w;
    }
    if (x->cols.at[J_LIMIT] >= 0 && *column_value(r, &x->cols, J_LIMIT) != '\0' &&
        project_pct(r, &x->cols, J_LIMIT, &d.limit_share) < 0)
        return -1;
    x->deserved_sum += d.deserved_share;
    if (x->deserved_sum > 1.000001) {
        reader_error(r, "column 'deserved_pct': the projects deserve more than 100%% together");
        return -1;
    }
    d.name = xstrdup(name);
    x->out->p = xreallocarray(x->out->p, (size_t)x->out->n + 1, sizeof(*x->out->p));
    x->out->p[x->out->n++] = d;
    return 0;
}

int trace_read_projects(const char *path, struct replay_projects *out, char *err, size_t errlen)
{
    struct project_ctx x = {.cols = {.names = project_columns, .n = 4, .nreq = 2}, .out = out};

    memset(out, 0, sizeof(*out));
    if (csv_read_file(path, project_row, &x, err, errlen) < 0) {
        replay_projects_fini(out);
        return -1;
    }
    return 0;
}
