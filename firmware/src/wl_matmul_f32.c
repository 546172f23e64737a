/* Product of two activations, with an optional broadcast batch. */
#include "wl_kernels.h"

int wl_matmul_f32(const wl_matmul_params_t *p, const float *a, const float *b, float *y)
{
    if (p == 0 || a == 0 || b == 0 || y == 0 || p->m < 1 || p->k < 1 || p->n < 1 || p->batch < 1)
        return WL_ERR_ARG;
    const int32_t M = p->m, K = p->k, N = p->n;
    for (int32_t t = 0; t < p->batch; t++) {
        const float *ab = a + t * p->a_batch_stride;
        const float *bb = b + t * p->b_batch_stride;
        float *yb = y + t * M * N;
        for (int32_t i = 0; i < M; i++) {
            for (int32_t j = 0; j < N; j++)
                yb[i * N + j] = 0.0f;
            for (int32_t k = 0; k < K; k++) {
                const float av = ab[i * K + k];
                const float *brow = bb + k * N;
                for (int32_t j = 0; j < N; j++)
                    yb[i * N + j] += av * brow[j];
            }
            for (int32_t j = 0; j < N; j++)
                yb[i * N + j] = wl_clamp(yb[i * N + j], p->act_min, p->act_max);
        }
    }
    return WL_OK;
}
