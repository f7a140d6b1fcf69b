/*
 * region-set: sets one job's cap, share and limit in a GPU's region, creating the region if
 * needed.  The plain-C stand-in for `gpool region set` where gpool itself is not built (the real
 * GPU check, which needs gcc alone).
 *
 *   region-set DIR UUID TOTAL_BYTES JOB CAP_BYTES SHARE_MILLI LIMIT_MILLI [borrower|lender]
 *
 * borrower marks the job a borrower (gpr_job_set_borrower), lender marks it not one; without
 * either a new job is a lender and an existing one keeps its mark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/region.h"

int main(int argc, char **argv)
{
    char err[512];
    struct gpr_region *r;

    if ((argc != 8 && argc != 9) ||
        (argc == 9 && strcmp(argv[8], "borrower") != 0 && strcmp(argv[8], "lender") != 0)) {
        fprintf(stderr, "usage: region-set DIR UUID TOTAL JOB CAP SHARE_MILLI LIMIT_MILLI "
                        "[borrower|lender]\n");
        return 2;
    }
    r = gpr_create(argv[1], argv[2], strtoull(argv[3], NULL, 10), err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "region-set: %s\n", err);
        return 1;
    }
    if (gpr_job_set(r, argv[4], strtoull(argv[5], NULL, 10), (unsigned)atoi(argv[6]),
                    (unsigned)atoi(argv[7])) < 0) {
        fprintf(stderr, "region-set: bad share or limit, or the job table is full\n");
        return 2;
    }
    if (argc == 9)
        gpr_job_set_borrower(r, argv[4], strcmp(argv[8], "borrower") == 0);
    gpr_close(r);
    return 0;
}
