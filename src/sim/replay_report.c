/*
 * What `gpool sim replay` prints and writes: a table, JSON, a CSV of the curves, and a plot of
 * allocated and used GPUs over time.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "sim/replay.h"
#include "sim/report.h"

#define SATURATED 0.95

/* Saturation is judged on the busy window: see replay.h. */
static bool saturated(const struct replay_result *r)
{
    return r->allocated_ratio_busy >= SATURATED;
}

void replay_table(FILE *f, const struct replay_result *r, int n, const char *title)
{
    fprintf(f, "%s\n", title);
    fprintf(f, "ratios over all %.1f h of arrivals, [in brackets] over the last %.1f h (from the "
               "first percentile of arrivals)\n", r[0].window_hours, r[0].busy_hours);
    fprintf(f, "%-11s %13s %13s %13s %9s %9s %9s %6s %7s %6s %8s %8s %6s\n", "policy",
            "alloc", "used", "goodput", "delay_m", "delay_95", "compl_m", "jain", "preempt",
            "swaps", "lost_gh", "own_slow", "s");
    for (int i = 0; i < n; i++)
        fprintf(f,
                "%-11s %5.3f [%5.3f] %5.3f [%5.3f] %5.3f [%5.3f] %8.0fs %8.0fs %8.0fs %6.3f %7d "
                "%6d %8.1f %7.1f%% %6.1f%s\n",
                replay_policy_name(r[i].policy), r[i].allocated_ratio, r[i].allocated_ratio_busy,
                r[i].used_ratio, r[i].used_ratio_busy, r[i].goodput, r[i].goodput_busy,
                r[i].delay_mean, r[i].delay_p95, r[i].completion_mean, r[i].jain,
                r[i].preemptions, r[i].swaps, r[i].work_lost_gpu_hours, 100 * r[i].owner_slowdown,
                r[i].seconds, saturated(&r[i]) ? "  saturated" : "");
}

json_t *replay_json(const struct replay_result *r)
{
    json_t *o = json_pack("{s:i, s:f, s:f, s:f, s:f}", "moves", r->moves, "busy_window_hours",
                          r->busy_hours,
                          "allocated_ratio_busy", r->allocated_ratio_busy, "used_ratio_busy",
                          r->used_ratio_busy, "goodput_busy", r->goodput_busy);

    json_t *rest = json_pack("{s:s, s:f, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                     "s:i, s:i, s:f, s:f, s:i, s:b, s:f}",
                     "policy", replay_policy_name(r->policy), "load", r->load, "jobs", r->jobs,
                     "skipped", r->skipped, "never_started", r->never_started, "window_hours",
                     r->window_hours, "allocated_ratio", r->allocated_ratio, "used_ratio",
                     r->used_ratio, "goodput", r->goodput, "queue_delay_mean_s", r->delay_mean,
                     "queue_delay_p95_s", r->delay_p95, "completion_mean_s", r->completion_mean,
                     "completion_p95_s", r->completion_p95, "jain", r->jain, "preemptions",
                     r->preemptions, "swaps", r->swaps, "work_lost", r->work_lost_gpu_hours,
                     "owner_slowdown", r->owner_slowdown, "owners", r->owners, "saturated",
                     saturated(r), "seconds", r->seconds);

    json_object_update(o, rest);
    json_decref(rest);
    return o;
}

int replay_csv(const char *path, const struct replay_result *r, int n)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -errno;
    fprintf(f, "policy,load,hours,allocated_gpus,used_gpus\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < r[i].ncurve; k++)
            fprintf(f, "%s,%g,%.4f,%.3f,%.3f\n", replay_policy_name(r[i].policy), r[i].load,
                    r[i].curve[k].hours, r[i].curve[k].allocated, r[i].curve[k].used);
    return fclose(f) == 0 ? 0 : -errno;
}

#define W 760
#define H 440
#define L 60
#define R 180
#define T 40
#define B 50

static void axes(FILE *f, const char *title, double xmax, double ymax)
{
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n<text x=\"%d\" y=\"24\" "
               "font-size=\"15\">", W, H, L);
    report_svg_text(f, title);
    fputs("</text>\n", f);
    for (int k = 0; k <= 5; k++) {
        double y = H - B - (double)k / 5 * (H - T - B);

        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n",
                L, y, W - R, y, L - 6, y + 4, ymax * k / 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n",
                L + (double)k / 5 * (W - R - L), H - B + 18, xmax * k / 5);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">hours since the first arrival"
               "</text>\n<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" "
               "text-anchor=\"middle\">GPUs (solid: allocated, dashed: used)</text>\n",
            (L + W - R) / 2, H - 12, (T + H - B) / 2, (T + H - B) / 2);
}

int replay_svg(const char *path, const struct replay_result *r, int n, const char *title,
               double capacity_gpus)
{
    static const char *const colors[] = {"#7f7f7f", "#ff7f0e", "#1f77b4", "#2ca02c"};
    double xmax = 1;
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -errno;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < r[i].ncurve; k++)
            xmax = r[i].curve[k].hours > xmax ? r[i].curve[k].hours : xmax;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    axes(f, title, xmax, capacity_gpus);
    for (int i = 0; i < n; i++) {
        const char *c = colors[r[i].policy % 4];

        for (int used = 0; used < 2; used++) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.4\"%s points=\"",
                    c, used ? " stroke-dasharray=\"4 3\"" : "");
            for (int k = 0; k < r[i].ncurve; k++)
                fprintf(f, "%.1f,%.1f ", L + r[i].curve[k].hours / xmax * (W - R - L),
                        H - B - (used ? r[i].curve[k].used : r[i].curve[k].allocated) /
                                    capacity_gpus * (H - T - B));
            fputs("\"/>\n", f);
        }
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                   "stroke-width=\"3\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
                W - R + 12, T + 10 + 20 * i, W - R + 30, T + 10 + 20 * i, c, W - R + 36,
                T + 14 + 20 * i, replay_policy_name(r[i].policy));
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -errno;
}
