/*
 * Test "model" for the instruction counter: a run function that executes a
 * known number of instructions: WL_PROBE_NOPS nops, then a two-instruction
 * loop (subs, bne) taken k times, k = the input's binary exponent + 1 (1.0
 * gives 1, 2.0 gives 2; read from its bits: no float conversion, which is a
 * library call on a core without an FPU). Two builds, or two inputs, differ by
 * exactly the instructions added.
 */
#include <stdint.h>
#include <string.h>

#include "wl_harness_model.h" /* WL_PROBE_NOPS, from the test */

int wl_count_probe_run(const float *in, float *out)
{
    uint32_t bits;
    memcpy(&bits, in, sizeof bits);
    uint32_t n = ((bits >> 23) & 0xFFu) - 126u;
    __asm volatile(".rept " WL_PROBE_NOPS "\n\tnop\n\t.endr" ::: "memory");
    __asm volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    out[0] = in[0];
    return 0;
}
