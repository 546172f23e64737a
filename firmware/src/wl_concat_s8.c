/* Concat of int8 tensors: each input's block copied per outer index, or mapped through its
 * table when its scale and zero point are not the output's. */
#include <string.h>

#include "wl_kernels.h"

int wl_concat_s8(const wl_concat_params_t *p, const int8_t *const *xs, const int8_t *const *tables, int8_t *y)
{
    if (p == 0 || xs == 0 || tables == 0 || y == 0 || p->inputs < 1 || p->inputs > WL_CONCAT_MAX_INPUTS)
        return WL_ERR_ARG;
    const int32_t inputs = p->inputs, outer = p->outer;
    int32_t inner[WL_CONCAT_MAX_INPUTS];
    for (int32_t k = 0; k < inputs; k++) { /* read once: stores through int8_t * may alias the params */
        if (xs[k] == 0)
            return WL_ERR_ARG;
        inner[k] = p->inner[k];
    }
    for (int32_t o = 0; o < outer; o++) {
        for (int32_t k = 0; k < inputs; k++) {
            const int8_t *src = xs[k] + o * inner[k];
            const int8_t *table = tables[k];
            if (table == 0) {
                memcpy(y, src, (size_t)inner[k]);
            } else {
                for (int32_t i = 0; i < inner[k]; i++)
                    y[i] = table[(int32_t)src[i] + 128];
            }
            y += inner[k];
        }
    }
    return WL_OK;
}
