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
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            break;
        out[n] = atoi(p);
        end = (char *)p;
        while (*end && strchr(" \n\t\r", *end) == NULL)
            end++;
        if (end == p)
            return -1;
        n++;
        p = end;
    }
    return n;
}
