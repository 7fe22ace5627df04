#!/bin/bash
# Oracle for c-build-fix: declare (not define) `verbose` in the header, link libm, parse with
# strtod and reject partial numbers.
set -euo pipefail
cd /app/project
sed -i 's/^int verbose = 0;$/extern int verbose;/' src/stats.h
sed -i 's/^#define MAX_VALUES 100000$/#define MAX_VALUES 100000\n\nint verbose = 0;/' src/main.c
sed -i 's/-o \$@ \$(OBJS)$/-o $@ $(OBJS) -lm/' Makefile
cat > src/parse.c <<'C'
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* Read whitespace-separated numbers from text into out (at most capacity of them).
   Returns how many were read, or -1 on a token that is not a number. */
int parse_numbers(const char *text, double *out, int capacity)
{
    int n = 0;
    const char *p = text;
    while (*p && n < capacity) {
        char *end;
        while (*p && strchr(" \n\t\r", *p) != NULL)
            p++;
        if (!*p)
            break;
        out[n] = strtod(p, &end);
        if (end == p || (*end && strchr(" \n\t\r", *end) == NULL))
            return -1;
        n++;
        p = end;
    }
    return n;
}
C
make clean >/dev/null
make
./stats < sample.txt
