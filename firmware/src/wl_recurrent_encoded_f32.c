/* LSTM and GRU whose W is a compressed table (Bloomier, codebook or sparse stream), one
 * direction: wl_recurrent_f32.c compiled with W read by wl_fc_encoded_f32 at every step. */
#define WL_RECURRENT_ENCODED 1
#include "wl_recurrent_f32.c"
