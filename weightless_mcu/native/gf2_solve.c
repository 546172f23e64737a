/*
 * Solver for Bloomier tables, built on the host and called through ctypes.
 *
 * A table is split into independent blocks. In each block every key k gives
 * one equation over GF(2)^t:  XOR of the cells cells[k][0..h-1]  =  rhs[k].
 * Keys are first peeled (a cell used by one key only is set last, from that
 * key); the keys that remain (the 2-core) are solved by Gaussian elimination
 * on bitset rows, free cells being 0. A block whose system is inconsistent is
 * reported in ok[] and left for the caller to lay out again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HASHES 4

/* Drop cells that occur an even number of times (they cancel). */
static int cancel_pairs(uint32_t *c, int h)
{
    for (int i = 1; i < h; i++) /* insertion sort, h <= 4 */
        for (int j = i; j > 0 && c[j - 1] > c[j]; j--) {
            uint32_t tmp = c[j]; c[j] = c[j - 1]; c[j - 1] = tmp;
        }
    int n = 0;
    for (int i = 0; i < h;) {
        if (i + 1 < h && c[i] == c[i + 1]) { i += 2; continue; }
        c[n++] = c[i++];
    }
    return n;
}

static int solve_block(int64_t nkeys, int64_t ncells, int h, const uint32_t *cells_in, const uint32_t *rhs,
                       uint32_t *sol)
{
    uint32_t *cells = malloc(sizeof(uint32_t) * (size_t)(nkeys * MAX_HASHES + 1));
    int8_t *deg = malloc((size_t)nkeys + 1);
    uint32_t *count = calloc((size_t)ncells + 1, sizeof(uint32_t));
    uint64_t *keyxor = calloc((size_t)ncells + 1, sizeof(uint64_t));
    int64_t *stack = malloc(sizeof(int64_t) * (size_t)(ncells + 1));
    int64_t *order_key = malloc(sizeof(int64_t) * (size_t)(nkeys + 1));
    int64_t *order_cell = malloc(sizeof(int64_t) * (size_t)(nkeys + 1));
    uint8_t *peeled = calloc((size_t)nkeys + 1, 1);
    int result = 1;
    if (!cells || !deg || !count || !keyxor || !stack || !order_key || !order_cell || !peeled) {
        result = -1;
        goto done;
    }
    for (int64_t k = 0; k < nkeys; k++) {
        uint32_t *c = cells + k * MAX_HASHES;
        memcpy(c, cells_in + k * h, sizeof(uint32_t) * (size_t)h);
        deg[k] = (int8_t)cancel_pairs(c, h);
        for (int j = 0; j < deg[k]; j++) {
            count[c[j]]++;
            keyxor[c[j]] ^= (uint64_t)k;
        }
    }
    /* Peeling. */
    int64_t top = 0, npeeled = 0;
    for (int64_t c = 0; c < ncells; c++)
        if (count[c] == 1)
            stack[top++] = c;
    while (top > 0) {
        int64_t c = stack[--top];
        if (count[c] != 1)
            continue;
        int64_t k = (int64_t)keyxor[c];
        peeled[k] = 1;
        order_key[npeeled] = k;
        order_cell[npeeled++] = c;
        const uint32_t *kc = cells + k * MAX_HASHES;
        for (int j = 0; j < deg[k]; j++) {
            count[kc[j]]--;
            keyxor[kc[j]] ^= (uint64_t)k;
            if (count[kc[j]] == 1)
                stack[top++] = kc[j];
        }
    }
    /* Gaussian elimination on the core: each pivot row's lowest set bit is its column. */
    memset(sol, 0, sizeof(uint32_t) * (size_t)ncells);
    const int64_t words = (ncells + 63) / 64;
    int64_t ncore = nkeys - npeeled;
    if (ncore > 0) {
        uint64_t *rows = calloc((size_t)(ncore * words), sizeof(uint64_t));
        uint32_t *rrhs = malloc(sizeof(uint32_t) * (size_t)ncore);
        int64_t *pivot_of = malloc(sizeof(int64_t) * (size_t)ncells);
        if (!rows || !rrhs || !pivot_of) {
            free(rows); free(rrhs); free(pivot_of);
            result = -1;
            goto done;
        }
        for (int64_t c = 0; c < ncells; c++)
            pivot_of[c] = -1;
        int64_t nrows = 0;
        for (int64_t k = 0; k < nkeys && result == 1; k++) {
            if (peeled[k])
                continue;
            uint64_t *row = rows + nrows * words;
            uint32_t r = rhs[k];
            const uint32_t *kc = cells + k * MAX_HASHES;
            for (int j = 0; j < deg[k]; j++)
                row[kc[j] / 64] ^= (uint64_t)1 << (kc[j] % 64);
            for (int64_t w = 0; w < words; w++) {
                while (row[w] != 0) {
                    int64_t c = w * 64 + __builtin_ctzll(row[w]);
                    int64_t p = pivot_of[c];
                    if (p < 0) {
                        pivot_of[c] = nrows;
                        rrhs[nrows] = r;
                        nrows++;
                        goto next_key;
                    }
                    const uint64_t *prow = rows + p * words;
                    for (int64_t v = w; v < words; v++)
                        row[v] ^= prow[v];
                    r ^= rrhs[p];
                }
            }
            if (r != 0)
                result = 0; /* 0 = value: inconsistent */
        next_key:;
        }
        /* Back substitution, highest pivot column first. */
        for (int64_t c = ncells - 1; c >= 0 && result == 1; c--) {
            int64_t p = pivot_of[c];
            if (p < 0)
                continue;
            const uint64_t *row = rows + p * words;
            uint32_t v = rrhs[p];
            for (int64_t w = c / 64; w < words; w++) {
                uint64_t bits = row[w];
                if (w == c / 64)
                    bits &= ~(((uint64_t)2 << (c % 64)) - 1); /* bits above c */
                while (bits) {
                    v ^= sol[w * 64 + __builtin_ctzll(bits)];
                    bits &= bits - 1;
                }
            }
            sol[c] = v;
        }
        free(rows); free(rrhs); free(pivot_of);
    }
    /* Peeled keys, last peeled first: their own cell is free to satisfy them. */
    for (int64_t i = npeeled - 1; i >= 0 && result == 1; i--) {
        int64_t k = order_key[i], own = order_cell[i];
        uint32_t v = rhs[k];
        const uint32_t *kc = cells + k * MAX_HASHES;
        for (int j = 0; j < deg[k]; j++)
            if (kc[j] != own)
                v ^= sol[kc[j]];
        sol[own] = v;
    }
done:
    free(cells); free(deg); free(count); free(keyxor); free(stack); free(order_key); free(order_cell); free(peeled);
    return result;
}

/* Solve blocks b in [0, nblocks): keys key_start[b]..key_start[b+1]-1 with
 * block-local cells cells[key*h + j], cells cell_start[b]..cell_start[b+1]-1.
 * ok[b] = 1 solved, 0 inconsistent, -1 out of memory. */
void wl_solve_blocks(int64_t nblocks, const int64_t *key_start, const int64_t *cell_start, int32_t h,
                     const uint32_t *cells, const uint32_t *rhs, uint32_t *sol, int8_t *ok)
{
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t k0 = key_start[b], c0 = cell_start[b];
        ok[b] = (int8_t)solve_block(key_start[b + 1] - k0, cell_start[b + 1] - c0, h, cells + k0 * h, rhs + k0, sol + c0);
    }
}
