/* Linked with -Wl,--wrap=malloc,--wrap=free into a peer's firmware: tracks the
 * peak of bytes allocated on the heap, printed as "wlh_heap_peak N" at exit. */
#include <stdio.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void __real_free(void *p);

static size_t current, peak;

void *__wrap_malloc(size_t n)
{
    size_t *p = __real_malloc(n + sizeof(size_t) * 2);
    if (p == NULL)
        return NULL;
    p[0] = n;
    current += n;
    peak = current > peak ? current : peak;
    return p + 2; /* keep 8-byte alignment */
}

void __wrap_free(void *q)
{
    if (q == NULL)
        return;
    size_t *p = (size_t *)q - 2;
    current -= p[0];
    __real_free(p);
}

static void report_peak(void)
{
    printf("wlh_heap_peak %lu\n", (unsigned long)peak);
}

/* The start-up code runs constructors but registers no destructors. */
__attribute__((constructor)) static void register_report(void)
{
    atexit(report_peak);
}
