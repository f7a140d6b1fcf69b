/*
 * Reports of fill experiments: a text table, one JSON object, per-seed CSV curves and an SVG
 * plot of unallocated GPUs against arrived demand. One data set feeds every back end.
 */
#ifndef GPOOL_SIM_REPORT_H
#define GPOOL_SIM_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "sim/fill.h"

struct report_run {
    int policy; /* a fill policy */
    struct fill_result *results; /* one per seed */
    int nseeds;
    struct fill_curve mean;
    double seconds; /* wall time of all seeds */
};

/* Mean and sample standard deviation of unallocated GPU % at 100% arrived demand. */
void report_unallocated(const struct report_run *r, double *mean, double *sd);

json_t *report_json(const struct report_run *r);
void report_table(FILE *f, const struct report_run *runs, int n, const char *title);
int report_csv(const char *path, const struct report_run *runs, int n);
int report_svg(const char *path, const struct report_run *runs, int n, const char *title);
/* Text inside an SVG element, with XML's special characters escaped. */
void report_svg_text(FILE *f, const char *s);

#endif
