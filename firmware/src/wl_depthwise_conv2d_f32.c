/* Depthwise 2-D convolution (group == channels), float32.
 *
 * The outputs whose windows lie wholly inside the input (all but a border as wide as the
 * padding) need no bounds checks and take loops of their own: the 3x3 window at dilation 1
 * unrolled (nine weights in registers, nine multiply-adds per output; at stride 1 two outputs a
 * pass share their loads), any other window as plain loops, which also serve the columns of a
 * top or bottom row (over the window's rows inside the input). The left and right borders take
 * the checked loop. Every output sums its taps in the same order (bias, then row by row), so the
 * paths give the same numbers. */
#include "wl_kernels.h"

/* Outputs [ox0, ox1) of one row, every window inside the input; x at the first window's top left. */
__attribute__((noinline)) static void wl_dw_row3x3(const float *x, int32_t W, int32_t step, const float *wc, float b,
                                                   float lo, float hi, float *y, int32_t n)
{
    const float w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4], w5 = wc[5], w6 = wc[6], w7 = wc[7],
                w8 = wc[8];
    const float *r0 = x, *r1 = x + W, *r2 = x + 2 * W;
    int32_t i = 0;
    if (step == 1) { /* two outputs a pass: the 4 columns they span loaded once, 12 loads for 18 products */
        for (; i + 2 <= n; i += 2, r0 += 2, r1 += 2, r2 += 2, y += 2) {
            float a = b, c = b;
            const float x00 = r0[0], x01 = r0[1], x02 = r0[2], x03 = r0[3];
            a += w0 * x00;
            c += w0 * x01;
            a += w1 * x01;
            c += w1 * x02;
            a += w2 * x02;
            c += w2 * x03;
            const float x10 = r1[0], x11 = r1[1], x12 = r1[2], x13 = r1[3];
            a += w3 * x10;
            c += w3 * x11;
            a += w4 * x11;
            c += w4 * x12;
            a += w5 * x12;
            c += w5 * x13;
            const float x20 = r2[0], x21 = r2[1], x22 = r2[2], x23 = r2[3];
            a += w6 * x20;
            c += w6 * x21;
            a += w7 * x21;
            c += w7 * x22;
            a += w8 * x22;
            c += w8 * x23;
            y[0] = wl_clamp(a, lo, hi);
            y[1] = wl_clamp(c, lo, hi);
        }
        n -= i;
        i = 0;
    }
    for (; i < n; i++, r0 += step, r1 += step, r2 += step) {
        float a = b;
        a += w0 * r0[0];
        a += w1 * r0[1];
        a += w2 * r0[2];
        a += w3 * r1[0];
        a += w4 * r1[1];
        a += w5 * r1[2];
        a += w6 * r2[0];
        a += w7 * r2[1];
        a += w8 * r2[2];
        y[i] = wl_clamp(a, lo, hi);
    }
}

/* The same for any window, its rows [0, KH) of the weights wc (a top or bottom row of outputs
 * passes the rows that lie inside the input: x and wc start at the first of them). */
__attribute__((noinline)) static void wl_dw_row(const wl_conv_params_t *p, const float *x, const float *wc, int32_t KH,
                                                float b, float *y, int32_t n)
{
    const int32_t W = p->in_w, KW = p->k_w, DH = p->dil_h, DW = p->dil_w, step = p->stride_w;
    for (int32_t i = 0; i < n; i++, x += step) {
        float a = b;
        for (int32_t ky = 0; ky < KH; ky++) {
            const float *xr = x + ky * DH * W;
            const float *wr = wc + ky * KW;
            for (int32_t kx = 0; kx < KW; kx++)
                a += wr[kx] * xr[kx * DW];
        }
        y[i] = wl_clamp(a, p->act_min, p->act_max);
    }
}

/* Outputs [ox0, ox1) of row oy with the bounds checked (the border). */
static void wl_dw_checked(const wl_conv_params_t *p, const float *xc, const float *wc, float b, float *yr, int32_t oy,
                          int32_t ox0, int32_t ox1)
{
    const int32_t H = p->in_h, W = p->in_w, KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const int32_t by = oy * p->stride_h - p->pad_top;
    int32_t ky0, ky1;
    wl_valid_taps(by, KH, DH, H, &ky0, &ky1);
    for (int32_t ox = ox0; ox < ox1; ox++) {
        const int32_t bx = ox * p->stride_w - p->pad_left;
        int32_t kx0, kx1;
        wl_valid_taps(bx, KW, DW, W, &kx0, &kx1);
        float a = b;
        for (int32_t ky = ky0; ky < ky1; ky++) {
            const float *xr = xc + (by + ky * DH) * W + bx;
            const float *wr = wc + ky * KW;
            for (int32_t kx = kx0; kx < kx1; kx++)
                a += wr[kx] * xr[kx * DW];
        }
        yr[ox] = wl_clamp(a, p->act_min, p->act_max);
    }
}

/* The first output index whose window starts at or after 0, and the end of those whose window
 * ends inside [0, limit): the interior along one axis (empty when first >= end). */
static void wl_interior(int32_t out, int32_t stride, int32_t pad, int32_t k, int32_t dil, int32_t limit,
                        int32_t *first, int32_t *end)
{
    int32_t f = (pad + stride - 1) / stride;
    const int32_t span = (k - 1) * dil;
    int32_t e = limit - 1 - span + pad < 0 ? 0 : (limit - 1 - span + pad) / stride + 1;
    if (f > out)
        f = out;
    if (e > out)
        e = out;
    *first = f;
    *end = e < f ? f : e;
}

/* Small planes (the last layers of a MobileNet: 6x6, 3x3) are mostly border, where the row
 * loops above pay their set-up for one or two outputs: with a 3x3 window at dilation 1 and pads
 * of at most one, a plane whose padded extent fits WL_DW_SMALL floats is copied with its padding
 * zeroed into a buffer on the stack, and every output takes the unrolled loop. A zero tap adds
 * 0 * w, as onnxruntime's im2col does. */
#define WL_DW_SMALL 100

static void wl_dw_small(const wl_conv_params_t *p, const float *xc, const float *wc, float b, float *yc, int32_t ph,
                        int32_t pw)
{
    float buf[WL_DW_SMALL];
    const int32_t H = p->in_h, W = p->in_w;
    for (int32_t i = 0; i < ph * pw; i++)
        buf[i] = 0.0f;
    for (int32_t iy = 0; iy < H && iy + p->pad_top < ph; iy++)
        for (int32_t ix = 0; ix < W && ix + p->pad_left < pw; ix++)
            buf[(iy + p->pad_top) * pw + ix + p->pad_left] = xc[iy * W + ix];
    for (int32_t oy = 0; oy < p->out_h; oy++)
        wl_dw_row3x3(buf + oy * p->stride_h * pw, pw, p->stride_w, wc, b, p->act_min, p->act_max, yc + oy * p->out_w,
                     p->out_w);
}

int wl_depthwise_conv2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *bias, float *y)
{
    if (p == 0 || x == 0 || w == 0 || y == 0 || p->group != p->in_c || p->in_c != p->out_c)
        return WL_ERR_ARG;
    const int32_t H = p->in_h, W = p->in_w, OH = p->out_h, OW = p->out_w;
    const int32_t KH = p->k_h, KW = p->k_w;
    const float lo = p->act_min, hi = p->act_max;
    int32_t oy0, oy1, ox0, ox1;
    wl_interior(OH, p->stride_h, p->pad_top, KH, p->dil_h, H, &oy0, &oy1);
    wl_interior(OW, p->stride_w, p->pad_left, KW, p->dil_w, W, &ox0, &ox1);
    const int unrolled = KH == 3 && KW == 3 && p->dil_w == 1 && p->dil_h == 1;
    /* the padded extent the outputs read */
    const int32_t ph = (OH - 1) * p->stride_h + KH, pw = (OW - 1) * p->stride_w + KW;
    const int small = unrolled && p->pad_top <= 1 && p->pad_left <= 1 && ph * pw <= WL_DW_SMALL;
    for (int32_t c = 0; c < p->in_c; c++) {
        const float *xc = x + c * H * W;
        const float *wc = w + c * KH * KW;
        const float b = bias ? bias[c] : 0.0f;
        float *yc = y + c * OH * OW;
        if (small) {
            wl_dw_small(p, xc, wc, b, yc, ph, pw);
            continue;
        }
        for (int32_t oy = 0; oy < OH; oy++) {
            float *yr = yc + oy * OW;
            if (ox0 >= ox1) {
                wl_dw_checked(p, xc, wc, b, yr, oy, 0, OW);
                continue;
            }
            wl_dw_checked(p, xc, wc, b, yr, oy, 0, ox0);
            const int32_t by = oy * p->stride_h - p->pad_top;
            const float *xs = xc + by * W + ox0 * p->stride_w - p->pad_left;
            if (oy >= oy0 && oy < oy1 && unrolled) {
                wl_dw_row3x3(xs, W, p->stride_w, wc, b, lo, hi, yr + ox0, ox1 - ox0);
            } else { /* the window's rows inside the input, all columns inside */
                int32_t ky0, ky1;
                wl_valid_taps(by, KH, p->dil_h, H, &ky0, &ky1);
                wl_dw_row(p, xs + ky0 * p->dil_h * W, wc + ky0 * KW, ky1 - ky0, b, yr + ox0, ox1 - ox0);
            }
            wl_dw_checked(p, xc, wc, b, yr, oy, ox1, OW);
        }
    }
    return WL_OK;
}
