/* An elementwise op on an int8 tensor by table lookup: the table holds the op's 256 results,
 * computed by the compiler as onnxruntime computes DequantizeLinear -> op -> QuantizeLinear. */
#include "wl_kernels.h"

int wl_lut_s8(const wl_lut_s8_params_t *p, const int8_t *table, const int8_t *x, int8_t *y)
{
    if (p == 0 || table == 0 || x == 0 || y == 0)
        return WL_ERR_ARG;
    const int32_t n = p->size; /* read once: a store through int8_t * may alias the params */
    for (int32_t i = 0; i < n; i++)
        y[i] = table[(int32_t)x[i] + 128];
    return WL_OK;
}
