/* A layer's bias from its shared values, decoded into the arena just before the layer runs. */
#include "wl_kernels.h"

int wl_bias_decode_f32(const uint32_t *index, const float *codebook, uint32_t n, uint32_t bits, float *out)
{
    if (bits == 0u || bits > 8u || (bits & (bits - 1u)) != 0u)
        return WL_ERR_ARG;
    const uint32_t per = 32u / bits, mask = (1u << bits) - 1u;
    for (uint32_t i = 0; i < n; i += per) {
        uint32_t w = *index++;
        const uint32_t end = n - i < per ? n : i + per;
        for (uint32_t j = i; j < end; j++, w >>= bits)
            out[j] = codebook[w & mask];
    }
    return WL_OK;
}
