/*
 * Test harness: runs the generated model on every sample of input.bin and
 * writes the outputs to output.bin (float32, sample after sample), both in the
 * working directory: host files through semihosting under QEMU, plain files
 * on the host build.
 *
 * The instruction count of each inference is taken by the QEMU plugin at the
 * two marker functions around the call; one empty begin/end pair first gives
 * the plugin the markers' own cost, which the runner subtracts.
 *
 * On a board, the harness also paints the free stack before each inference and
 * reports the deepest use by the inference ("wlh_stack_bytes N" on stdout).
 */
#include <stdio.h>

#include "wl_board.h"
#include "wl_harness_model.h"

/* A binding without int8 or uint8 inputs and outputs has nothing to convert. */
#ifndef WL_HARNESS_LOAD
#define WL_HARNESS_LOAD(in) ((void)(in))
#endif
#ifndef WL_HARNESS_STORE
#define WL_HARNESS_STORE(out) ((void)(out))
#endif

#if defined(__arm__)
extern void initialise_monitor_handles(void);
#endif

/* noipa: the markers must stay two distinct, real calls. */
__attribute__((noinline, noipa)) void wlh_count_begin(void) { __asm volatile("" ::: "memory"); }
__attribute__((noinline, noipa)) void wlh_count_end(void) { __asm volatile("" ::: "memory"); }
/* Called after every kernel by a model compiled with -DWL_PROFILE: per-step counts. */
__attribute__((noinline, noipa)) void wl_profile_step(int step) { __asm volatile("" ::: "memory"); (void)step; }

#if defined(__arm__)
#include <stdint.h>
extern uint32_t __stack_limit__, __stack_top__;
#define WLH_STACK_PAINT 0x5AA5C33Cu

static uint32_t *painted_from;

/* Fill the free stack below the caller's frame with a pattern (inlined, so
 * "the caller's frame" is main's). */
__attribute__((always_inline)) static inline void paint_stack(void)
{
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    painted_from = sp;
    for (uint32_t *p = &__stack_limit__; p < sp; p++)
        *p = WLH_STACK_PAINT;
}

/* Bytes below the caller's frame written since paint_stack(). */
static uint32_t stack_used(void)
{
    uint32_t *p = &__stack_limit__;
    while (p < painted_from && *p == WLH_STACK_PAINT)
        p++;
    return (uint32_t)((uintptr_t)painted_from - (uintptr_t)p);
}
#endif

static float input[WL_HARNESS_INPUT_SIZE];
static float output[WL_HARNESS_OUTPUT_SIZE];

int main(void)
{
#if defined(__arm__)
    initialise_monitor_handles();
    uint32_t stack_max = 0;
#endif
    wlh_count_begin();
    wlh_count_end();
    FILE *in = fopen("input.bin", "rb");
    FILE *out = fopen("output.bin", "wb");
    if (in == NULL || out == NULL) {
        fprintf(stderr, "harness: cannot open input.bin or output.bin\n");
        return WL_EXIT_IO;
    }
    for (;;) {
        size_t got = fread(input, sizeof(float), WL_HARNESS_INPUT_SIZE, in);
        if (got == 0)
            break;
        if (got != WL_HARNESS_INPUT_SIZE) {
            fprintf(stderr, "harness: input.bin ends inside a sample\n");
            return WL_EXIT_IO;
        }
#if defined(__arm__)
        paint_stack();
#endif
        WL_HARNESS_LOAD(input);
        wlh_count_begin();
        int status = WL_HARNESS_RUN(input, output);
        wlh_count_end();
        WL_HARNESS_STORE(output);
#if defined(__arm__)
        uint32_t used = stack_used();
        stack_max = used > stack_max ? used : stack_max;
#endif
        if (status != 0) {
            fprintf(stderr, "harness: the model returned status %d\n", status);
            return WL_EXIT_MODEL;
        }
        if (fwrite(output, sizeof(float), WL_HARNESS_OUTPUT_SIZE, out) != WL_HARNESS_OUTPUT_SIZE) {
            fprintf(stderr, "harness: cannot write output.bin\n");
            return WL_EXIT_IO;
        }
        /* progress for the runner (outside the counted region) */
        fputs("wlh_sample_done\n", stdout);
        fflush(stdout);
    }
    if (fclose(out) != 0) {
        fprintf(stderr, "harness: cannot write output.bin\n");
        return WL_EXIT_IO;
    }
    fclose(in);
#if defined(__arm__)
    printf("wlh_stack_bytes %lu\n", (unsigned long)stack_max);
#endif
    return WL_EXIT_OK;
}
