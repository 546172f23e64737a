/* Softmax along one axis, float32: y = exp(x - max) / sum; with p->log,
 * LogSoftmax: y = (x - max) - log(sum). */
#include <math.h>

#include "wl_kernels.h"

int wl_softmax_f32(const wl_softmax_params_t *p, const float *x, float *y)
{
    if (p == 0 || x == 0 || y == 0 || p->n < 1 || p->inner < 1)
        return WL_ERR_ARG;
    const int32_t n = p->n, inner = p->inner;
    for (int32_t o = 0; o < p->outer; o++) {
        for (int32_t i = 0; i < inner; i++) {
            const float *xs = x + o * n * inner + i;
            float *ys = y + o * n * inner + i;
            float m = xs[0];
            for (int32_t k = 1; k < n; k++)
                m = xs[k * inner] > m ? xs[k * inner] : m;
            float sum = 0.0f;
            if (p->log) {
                for (int32_t k = 0; k < n; k++)
                    sum += expf(xs[k * inner] - m);
                /* (x - max) first: max + log(sum) rounded at the inputs' magnitude
                 * would lose the small differences between large inputs. */
                const float lsum = logf(sum);
                for (int32_t k = 0; k < n; k++)
                    ys[k * inner] = (xs[k * inner] - m) - lsum;
                continue;
            }
            for (int32_t k = 0; k < n; k++) {
                const float e = expf(xs[k * inner] - m);
                ys[k * inner] = e;
                sum += e;
            }
            const float inv = 1.0f / sum;
            for (int32_t k = 0; k < n; k++)
                ys[k * inner] *= inv;
        }
    }
    return WL_OK;
}
