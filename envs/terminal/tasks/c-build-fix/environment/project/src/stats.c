#include <math.h>

#include "stats.h"

struct summary summarize(const double *values, int count)
{
    struct summary s = {count, 0, 0, values[0], values[0]};
    double sum = 0, squares = 0;
    for (int i = 0; i < count; i++) {
        sum += values[i];
        if (values[i] < s.min)
            s.min = values[i];
        if (values[i] > s.max)
            s.max = values[i];
    }
    s.mean = sum / count;
    for (int i = 0; i < count; i++)
        squares += (values[i] - s.mean) * (values[i] - s.mean);
    s.stddev = sqrt(squares / count);
    return s;
}
