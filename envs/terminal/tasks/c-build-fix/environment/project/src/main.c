#include <stdio.h>
#include <stdlib.h>

#include "stats.h"

#define MAX_VALUES 100000

/* stats: read numbers from stdin, print count, mean, population standard deviation, min, max. */
int main(void)
{
    static char text[1 << 22];
    static double values[MAX_VALUES];
    size_t len = fread(text, 1, sizeof text - 1, stdin);
    text[len] = '\0';
    int count = parse_numbers(text, values, MAX_VALUES);
    if (count < 0) {
        fprintf(stderr, "stats: not a number in the input\n");
        return 1;
    }
    if (count == 0) {
        fprintf(stderr, "stats: no numbers\n");
        return 1;
    }
    struct summary s = summarize(values, count);
    if (verbose)
        fprintf(stderr, "stats: %d values\n", count);
    printf("n=%d mean=%.3f sd=%.3f min=%g max=%g\n", s.count, s.mean, s.stddev, s.min, s.max);
    return 0;
}
