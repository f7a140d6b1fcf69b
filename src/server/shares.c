/*
 * The projects view's figures, from three sources the server already keeps: the projects in the
 * store, what each GPU holds (the loop's count) with what its node measured, and the fair shares
 * of the last cycle.
 */
#include "server/shares.h"

struct shares_ctx {
    json_t *alloc, *fair;
    json_t *by_project; /* name -> {"allocated", "used"} in GPUs */
    json_t *out;
};

static json_t *tally(json_t *by_project, const char *name)
{
    json_t *t = json_object_get(by_project, name);

    if (t == NULL) {
        t = json_pack("{s:f, s:f}", "allocated", 0.0, "used", 0.0);
        json_object_set_new(by_project, name, t);
    }
    return t;
}

static void add_to(json_t *t, const char *key, double v)
{
    json_object_set_new(t, key, json_real(json_real_value(json_object_get(t, key)) + v));
}

static double busy_of(const struct store_node *n, size_t index)
{
    size_t i;
    json_t *m;

    json_array_foreach(n->telemetry, i, m) if (json_integer_value(json_object_get(m, "index")) ==
                                               (json_int_t)index) return (double)
            json_integer_value(json_object_get(m, "utilization_pct")) /
        100;
    return 0;
}

/* Each job on each GPU of a node: its allocation, and its part of the GPU's measured use. */
static void tally_node(const struct store_node *n, void *arg)
{
    struct shares_ctx *x = arg;
    json_t *gpus = json_object_get(x->alloc, n->name), *g, *job;
    size_t i, k;

    json_array_foreach(gpus, i, g)
    {
        double held = (double)json_integer_value(json_object_get(g, "allocated_milli"));
        double busy = busy_of(n, i);

        json_array_foreach(json_object_get(g, "jobs"), k, job)
        {
            json_t *t = tally(x->by_project, json_string_value(json_object_get(job, "project")));
            double milli = (double)json_integer_value(json_object_get(job, "milli"));

            add_to(t, "allocated", milli / 1000);
            if (held > 0)
                add_to(t, "used", busy * milli / held);
        }
    }
}

static void project_row(const struct store_project *p, void *arg)
{
    struct shares_ctx *x = arg;
    json_t *t = tally(x->by_project, p->name);
    json_t *f = json_object_get(x->fair, p->name);

    json_array_append_new(
        x->out,
        json_pack(
            "{s:s, s:s, s:f, s:o, s:i, s:o, s:O, s:O}", "name", p->name, "parent", p->parent,
            "deserved_gpus", (double)p->deserved_milli / 1000, "limit_gpus",
            p->limit_milli < 0 ? json_null() : json_real((double)p->limit_milli / 1000), "weight",
            p->weight, "fair_share_gpus",
            f ? json_real((double)json_integer_value(json_object_get(f, "fair_share_milli")) / 1000)
              : json_real(0),
            "allocated_gpus", json_object_get(t, "allocated"), "used_gpus",
            json_object_get(t, "used")));
}

json_t *shares_json(struct store *s, json_t *alloc, json_t *fair)
{
    struct shares_ctx x = {alloc, fair, json_object(), json_array()};

    store_nodes(s, tally_node, &x);
    store_projects(s, project_row, &x);
    json_decref(x.by_project);
    return json_pack("{s:o}", "projects", x.out);
}
