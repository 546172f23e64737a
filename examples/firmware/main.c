/*
 * A firmware application that uses a weightless-mcu library: it fills the input
 * with a fixed pattern, runs one inference and prints each output as the hex of
 * its float32 bits (exact), over semihosting.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

extern void initialise_monitor_handles(void);

static float input[WL_DIGITS_MLP_INPUT_SIZE];
static float output[WL_DIGITS_MLP_OUTPUT_SIZE];

int main(void)
{
    initialise_monitor_handles();
    for (int i = 0; i < WL_DIGITS_MLP_INPUT_SIZE; i++)
        input[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    const int status = wl_digits_mlp_run(input, output);
    if (status != 0) {
        printf("wl_digits_mlp_run failed: %d\n", status);
        return 1;
    }
    for (int i = 0; i < WL_DIGITS_MLP_OUTPUT_SIZE; i++) {
        uint32_t bits;
        memcpy(&bits, &output[i], sizeof bits);
        printf("output[%d] %08lx\n", i, (unsigned long)bits);
    }
    return 0;
}
