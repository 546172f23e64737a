/*
 * weightless-mcu runtime: float32 kernels, and int8 kernels for quantized models.
 *
 * Every kernel takes a const params struct (resolved at compile time by the
 * code generator, kept in flash), its operands, and returns WL_OK or an error
 * status. Activation tensors are NCHW, batch 1.
 */
#ifndef WL_KERNELS_H
#define WL_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WL_OK 0
#define WL_ERR_ARG (-1)

/* Output rows (features, channels) computed together by the fc, pointwise and
 * conv kernels; weights come interleaved in blocks of this many rows. */
#define WL_ROW_BLOCK 4
#define WL_MAX_DIMS 6

/* Fully connected: y[r][n] = clamp(sum_k x[r][k] * W[n][k] + bias[n]).
 * W is packed in row blocks (see pack_rows in lowering/layout.py). With one row, bias may be y
 * itself (a bias decoded into the output: wl_fc_f32 and wl_fc_encoded_f32 read bias[n] before
 * they write y[n], and write no y[n] whose bias they have not read). */
typedef struct {
    int32_t rows;
    int32_t in_features;
    int32_t out_features;
    float act_min, act_max;
} wl_fc_params_t;
int wl_fc_f32(const wl_fc_params_t *p, const float *x, const float *w, const float *bias, float *y);

/* A bias stored as shared values: out[i] = codebook[index i], the indices `bits` bits each
 * (1, 2, 4 or 8), 32 / bits to a word from its low bits up (BiasCodebookEncoding in
 * weightless_mcu/compress/encodings.py). WL_ERR_ARG for any other `bits`. */
int wl_bias_decode_f32(const uint32_t *index, const float *codebook, uint32_t n, uint32_t bits, float *out);

/* y[t] = clamp(a[t] (m x k) * b[t] (k x n)) over the batch index t of batch_shape, with
   numpy broadcasting: a's and b's element strides per batch axis, 0 where broadcast. */
typedef struct {
    int32_t m, k, n;
    int32_t batch_ndim;
    int32_t batch_shape[WL_MAX_DIMS];
    int32_t a_strides[WL_MAX_DIMS];
    int32_t b_strides[WL_MAX_DIMS];
    float act_min, act_max;
} wl_matmul_params_t;
int wl_matmul_f32(const wl_matmul_params_t *p, const float *a, const float *b, float *y);

/* 2-D convolution, NCHW. Weights per group in row blocks of [ci][kh][kw]. */
typedef struct {
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t dil_h, dil_w;
    int32_t group;
    float act_min, act_max;
} wl_conv_params_t;
int wl_conv2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *bias, float *y);
/* ConvTranspose with the same parameters read as the transposed convolution: x is
   [in_c][in_h][in_w], w is [in_c][out_c / group][k_h][k_w] (ONNX order), pad_top/left
   are the begin pads; every output is written once (gathered), bias and activation included. */
int wl_conv_transpose2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *b, float *y);
/* group == in_c == out_c; weights [c][kh][kw]. */
int wl_depthwise_conv2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *bias, float *y);
/* 1x1, stride 1, no padding, group 1; weights in row blocks of [ci]. */
int wl_pointwise_conv2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *bias, float *y);

/* The same layers with compressed weights (wl_weights.h), decoded on the fly;
 * convolutions decode one block of output channels at a time into scratch. */
struct wl_encoded_weights;
int wl_fc_encoded_f32(const wl_fc_params_t *p, const float *x, const struct wl_encoded_weights *e,
                      const float *bias, float *y);
int wl_conv2d_encoded_f32(const wl_conv_params_t *p, const float *x, const struct wl_encoded_weights *e,
                          const float *bias, float *y, float *scratch);
int wl_depthwise_conv2d_encoded_f32(const wl_conv_params_t *p, const float *x, const struct wl_encoded_weights *e,
                                    const float *bias, float *y, float *scratch);
int wl_pointwise_conv2d_encoded_f32(const wl_conv_params_t *p, const float *x, const struct wl_encoded_weights *e,
                                    const float *bias, float *y, float *scratch);

#define WL_POOL_MAX 0
#define WL_POOL_AVG 1
/* The order in which int8 average pooling adds its dequantized taps in float32: the order of
 * onnxruntime's float kernel for that pooling, so that the rounding is the same (wl_pool2d_s8.c). */
#define WL_SUM_ROWS 0    /* row by row, from 0.0f */
#define WL_SUM_COLUMNS 1 /* each column of the window down its rows, then the columns left to right */
#define WL_SUM_LANES 2   /* the whole plane, in four interleaved partial sums, then the rest */
typedef struct {
    int32_t channels, in_h, in_w, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t dil_h, dil_w;
    int32_t mode;
    int32_t count_include_pad;
} wl_pool2d_params_t;
int wl_pool2d_f32(const wl_pool2d_params_t *p, const float *x, float *y);

#define WL_BINARY_ADD 0
#define WL_BINARY_SUB 1
#define WL_BINARY_MUL 2
#define WL_BINARY_DIV 3
#define WL_BINARY_PRELU 4
#define WL_BINARY_POW 5 /* powf(a, b) */
#define WL_BINARY_MIN 6 /* NaN if either is NaN, as numpy's minimum */
#define WL_BINARY_MAX 7
typedef struct {
    int32_t op;
    int32_t size;
    int32_t same_shape;
    int32_t ndim;
    int32_t out_shape[WL_MAX_DIMS];
    int32_t a_strides[WL_MAX_DIMS];
    int32_t b_strides[WL_MAX_DIMS];
    float act_min, act_max;
} wl_binary_params_t;
/* Broadcasting a op b; y may be a (in place). */
int wl_binary_f32(const wl_binary_params_t *p, const float *a, const float *b, float *y);

typedef struct {
    int32_t outer, in_h, in_w, out_h, out_w;
    int32_t linear; /* 0: nearest, 1: linear */
} wl_resize_params_t;
/* Resize of the last two axes through per-axis (index, index, weight, weight) tables. */
int wl_resize_f32(const wl_resize_params_t *p, const float *x, const int32_t *h_index, const float *h_weight,
                  const int32_t *w_index, const float *w_weight, float *y);

typedef struct {
    int32_t seq, batch, input, hidden;
    int32_t directions;          /* 1 or 2 (bidirectional: the second runs backward) */
    int32_t reverse;             /* the one direction runs backward */
    int32_t layout;              /* 0: x [seq][batch][input], y [seq][dir][batch][hidden]; 1: batch first */
    int32_t linear_before_reset; /* GRU */
    float clip;                  /* > 0: gate pre-activations clamped to [-clip, clip] */
} wl_recurrent_params_t;
/* A recurrent layer's W or R: its row blocks (dense, each direction's after the one before), or
 * a compressed table of one direction (wl_weights.h, read through wl_fc_encoded_f32): one of
 * the two is 0. */
struct wl_encoded_weights;
typedef struct {
    const float *dense;
    const struct wl_encoded_weights *table;
} wl_matrix_f32_t;
/* LSTM (gates i, o, f, c) and GRU (z, r, h) with ONNX semantics. Dense GRU R is packed as its
 * z and r rows, then its h rows; a GRU R table holds the rows in order (read twice per step
 * without linear_before_reset). bias is W's and R's summed (GRU under linear_before_reset: without R's h part, which
 * is bias_h). peephole, h0, c0, y, y_h, y_c may be 0. scratch: LSTM (4 + 2 * dirs * batch) *
 * hidden floats, GRU (7 + dirs * batch) * hidden. y_h / y_c may be the buffers of h0 / c0. The
 * _encoded variants (wl_recurrent_encoded_f32.c) also read tables; the others only row blocks. */
int wl_lstm_f32(const wl_recurrent_params_t *p, const float *x, const wl_matrix_f32_t *w, const wl_matrix_f32_t *r,
                const float *bias, const float *peephole, const float *h0, const float *c0, float *y, float *y_h,
                float *y_c, float *scratch);
int wl_gru_f32(const wl_recurrent_params_t *p, const float *x, const wl_matrix_f32_t *w, const wl_matrix_f32_t *r,
               const float *bias, const float *bias_h, const float *h0, float *y, float *y_h, float *scratch);
int wl_lstm_encoded_f32(const wl_recurrent_params_t *p, const float *x, const wl_matrix_f32_t *w,
                        const wl_matrix_f32_t *r, const float *bias, const float *peephole, const float *h0,
                        const float *c0, float *y, float *y_h, float *y_c, float *scratch);
int wl_gru_encoded_f32(const wl_recurrent_params_t *p, const float *x, const wl_matrix_f32_t *w,
                       const wl_matrix_f32_t *r, const float *bias, const float *bias_h, const float *h0, float *y,
                       float *y_h, float *scratch);

#define WL_UNARY_CLAMP 0
#define WL_UNARY_SIGMOID 1
#define WL_UNARY_TANH 2
#define WL_UNARY_LEAKY_RELU 3   /* x < 0 ? alpha * x : x */
#define WL_UNARY_HARD_SIGMOID 4 /* max(0, min(1, alpha * x + beta)) */
#define WL_UNARY_HARD_SWISH 5   /* x * max(0, min(1, x / 6 + 1 / 2)) */
#define WL_UNARY_ABS 6
#define WL_UNARY_NEG 7
#define WL_UNARY_SQRT 8
#define WL_UNARY_EXP 9
#define WL_UNARY_LOG 10
#define WL_UNARY_RECIPROCAL 11
#define WL_UNARY_ERF 12
#define WL_UNARY_SQUARE 13 /* x * x */
#define WL_UNARY_POW 14    /* powf(x, alpha) */
#define WL_UNARY_GELU 15   /* x / 2 * (1 + erf(x / sqrt 2)) */
#define WL_UNARY_GELU_TANH 16 /* x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))) */
/* A generated library defines WL_UNARY_USED and WL_BINARY_USED (wl_model_config.h), bit op set
 * for each op its steps use, so that only their math is linked (powf or erff alone is 1-2 KB);
 * without them every op is compiled in. */
typedef struct {
    int32_t op;
    int32_t size;
    float alpha, beta;
    float act_min, act_max;
} wl_unary_params_t;
/* y = clamp(f(x)); y may be x. */
int wl_unary_f32(const wl_unary_params_t *p, const float *x, float *y);

typedef struct {
    int32_t channels, inner;
    float act_min, act_max;
} wl_channel_affine_params_t;
/* y[c][i] = clamp(x[c][i] * scale[c] + shift[c]); y may be x. */
int wl_channel_affine_f32(const wl_channel_affine_params_t *p, const float *x, const float *scale,
                          const float *shift, float *y);

typedef struct {
    int32_t outer, n, inner;
    int32_t log; /* 1: LogSoftmax */
} wl_softmax_params_t;
int wl_softmax_f32(const wl_softmax_params_t *p, const float *x, float *y);

#define WL_REDUCE_MEAN 0
#define WL_REDUCE_SUM 1
#define WL_REDUCE_MAX 2
typedef struct {
    int32_t op;
    int32_t outer, n, inner;
} wl_reduce_params_t;
/* Reduce the middle axis of x viewed as [outer][n][inner]. */
int wl_reduce_f32(const wl_reduce_params_t *p, const float *x, float *y);

/* A strided copy: y[i0..] = x[offset + sum(i_d * in_strides[d])]. Transpose permutes the
   strides; Slice scales them by its steps (negative for reversed axes) and starts at offset. */
typedef struct {
    int32_t ndim;
    int32_t offset;
    int32_t out_shape[WL_MAX_DIMS];
    int32_t in_strides[WL_MAX_DIMS];
} wl_transpose_params_t;
int wl_transpose_f32(const wl_transpose_params_t *p, const float *x, float *y);

#define WL_PAD_CONSTANT 0
#define WL_PAD_EDGE 1
#define WL_PAD_REFLECT 2
#define WL_PAD_WRAP 3 /* circular */
typedef struct {
    int32_t mode;
    int32_t ndim;
    float value;                     /* WL_PAD_CONSTANT */
    int32_t in_shape[WL_MAX_DIMS];
    int32_t out_shape[WL_MAX_DIMS];
    int32_t begin[WL_MAX_DIMS];      /* elements added before each axis (>= 0) */
} wl_pad_params_t;
/* Pad x (row-major, in_shape) into y (out_shape). */
int wl_pad_f32(const wl_pad_params_t *p, const float *x, float *y);

#define WL_CONCAT_MAX_INPUTS 16
typedef struct {
    int32_t inputs;
    int32_t outer;                          /* product of the axes before the concatenated one */
    int32_t inner[WL_CONCAT_MAX_INPUTS];    /* per input: its extent from the axis on, flattened */
} wl_concat_params_t;
/* Concatenate xs[0 .. inputs-1] along one axis into y. */
int wl_concat_f32(const wl_concat_params_t *p, const float *const *xs, float *y);

typedef struct {
    int32_t outer, axis_size, inner;  /* x viewed as [outer][axis_size][inner] */
    int32_t count;                    /* indices taken */
} wl_gather_params_t;
/* y[o][j][i] = x[o][indices[j]][i]. The indices are constants, already in [0, axis_size);
   they are stored as floats (exact below 2^24) so every constant array has one type. */
int wl_gather_f32(const wl_gather_params_t *p, const float *x, const float *indices, float *y);

typedef struct {
    int32_t size;
} wl_copy_params_t;
int wl_copy_f32(const wl_copy_params_t *p, const float *x, float *y);
int wl_copy_s8(const wl_copy_params_t *p, const int8_t *x, int8_t *y);

/* Clamp to [lo, hi] written with comparisons, so no libm call is needed. */
static inline float wl_clamp(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* One step of a row-major walk over shape[0..last]: idx counts (last axis fastest),
   *a and *b follow it through their per-axis strides (0 on broadcast axes). */
static inline void wl_next_index(int32_t *idx, const int32_t *shape, int32_t last, int32_t *a, const int32_t *a_strides,
                                 int32_t *b, const int32_t *b_strides)
{
    for (int32_t d = last; d >= 0; d--) {
        *a += a_strides[d];
        *b += b_strides[d];
        if (++idx[d] < shape[d])
            return;
        *a -= a_strides[d] * shape[d];
        *b -= b_strides[d] * shape[d];
        idx[d] = 0;
    }
}

/* The window taps t in [*t0, *t1) that land inside [0, limit): base + t * dil. */
static inline void wl_valid_taps(int32_t base, int32_t k, int32_t dil, int32_t limit, int32_t *t0, int32_t *t1)
{
    int32_t lo = 0, hi = k;
    while (lo < k && base + lo * dil < 0)
        lo++;
    while (hi > lo && base + (hi - 1) * dil >= limit)
        hi--;
    *t0 = lo;
    *t1 = hi;
}

/* int8 kernels of quantized models. An int8 tensor holds q, real = scale * (q - zero_point);
 * uint8 models arrive here as int8 with the zero point moved by -128. */

/* Quantize: q = clamp(round_half_even(x / scale) + zero_point, -128, 127), as onnxruntime
 * computes it (a float32 division); dequantize: y = (q - zero_point) * scale. */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} wl_quantize_params_t;
int wl_quantize_f32_s8(const wl_quantize_params_t *p, const float *x, int8_t *y);
int wl_dequantize_s8_f32(const wl_quantize_params_t *p, const int8_t *x, float *y);
/* An elementwise op on an int8 tensor as the table of its 256 results (the compiler computes
 * them as onnxruntime does): y[i] = table[x[i] + 128]. */
typedef struct {
    int32_t size;
} wl_lut_s8_params_t;
int wl_lut_s8(const wl_lut_s8_params_t *p, const int8_t *table, const int8_t *x, int8_t *y);
/* Concatenate int8 xs[0 .. inputs-1] along one axis into y, each input copied, or through
 * tables[k] (its requantization to y's parameters) when that is not 0. */
int wl_concat_s8(const wl_concat_params_t *p, const int8_t *const *xs, const int8_t *const *tables, int8_t *y);
/* Softmax (or LogSoftmax) of an int8 tensor along one axis, as wl_dequantize_s8_f32 ->
 * wl_softmax_f32 -> wl_quantize_f32_s8 compute it, without their float32 buffers: y is int8
 * (int8_out) or float. */
typedef struct {
    int32_t outer, n, inner;
    float x_scale;
    int32_t x_zero_point;
    float y_scale;
    int32_t y_zero_point;
    int32_t int8_out;
    int32_t log; /* 1: LogSoftmax, y = (x - max) - log(sum) */
} wl_softmax_s8_params_t;
int wl_softmax_s8(const wl_softmax_s8_params_t *p, const int8_t *x, void *y);
/* A uint8 model input or output <-> the int8 the kernels hold for it (u - 128): the sign bit
 * flipped, either way. */
typedef struct {
    int32_t size;
} wl_flip_sign_params_t;
int wl_flip_sign_s8(const wl_flip_sign_params_t *p, const void *x, void *y);

/* int8 fully connected: acc[n] = bias[n] + sum_k x[r][k] * W[n][k] (the input's zero point
 * folded into bias; the products summed in int32, the bias added in 64 bits), y =
 * clamp(requantize(acc, multiplier[n], shift[n]) + output_offset). */
typedef struct {
    int32_t rows;
    int32_t in_features;
    int32_t out_features;
    int32_t output_offset;
    int32_t act_min, act_max;
} wl_fc_s8_params_t;
int wl_fc_s8(const wl_fc_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
             const int32_t *multiplier, const int32_t *shift, int8_t *y);

/* int8 convolution, NCHW (batch 1): acc = bias[oc] + sum over the window of x * w, a tap outside
 * the input counting as input_zero_point (the real 0; the zero point's share, -input_zero_point *
 * sum(w), is folded into bias). Then as wl_fc_s8. wl_conv2d_s8: weights as the compiler's
 * conv_s8_weights lays them out (kpad = in_c / group * k_h * k_w rounded up to a multiple of 4;
 * per group, channels two by two, 4 taps of one then 4 of the other, each 4 as (w0, w2, w1, w3));
 * a scratch of WL_CONV_S8_SCRATCH(p) bytes (two int16 columns, one int8 window). wl_depthwise_conv2d_s8
 * (group == in_c == out_c): weights (out_c, k_h, k_w) as they are; a scratch of WL_DW_S8_SCRATCH(p)
 * bytes (one channel's padded plane and one output row's sums). */
typedef struct {
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t dil_h, dil_w;
    int32_t group;
    int32_t input_zero_point, output_offset;
    int32_t act_min, act_max;
} wl_conv_s8_params_t;
#define WL_CONV_S8_SCRATCH(p) (5 * ((((p)->in_c / (p)->group) * (p)->k_h * (p)->k_w + 3) & ~3))
int wl_conv2d_s8(const wl_conv_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                 const int32_t *multiplier, const int32_t *shift, int8_t *scratch, int8_t *y);
#define WL_DW_S8_PLANE_H(p) (((p)->out_h - 1) * (p)->stride_h + ((p)->k_h - 1) * (p)->dil_h + 1)
#define WL_DW_S8_PLANE_W(p) (((p)->out_w - 1) * (p)->stride_w + ((p)->k_w - 1) * (p)->dil_w + 1)
#define WL_DW_S8_PLANE_BYTES(p) ((WL_DW_S8_PLANE_H(p) * WL_DW_S8_PLANE_W(p) + 4 + 3) & ~3)
#define WL_DW_S8_SCRATCH(p) (WL_DW_S8_PLANE_BYTES(p) + 4 * (p)->out_w)
int wl_depthwise_conv2d_s8(const wl_conv_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int8_t *scratch, int8_t *y);

/* The same three layers with compressed weights (wl_weights.h, with an int8 codebook in the layer's
 * weight scale), decoded as the kernels go. The positions follow the float kernels' walk (per
 * group, row blocks of WL_ROW_BLOCK output channels interleaved, then the channels left over;
 * depthwise: (channel, k_h, k_w)), so that the table of a compressed float layer serves its int8
 * version unchanged. Biases folded as for the dense kernels. wl_conv2d_encoded_s8 decodes `block`
 * output channels at a time (a multiple of WL_ROW_BLOCK; the channels of a group after its last
 * whole row block one at a time) and runs wl_conv2d_s8 on them, so its im2col is done once per
 * block: the compiler makes the block as large as the arena's free room at that step allows.
 * Scratch: WL_CONV_ENC_S8_SCRATCH(p) bytes (a block's weights in wl_conv2d_s8's layout, then
 * wl_conv2d_s8's own scratch); WL_DW_ENC_S8_SCRATCH(p) for depthwise (one channel's taps, then
 * wl_depthwise_conv2d_s8's). */
struct wl_encoded_weights;
int wl_fc_encoded_s8(const wl_fc_s8_params_t *p, const int8_t *x, const struct wl_encoded_weights *e,
                     const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y);
typedef struct {
    wl_conv_s8_params_t conv;
    int32_t block; /* output channels decoded at a time: a multiple of WL_ROW_BLOCK */
} wl_conv_enc_s8_params_t;
#define WL_CONV_ENC_S8_KPAD(p) ((((p)->in_c / (p)->group) * (p)->k_h * (p)->k_w + 3) & ~3)
#define WL_CONV_ENC_S8_SCRATCH(p) ((p)->block * WL_CONV_ENC_S8_KPAD(&(p)->conv) + WL_CONV_S8_SCRATCH(&(p)->conv))
int wl_conv2d_encoded_s8(const wl_conv_enc_s8_params_t *pe, const int8_t *x, const struct wl_encoded_weights *e,
                         const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *scratch,
                         int8_t *y);
#define WL_DW_ENC_S8_SCRATCH(p) ((((p)->k_h * (p)->k_w + 3) & ~3) + WL_DW_S8_SCRATCH(p))
int wl_depthwise_conv2d_encoded_s8(const wl_conv_s8_params_t *p, const int8_t *x, const struct wl_encoded_weights *e,
                                   const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                                   int8_t *scratch, int8_t *y);

/* Elementwise Add of two int8 tensors of one shape, and pooling (max, average) of an int8
 * tensor: computed through float32 as onnxruntime runs the QDQ model (dequantize, float op,
 * quantize). act_min / act_max: the int8 output clamp. */
typedef struct {
    int32_t size;
    float a_scale;
    int32_t a_zero_point;
    float b_scale;
    int32_t b_zero_point;
    float y_scale;
    int32_t y_zero_point;
    int32_t act_min, act_max;
} wl_add_s8_params_t;
int wl_add_s8(const wl_add_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *y);
/* int8 Add, Sub, Mul or Div (WL_BINARY_*) with numpy broadcasting, through float32 as for
 * wl_add_s8: y = Q(op(dequantize(a), dequantize(b))). */
typedef struct {
    int32_t op;
    int32_t size;
    int32_t ndim;
    int32_t out_shape[WL_MAX_DIMS];
    int32_t a_strides[WL_MAX_DIMS];
    int32_t b_strides[WL_MAX_DIMS];
    float a_scale;
    int32_t a_zero_point;
    float b_scale;
    int32_t b_zero_point;
    float y_scale;
    int32_t y_zero_point;
    int32_t act_min, act_max;
} wl_binary_s8_params_t;
int wl_binary_s8(const wl_binary_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *y);

typedef struct {
    int32_t channels, in_h, in_w, out_h, out_w, k_h, k_w;
    int32_t stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, dil_h, dil_w;
    int32_t mode; /* WL_POOL_MAX or WL_POOL_AVG */
    int32_t count_include_pad;
    float x_scale;
    int32_t x_zero_point;
    float y_scale;
    int32_t y_zero_point;
    int32_t act_min, act_max;
    int32_t sum_order; /* WL_SUM_ROWS, WL_SUM_COLUMNS or WL_SUM_LANES (average pooling) */
} wl_pool_s8_params_t;
int wl_pool2d_s8(const wl_pool_s8_params_t *p, const int8_t *x, int8_t *y);

/* q = clamp(round_half_even(v / scale) + zero_point, lo, hi), as onnxruntime's QuantizeLinear
 * computes it (a float32 division; NaN goes to the low end, as its vector max does). Round half
 * to even for |v / scale| <= 2^22 after the clamp: adding 1.5 * 2^23 leaves no fraction bits,
 * and the addition rounds as the FPU does by default, to nearest even. */
static inline int32_t wl_quantize_value(float v, float scale, int32_t zero_point, int32_t lo, int32_t hi)
{
    volatile float big = 12582912.0f; /* volatile: the sum must be rounded, not simplified away */
    const float flo = (float)(lo - zero_point), fhi = (float)(hi - zero_point);
    float t = v / scale;
    if (!(t >= flo))
        t = flo;
    if (t > fhi)
        t = fhi;
    return (int32_t)((t + big) - big) + zero_point;
}

/* round_half_even(acc * multiplier * 2^-shift) for 1 <= shift <= 62, saturated to int32. With
 * |acc| < 2^32 (the kernels' int32 sums of products plus an int32 bias) and multiplier < 2^31
 * the 64-bit product is exact, so this is the exact product rounded once. */
static inline int32_t wl_requantize(int64_t acc, int32_t multiplier, int32_t shift)
{
    int64_t prod = acc * multiplier;
    int64_t q = prod >> shift; /* floor */
    uint64_t rem = (uint64_t)(prod - (int64_t)((uint64_t)q << shift));
    uint64_t half = (uint64_t)1 << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    if (q > INT32_MAX)
        return INT32_MAX;
    if (q < INT32_MIN)
        return INT32_MIN;
    return (int32_t)q;
}

/* The int8 layers' output: round_half_even((acc + bias) * multiplier * 2^-shift) + offset, clamped
 * to [lo, hi]. acc is the int32 sum of products and |acc + bias| < 1.5 * 2^31 (the compiler checks
 * both). For shift >= 32, the common case, the product is two multiply-accumulates into 64 bits and
 * the rounding is done on its high word: q = (prod + 2^(shift-1) - 1 + odd) >> shift, odd being bit
 * `shift` of prod, rounds half to even (a tie only crosses when the floor is odd), and the sum
 * cannot overflow. Smaller shifts take wl_requantize. */
static inline int32_t wl_requantize_hi(int32_t acc, int32_t bias, int32_t multiplier, int32_t shift)
{
    const int64_t prod = (int64_t)acc * multiplier + (int64_t)bias * multiplier;
    const int32_t s = shift - 32;
    const int32_t odd = ((int32_t)(prod >> 32) >> s) & 1;
    int64_t t = prod + (odd - 1); /* + odd - 1, then + 2^(shift-1): on the high word unless shift is 32 */
    if (s)
        t += (int64_t)((uint64_t)(1u << (s - 1)) << 32);
    else
        t += (int64_t)0x80000000u;
    return (int32_t)(t >> 32) >> s;
}

static inline int8_t wl_requantize_s8(int32_t acc, int32_t bias, int32_t multiplier, int32_t shift, int32_t offset,
                                      int32_t lo, int32_t hi)
{
    int32_t q = shift >= 32 ? wl_requantize_hi(acc, bias, multiplier, shift)
                            : wl_requantize((int64_t)acc + bias, multiplier, shift);
    q += offset;
    if (q < lo)
        q = lo;
    if (q > hi)
        q = hi;
    return (int8_t)q;
}

/* y[i] = wl_requantize_s8(acc[i], ...) for one output channel's constants: with the shift tested
 * once, the loop keeps everything in registers. */
static inline void wl_requantize_s8_row(const int32_t *acc, int32_t n, int32_t bias, int32_t multiplier, int32_t shift,
                                        int32_t offset, int32_t lo, int32_t hi, int8_t *y)
{
    if (shift >= 32) {
        for (int32_t i = 0; i < n; i++) {
            int32_t q = wl_requantize_hi(acc[i], bias, multiplier, shift) + offset;
            y[i] = (int8_t)(q < lo ? lo : q > hi ? hi : q);
        }
    } else {
        for (int32_t i = 0; i < n; i++)
            y[i] = wl_requantize_s8(acc[i], bias, multiplier, shift, offset, lo, hi);
    }
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* What the int8 kernels share on cores with the DSP extension (Cortex-M4, M7, M33): SXTB16
 * widens the even int8 lanes of a word to an int16 pair, and with its rotation the odd ones, for
 * SMLAD to multiply and add. */
#include <arm_acle.h>
#include <string.h>
#define WL_S8_DSP 1

static inline int32_t wl_load4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4); /* one LDR: unaligned word loads are allowed on these cores */
    return v;
}

/* Lanes 0 and 2, widened. */
static inline int16x2_t wl_even(int32_t v)
{
    return __sxtb16((int8x4_t)v);
}

/* Lanes 1 and 3, widened: SXTB16 with its rotation, one instruction (GCC does not fuse a
 * separate rotate into it). */
static inline int16x2_t wl_odd(int32_t v)
{
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#endif

#ifdef __cplusplus
}
#endif
#endif
