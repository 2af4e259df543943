/* Reset handler and memory statistics shared by the Cortex-M boards. */
#include <stdint.h>
#include <string.h>

#include "boards/board.h"
#include "boards/cortex_m/cortex_m7.h"

/* Bytes of the stack region nobody has written yet hold this pattern. */
#define STACK_PAINT 0xC5C5C5C5u
/* Stay clear of the reset handler's own frame while painting. */
#define STACK_PAINT_MARGIN_WORDS 32u

extern uint32_t __data_start__, __data_end__, __data_load__;
extern uint32_t __bss_start__, __bss_end__, __dtcm_bss_start__, __dtcm_bss_end__;
extern uint32_t __stack_bottom__;

int main(int argc, char **argv);
void cortex_m_reset(void);

/* Naked so that the FPU is on before any compiled code runs: with
 * -mfloat-abi=hard GCC may use FP registers even for plain copies. */
__attribute__((naked)) void Reset_Handler(void)
{
    __asm__ volatile(
        "ldr r0, =0xE000ED88\n\t" /* SCB->CPACR: full access to CP10/CP11 */
        "ldr r1, [r0]\n\t"
        "orr r1, r1, #(0xF << 20)\n\t"
        "str r1, [r0]\n\t"
        "dsb\n\t"
        "isb\n\t"
        "b cortex_m_reset\n\t");
}

static uint32_t *stack_pointer(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

__attribute__((noreturn, used)) void cortex_m_reset(void)
{
    memcpy(&__data_start__, &__data_load__,
           (size_t)((uintptr_t)&__data_end__ - (uintptr_t)&__data_start__));
    memset(&__bss_start__, 0, (size_t)((uintptr_t)&__bss_end__ - (uintptr_t)&__bss_start__));
    memset(&__dtcm_bss_start__, 0,
           (size_t)((uintptr_t)&__dtcm_bss_end__ - (uintptr_t)&__dtcm_bss_start__));

    uint32_t *end = stack_pointer() - STACK_PAINT_MARGIN_WORDS;
    for (volatile uint32_t *p = &__stack_bottom__; p < end; ++p) {
        *p = STACK_PAINT;
    }

    main(0, NULL);
    for (;;) {
    }
}

void board_memory(board_memory_t *out)
{
    const uint32_t *bottom = &__stack_bottom__;
    const uint32_t *top = &__stack_top__;
    const uint32_t *p = bottom;
    while (p < top && *p == STACK_PAINT) {
        ++p;
    }
    out->data_bytes = (uint32_t)((uintptr_t)&__data_end__ - (uintptr_t)&__data_start__);
    out->bss_bytes = (uint32_t)((uintptr_t)&__bss_end__ - (uintptr_t)&__bss_start__) +
                     (uint32_t)((uintptr_t)&__dtcm_bss_end__ - (uintptr_t)&__dtcm_bss_start__);
    out->stack_reserved_bytes = (uint32_t)((uintptr_t)top - (uintptr_t)bottom);
    out->stack_used_bytes = (uint32_t)((uintptr_t)top - (uintptr_t)p);
}
