/* Mean, sum or max over the middle axis of [outer][n][inner], float32. */
#include "wl_kernels.h"

int wl_reduce_f32(const wl_reduce_params_t *p, const float *x, float *y)
{
    if (p == 0 || x == 0 || y == 0 || p->n < 1 || p->op < 0 || p->op > 2)
        return WL_ERR_ARG;
    const int32_t n = p->n, inner = p->inner;
    for (int32_t o = 0; o < p->outer; o++) {
        for (int32_t i = 0; i < inner; i++) {
            const float *xs = x + o * n * inner + i;
            float acc = xs[0];
            if (p->op == WL_REDUCE_MAX) {
                for (int32_t k = 1; k < n; k++)
                    acc = xs[k * inner] > acc ? xs[k * inner] : acc;
            } else {
                for (int32_t k = 1; k < n; k++)
                    acc += xs[k * inner];
                if (p->op == WL_REDUCE_MEAN)
                    acc /= (float)n;
            }
            y[o * inner + i] = acc;
        }
    }
    return WL_OK;
}
