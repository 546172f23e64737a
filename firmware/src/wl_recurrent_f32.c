/* LSTM and GRU (ONNX semantics: forward, reverse or bidirectional; layout 0 or 1; the default
 * activations), float32. Each step's gates are two fully connected products into one buffer:
 * W x_t + bias, then R h_{t-1} added with that buffer as the bias (wl_fc_f32 reads bias[n]
 * before it writes y[n]), so a layer needs its gates and its state in scratch and nothing
 * more. The state is copied in from the initial state first and out to Y_h / Y_c last, so an
 * output state may be the very buffer of the input state. */
#include <math.h>
#include <string.h>

#include "wl_kernels.h"

/* wl_recurrent_encoded_f32.c compiles this file again with WL_RECURRENT_ENCODED: W and R may
 * then be compressed tables (one direction), read by the encoded fully connected kernel. */
#ifdef WL_RECURRENT_ENCODED
#include "wl_weights.h"
#define WL_LSTM wl_lstm_encoded_f32
#define WL_GRU wl_gru_encoded_f32
#define WL_TABLE(m) ((m)->table)
#else
#define WL_LSTM wl_lstm_f32
#define WL_GRU wl_gru_f32
#define WL_TABLE(m) ((const struct wl_encoded_weights *)0)
#endif

/* y = m x + b for direction d of a matrix with p->out_features rows of p->in_features: its
 * table, or its row blocks (each direction's after the one before). */
static inline void wl_product(const wl_fc_params_t *p, const float *x, const wl_matrix_f32_t *m, int32_t d,
                              const float *b, float *y)
{
#ifdef WL_RECURRENT_ENCODED
    if (m->table != 0) {
        wl_fc_encoded_f32(p, x, m->table, b, y);
        return;
    }
#endif
    wl_fc_f32(p, x, m->dense + d * p->out_features * p->in_features, b, y);
}

static inline float wl_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

static inline float wl_clip_gate(float v, float clip) { return clip > 0.0f ? wl_clamp(v, -clip, clip) : v; }

/* Element offsets of x[t][b], y[t][d][b] and the state [d][b] in either layout. */
static inline int32_t wl_x_at(const wl_recurrent_params_t *p, int32_t t, int32_t b)
{
    return (p->layout ? b * p->seq + t : t * p->batch + b) * p->input;
}
static inline int32_t wl_y_at(const wl_recurrent_params_t *p, int32_t t, int32_t d, int32_t b)
{
    return (p->layout ? (b * p->seq + t) * p->directions + d : (t * p->directions + d) * p->batch + b) * p->hidden;
}
static inline int32_t wl_state_at(const wl_recurrent_params_t *p, int32_t d, int32_t b)
{
    return (p->layout ? b * p->directions + d : d * p->batch + b) * p->hidden;
}

static int wl_recurrent_check(const wl_recurrent_params_t *p, const float *x, const wl_matrix_f32_t *w,
                              const wl_matrix_f32_t *r, const float *scratch)
{
    if (p == 0 || x == 0 || w == 0 || r == 0 || scratch == 0 || p->seq < 1 || p->batch < 1 || p->input < 1
        || p->hidden < 1 || p->directions < 1 || p->directions > 2)
        return 1;
    /* a table holds one direction; a matrix is one or the other */
    return (w->dense == 0) == (WL_TABLE(w) == 0) || (r->dense == 0) == (WL_TABLE(r) == 0)
           || ((WL_TABLE(w) != 0 || WL_TABLE(r) != 0) && p->directions != 1);
}

/* The state, [d][b][hidden] in scratch, from the initial state (zeros without one). */
static void wl_state_in(const wl_recurrent_params_t *p, const float *init, float *state)
{
    const int32_t h = p->hidden;
    for (int32_t d = 0; d < p->directions; d++)
        for (int32_t b = 0; b < p->batch; b++) {
            float *s = state + (d * p->batch + b) * h;
            if (init != 0)
                memcpy(s, init + wl_state_at(p, d, b), (size_t)h * sizeof(float));
            else
                memset(s, 0, (size_t)h * sizeof(float));
        }
}

static void wl_state_out(const wl_recurrent_params_t *p, const float *state, float *out)
{
    if (out == 0)
        return;
    for (int32_t d = 0; d < p->directions; d++)
        for (int32_t b = 0; b < p->batch; b++)
            memcpy(out + wl_state_at(p, d, b), state + (d * p->batch + b) * p->hidden, (size_t)p->hidden * sizeof(float));
}

int WL_LSTM(const wl_recurrent_params_t *p, const float *x, const wl_matrix_f32_t *w, const wl_matrix_f32_t *r,
            const float *bias,
                const float *peephole, const float *h0, const float *c0, float *y, float *y_h, float *y_c,
                float *scratch)
{
    if (wl_recurrent_check(p, x, w, r, scratch) || bias == 0)
        return WL_ERR_ARG;
    const int32_t H = p->hidden, G = 4 * H, states = p->directions * p->batch * H;
    float *gates = scratch, *hs = scratch + G, *cs = hs + states;
    wl_state_in(p, h0, hs);
    wl_state_in(p, c0, cs);
    const wl_fc_params_t px = {1, p->input, G, -INFINITY, INFINITY}, ph = {1, H, G, -INFINITY, INFINITY};
    for (int32_t k = 0; k < p->seq; k++) {
        for (int32_t d = 0; d < p->directions; d++) {
            const int32_t t = (d == 1 || p->reverse) ? p->seq - 1 - k : k;
            const float *bd = bias + d * G;
            const float *pd = peephole != 0 ? peephole + d * 3 * H : 0;
            for (int32_t b = 0; b < p->batch; b++) {
                float *h = hs + (d * p->batch + b) * H, *c = cs + (d * p->batch + b) * H;
                wl_product(&px, x + wl_x_at(p, t, b), w, d, bd, gates);
                wl_product(&ph, h, r, d, gates, gates);
                /* ONNX gate order: input, output, forget, cell */
                for (int32_t j = 0; j < H; j++) {
                    const float cp = c[j];
                    float gi = gates[j], go = gates[H + j], gf = gates[2 * H + j], gc = gates[3 * H + j];
                    if (pd != 0) {
                        gi += pd[j] * cp;
                        gf += pd[2 * H + j] * cp;
                    }
                    const float i = wl_sigmoid(wl_clip_gate(gi, p->clip)), f = wl_sigmoid(wl_clip_gate(gf, p->clip));
                    const float cn = f * cp + i * tanhf(wl_clip_gate(gc, p->clip));
                    if (pd != 0)
                        go += pd[H + j] * cn;
                    c[j] = cn;
                    h[j] = wl_sigmoid(wl_clip_gate(go, p->clip)) * tanhf(cn);
                }
                if (y != 0)
                    memcpy(y + wl_y_at(p, t, d, b), h, (size_t)H * sizeof(float));
            }
        }
    }
    wl_state_out(p, hs, y_h);
    wl_state_out(p, cs, y_c);
    return WL_OK;
}

int WL_GRU(const wl_recurrent_params_t *p, const float *x, const wl_matrix_f32_t *w, const wl_matrix_f32_t *r,
           const float *bias,
               const float *bias_h, const float *h0, float *y, float *y_h, float *scratch)
{
    if (wl_recurrent_check(p, x, w, r, scratch) || bias == 0 || (p->linear_before_reset && bias_h == 0))
        return WL_ERR_ARG;
    const int32_t H = p->hidden, G = 3 * H;
    float *gates = scratch, *tmp = scratch + G, *hs = tmp + G + H;
    wl_state_in(p, h0, hs);
    const wl_fc_params_t px = {1, p->input, G, -INFINITY, INFINITY}, pzr = {1, H, 2 * H, -INFINITY, INFINITY},
                         pn = {1, H, H, -INFINITY, INFINITY}, pr = {1, H, G, -INFINITY, INFINITY};
    /* a table holds R's rows in order (update, reset, hidden) and is read whole: without
       linear_before_reset the hidden rows multiply r * h, not h, so the table is read a second
       time on r * h and only its hidden rows kept. Dense R is packed as update and reset rows,
       then hidden rows. */
    const struct wl_encoded_weights *r_table = WL_TABLE(r);
    float *rh = tmp + G; /* r * h for the second reading */
    for (int32_t k = 0; k < p->seq; k++) {
        for (int32_t d = 0; d < p->directions; d++) {
            const int32_t t = (d == 1 || p->reverse) ? p->seq - 1 - k : k;
            /* R is packed as its update and reset rows, then its hidden rows (two fc layouts) */
            const float *rzr = r->dense != 0 ? r->dense + d * G * H : 0, *rn = rzr != 0 ? rzr + 2 * H * H : 0;
            const float *bd = bias + d * G;
            for (int32_t b = 0; b < p->batch; b++) {
                float *h = hs + (d * p->batch + b) * H;
                wl_product(&px, x + wl_x_at(p, t, b), w, d, bd, gates);
                if (r_table != 0) {
                    wl_product(&pr, h, r, 0, 0, tmp);
                    for (int32_t j = 0; j < 2 * H; j++)
                        gates[j] += tmp[j];
                    if (p->linear_before_reset)
                        for (int32_t j = 0; j < H; j++)
                            tmp[j] = tmp[2 * H + j] + bias_h[j];
                } else {
                    wl_fc_f32(&pzr, h, rzr, gates, gates);
                    if (p->linear_before_reset)
                        wl_fc_f32(&pn, h, rn, bias_h + d * H, tmp);
                }
                for (int32_t j = 0; j < 2 * H; j++) /* ONNX gate order: update, reset, hidden */
                    gates[j] = wl_sigmoid(wl_clip_gate(gates[j], p->clip));
                const float *z = gates, *rs = gates + H;
                float *n = gates + 2 * H;
                if (p->linear_before_reset) {
                    for (int32_t j = 0; j < H; j++)
                        n[j] += rs[j] * tmp[j];
                } else if (r_table != 0) {
                    for (int32_t j = 0; j < H; j++)
                        rh[j] = rs[j] * h[j];
                    wl_product(&pr, rh, r, 0, 0, tmp);
                    for (int32_t j = 0; j < H; j++)
                        n[j] += tmp[2 * H + j];
                } else {
                    for (int32_t j = 0; j < H; j++)
                        tmp[j] = rs[j] * h[j];
                    wl_fc_f32(&pn, tmp, rn, n, n);
                }
                for (int32_t j = 0; j < H; j++) {
                    const float nn = tanhf(wl_clip_gate(n[j], p->clip));
                    h[j] = (1.0f - z[j]) * nn + z[j] * h[j];
                }
                if (y != 0)
                    memcpy(y + wl_y_at(p, t, d, b), h, (size_t)H * sizeof(float));
            }
        }
    }
    wl_state_out(p, hs, y_h);
    return WL_OK;
}
