/* Product of two activations (or an activation and a constant), with a broadcast batch. */
#include "wl_kernels.h"

int wl_matmul_f32(const wl_matmul_params_t *p, const float *a, const float *b, float *y)
{
    if (p == 0 || a == 0 || b == 0 || y == 0 || p->m < 1 || p->k < 1 || p->n < 1 ||
        p->batch_ndim < 1 || p->batch_ndim > WL_MAX_DIMS)
        return WL_ERR_ARG;
    const int32_t M = p->m, K = p->k, N = p->n;
    int32_t batch = 1;
    for (int32_t d = 0; d < p->batch_ndim; d++)
        batch *= p->batch_shape[d];
    int32_t idx[WL_MAX_DIMS] = {0};
    int32_t a_off = 0, b_off = 0;
    const int32_t last = p->batch_ndim - 1;
    for (int32_t t = 0; t < batch; t++) {
        const float *ab = a + a_off;
        const float *bb = b + b_off;
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
        wl_next_index(idx, p->batch_shape, last, &a_off, p->a_strides, &b_off, p->b_strides);
    }
    return WL_OK;
}
