/*
 * Start-up code for the Cortex-M boards that QEMU emulates (MPS2 AN385/AN386/
 * AN500/AN505): vector table, reset handler and fault handlers.
 *
 * A fault exits through semihosting with status WL_EXIT_FAULT, so a crash
 * shows up as a failed run instead of a hang.
 */
#include <stdint.h>
#include <stdlib.h>

#include "wl_board.h"

extern uint32_t __data_load__, __data_start__, __data_end__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __stack_top__;

extern int main(void);
extern void __libc_init_array(void);

void Reset_Handler(void);
void wlh_fault_handler(void);

/* Linking with -nostartfiles leaves these to us. */
void _init(void) {}
void _fini(void) {}

__attribute__((noreturn)) void wlh_fault_handler(void)
{
    exit(WL_EXIT_FAULT);
}

__attribute__((section(".isr_vector"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))(&__stack_top__),
    Reset_Handler,
    wlh_fault_handler, /* NMI */
    wlh_fault_handler, /* HardFault */
    wlh_fault_handler, /* MemManage */
    wlh_fault_handler, /* BusFault */
    wlh_fault_handler, /* UsageFault */
    wlh_fault_handler, /* SecureFault (v8-M) */
    0, 0, 0,
    wlh_fault_handler, /* SVCall */
    wlh_fault_handler, /* DebugMonitor */
    0,
    wlh_fault_handler, /* PendSV */
    wlh_fault_handler, /* SysTick */
};

__attribute__((noreturn)) void Reset_Handler(void)
{
#if defined(__ARM_FP)
    /* Full access to CP10/CP11, or the first FPU instruction faults. */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    uint32_t *src = &__data_load__;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;)
        *dst++ = 0;
    __libc_init_array();
    exit(main());
}
