/* int8 max and average pooling, 2-D (1-D as one row; global pooling: a window the size of the
 * input). Max: the largest int8 of the taps inside the input. Average: as onnxruntime's QDQ path
 * computes it: every tap inside the input dequantized to float32, the taps added in the order of
 * onnxruntime's float kernel for this pooling (p->sum_order), the sum divided by the count of taps
 * inside the input (or inside the padded input with count_include_pad: padding is the real 0),
 * then quantized to the output's parameters. The order matters: an average often lies exactly on
 * a half step of the output (a 2x2 window with equal scales, one time in four), and the rounding
 * of a float32 sum in another order decides it the other way. */
#include "wl_kernels.h"

/* each product rounded before it is added, as onnxruntime's separate dequantize does */
#pragma GCC optimize("fp-contract=off")

static inline float wl_dq(int32_t v, int32_t zx, float sx)
{
    return (float)(v - zx) * sx;
}

/* WL_SUM_COLUMNS: column ix of rows [r0, r1), from the first row down; 0 outside the input */
static float wl_column_sum(const int8_t *xc, int32_t W, int32_t ix, int32_t r0, int32_t r1, int32_t zx, float sx)
{
    if (ix < 0 || ix >= W || r0 >= r1)
        return 0.0f;
    float s = wl_dq(xc[r0 * W + ix], zx, sx);
    for (int32_t iy = r0 + 1; iy < r1; iy++)
        s += wl_dq(xc[iy * W + ix], zx, sx);
    return s;
}

/* WL_SUM_LANES: n values in four interleaved partial sums, (0 + 2) + (1 + 3), then the rest */
static float wl_lane_sum(const int8_t *x, int32_t n, int32_t zx, float sx)
{
    float l0 = 0.0f, l1 = 0.0f, l2 = 0.0f, l3 = 0.0f;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        l0 += wl_dq(x[i], zx, sx);
        l1 += wl_dq(x[i + 1], zx, sx);
        l2 += wl_dq(x[i + 2], zx, sx);
        l3 += wl_dq(x[i + 3], zx, sx);
    }
    float s = (l0 + l2) + (l1 + l3);
    for (; i < n; i++)
        s += wl_dq(x[i], zx, sx);
    return s;
}

int wl_pool2d_s8(const wl_pool_s8_params_t *p, const int8_t *x, int8_t *y)
{
    if (p == 0 || x == 0 || y == 0 || p->k_h < 1 || p->k_w < 1)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t H = p->in_h, W = p->in_w, KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const int32_t PT = p->pad_top, PL = p->pad_left, PB = p->pad_bottom, PR = p->pad_right;
    const int32_t OH = p->out_h, OW = p->out_w, SY = p->stride_h, SX = p->stride_w, zx = p->x_zero_point;
    const int32_t zy = p->y_zero_point, lo = p->act_min, hi = p->act_max, is_max = p->mode == WL_POOL_MAX;
    const int32_t include_pad = p->count_include_pad, order = p->sum_order;
    const float sx = p->x_scale, sy = p->y_scale;
    for (int32_t c = 0; c < p->channels; c++) {
        const int8_t *xc = x + c * H * W;
        int8_t *yc = y + c * OH * OW;
        for (int32_t oy = 0; oy < OH; oy++) {
            const int32_t by = oy * SY - PT;
            for (int32_t ox = 0; ox < OW; ox++) {
                const int32_t bx = ox * SX - PL;
                /* the taps inside the input, and inside the padded input */
                int32_t inside = KH * KW, padded = KH * KW;
                if (by < 0 || bx < 0 || by + (KH - 1) * DH >= H || bx + (KW - 1) * DW >= W) {
                    inside = padded = 0;
                    for (int32_t ky = 0; ky < KH; ky++) {
                        const int32_t iy = by + ky * DH;
                        for (int32_t kx = 0; kx < KW; kx++) {
                            const int32_t ix = bx + kx * DW;
                            padded += iy >= -PT && iy < H + PB && ix >= -PL && ix < W + PR;
                            inside += iy >= 0 && iy < H && ix >= 0 && ix < W;
                        }
                    }
                }
                float real;
                if (is_max) {
                    int32_t m = -128;
                    for (int32_t ky = 0; ky < KH; ky++) {
                        const int32_t iy = by + ky * DH;
                        if (iy < 0 || iy >= H)
                            continue;
                        for (int32_t kx = 0; kx < KW; kx++) {
                            const int32_t ix = bx + kx * DW;
                            if (ix >= 0 && ix < W && xc[iy * W + ix] > m)
                                m = xc[iy * W + ix];
                        }
                    }
                    real = wl_dq(m, zx, sx);
                } else {
                    float sum = 0.0f;
                    if (order == WL_SUM_LANES) {
                        sum = wl_lane_sum(xc, H * W, zx, sx); /* the window is the whole plane */
                    } else if (order == WL_SUM_COLUMNS) {
                        const int32_t r0 = by > 0 ? by : 0, r1 = by + KH < H ? by + KH : H;
                        sum = wl_column_sum(xc, W, bx, r0, r1, zx, sx);
                        for (int32_t kx = 1; kx < KW; kx++)
                            sum += wl_column_sum(xc, W, bx + kx, r0, r1, zx, sx);
                    } else {
                        for (int32_t ky = 0; ky < KH; ky++) {
                            const int32_t iy = by + ky * DH;
                            if (iy < 0 || iy >= H)
                                continue;
                            for (int32_t kx = 0; kx < KW; kx++) {
                                const int32_t ix = bx + kx * DW;
                                if (ix >= 0 && ix < W)
                                    sum += wl_dq(xc[iy * W + ix], zx, sx);
                            }
                        }
                    }
                    const int32_t n = include_pad ? padded : inside;
                    real = n > 0 ? sum / (float)n : 0.0f;
                }
                yc[oy * OW + ox] = (int8_t)wl_quantize_value(real, sy, zy, lo, hi);
            }
        }
    }
    return WL_OK;
}
