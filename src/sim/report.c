/*
 * Every report is computed from the same per-seed curves, so the table, the JSON, the CSV and
 * the plot never disagree.
 */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#define ARRIVE_100 100

void report_unallocated(const struct report_run *r, double *mean, double *sd)
{
    double sum = 0, sq = 0;

    for (int i = 0; i < r->nseeds; i++)
        sum += 100.0 - r->results[i].curve.alloc_pct[ARRIVE_100];
    *mean = r->nseeds ? sum / r->nseeds : 0;
    for (int i = 0; i < r->nseeds; i++) {
        double d = 100.0 - r->results[i].curve.alloc_pct[ARRIVE_100] - *mean;
        sq += d * d;
    }
    *sd = r->nseeds > 1 ? sqrt(sq / (r->nseeds - 1)) : 0;
}

static double mean_of(const struct report_run *r, int64_t (*get)(const struct fill_result *))
{
    double sum = 0;
    for (int i = 0; i < r->nseeds; i++)
        sum += (double)get(&r->results[i]);
    return r->nseeds ? sum / r->nseeds : 0;
}

static int64_t get_arrived(const struct fill_result *x)
{
    return x->pods_arrived;
}

static int64_t get_failed(const struct fill_result *x)
{
    return x->pods_failed;
}

json_t *report_json(const struct report_run *r)
{
    json_t *o = json_object(), *seeds = json_array(), *curve = json_array();
    double mean, sd;

    for (int i = 0; i < r->nseeds; i++)
        json_array_append_new(seeds, json_integer((json_int_t)r->results[i].seed));
    for (int b = 0; b < FILL_BUCKETS; b++)
        json_array_append_new(curve,
                              json_pack("{s:i, s:f, s:f}", "arrive_pct", b, "alloc_pct",
                                        r->mean.alloc_pct[b], "frag_pct", r->mean.frag_pct[b]));
    report_unallocated(r, &mean, &sd);
    json_object_set_new(o, "policy", json_string(fill_policy_name(r->policy)));
    json_object_set_new(o, "seeds", seeds);
    json_object_set_new(o, "pods_arrived", json_real(mean_of(r, get_arrived)));
    json_object_set_new(o, "pods_failed", json_real(mean_of(r, get_failed)));
    json_object_set_new(o, "unallocated_gpu_pct_at_arrive_100", json_real(mean));
    json_object_set_new(o, "unallocated_gpu_pct_sd", json_real(sd));
    json_object_set_new(o, "seconds_per_seed", json_real(r->nseeds ? r->seconds / r->nseeds : 0));
    json_object_set_new(o, "curve", curve);
    return o;
}

void report_table(FILE *f, const struct report_run *runs, int n, const char *title)
{
    fprintf(f, "%s\n", title);
    fprintf(f, "%-12s %6s %16s %10s %12s %12s %10s\n", "policy", "seeds", "unalloc%@100", "sd",
            "frag%@100", "pods_failed", "s/seed");
    for (int i = 0; i < n; i++) {
        const struct report_run *r = &runs[i];
        double mean, sd;

        report_unallocated(r, &mean, &sd);
        fprintf(f, "%-12s %6d %16.2f %10.2f %12.2f %12.1f %10.3f\n", fill_policy_name(r->policy),
                r->nseeds, mean, sd, r->mean.frag_pct[ARRIVE_100], mean_of(r, get_failed),
                r->nseeds ? r->seconds / r->nseeds : 0);
    }
}

int report_csv(const char *path, const struct report_run *runs, int n)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -errno;
    fprintf(f, "policy,seed,arrive_pct,alloc_pct,unallocated_pct,frag_pct\n");
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < runs[i].nseeds; s++) {
            const struct fill_result *x = &runs[i].results[s];
            for (int b = 0; b < FILL_BUCKETS; b++)
                fprintf(f, "%s,%llu,%d,%.2f,%.2f,%.2f\n", fill_policy_name(runs[i].policy),
                        (unsigned long long)x->seed, b, x->curve.alloc_pct[b],
                        100.0 - x->curve.alloc_pct[b], x->curve.frag_pct[b]);
        }
    }
    if (fclose(f) != 0)
        return -errno;
    return 0;
}

/* Plot geometry, in SVG user units. */
#define SVG_W 720
#define SVG_H 440
#define SVG_LEFT 60
#define SVG_RIGHT 170
#define SVG_TOP 40
#define SVG_BOTTOM 50

static double svg_x(double arrive)
{
    return SVG_LEFT + arrive / (FILL_BUCKETS - 1) * (SVG_W - SVG_LEFT - SVG_RIGHT);
}

static double svg_y(double pct)
{
    return SVG_TOP + (100.0 - pct) / 100.0 * (SVG_H - SVG_TOP - SVG_BOTTOM);
}

/* Text inside an SVG element, with XML's special characters escaped. */
void report_svg_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static void svg_axes(FILE *f, const char *title)
{
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SVG_W, SVG_H);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\">", SVG_LEFT);
    report_svg_text(f, title);
    fputs("</text>\n", f);
    for (int y = 0; y <= 100; y += 20) {
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n",
                SVG_LEFT, svg_y(y), svg_x(FILL_BUCKETS - 1), svg_y(y), SVG_LEFT - 6, svg_y(y) + 4,
                y);
    }
    for (int x = 0; x < FILL_BUCKETS; x += 10) {
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n",
                svg_x(x), svg_y(0), svg_x(x), svg_y(100), x == 100 ? "#999" : "#eee", svg_x(x),
                svg_y(0) + 18, x);
    }
    fprintf(f,
            "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">arrived GPU demand "
            "(%% of cluster GPU capacity)</text>\n",
            svg_x(65), SVG_H - 8);
    fprintf(f,
            "<text transform=\"translate(16,%d) rotate(-90)\" text-anchor=\"middle\">"
            "unallocated GPU %%</text>\n",
            (SVG_H - SVG_BOTTOM + SVG_TOP) / 2);
}

int report_svg(const char *path, const struct report_run *runs, int n, const char *title)
{
    static const char *const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                         "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -errno;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n",
            SVG_W, SVG_H);
    svg_axes(f, title);
    for (int i = 0; i < n; i++) {
        const char *color = colors[i % 8];
        double mean, sd;

        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", color);
        for (int b = 0; b < FILL_BUCKETS; b++)
            fprintf(f, "%.1f,%.1f ", svg_x(b), svg_y(100.0 - runs[i].mean.alloc_pct[b]));
        fprintf(f, "\"/>\n");
        report_unallocated(&runs[i], &mean, &sd);
        fprintf(f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>"
                "<text x=\"%d\" y=\"%d\">%s %.2f%%</text>\n",
                SVG_W - SVG_RIGHT + 12, SVG_TOP + 10 + 20 * i, SVG_W - SVG_RIGHT + 30,
                SVG_TOP + 10 + 20 * i, color, SVG_W - SVG_RIGHT + 36, SVG_TOP + 14 + 20 * i,
                fill_policy_name(runs[i].policy), mean);
    }
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0)
        return -errno;
    return 0;
}
