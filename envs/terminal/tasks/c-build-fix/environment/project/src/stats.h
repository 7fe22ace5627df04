/* Summary statistics over a list of numbers. */

int verbose = 0;

struct summary {
    int count;
    double mean;
    double stddev;
    double min;
    double max;
};

int parse_numbers(const char *text, double *out, int capacity);
struct summary summarize(const double *values, int count);
