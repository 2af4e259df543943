/* Fault handlers shared by the Cortex-M boards: capture the registers, hand them
 * to board_on_fault() (which sends a FAULT frame) and halt, instead of hanging
 * silently in a loop nobody can see. */
#include <stdint.h>

#include "boards/board.h"
#include "boards/cortex_m/cortex_m7.h"

extern uint32_t __ram_start__, __ram_end__;

void cortex_m_fault(const uint32_t *frame, uint32_t exc_return);

/* Finds the stacked exception frame (MSP or PSP, from EXC_RETURN bit 2). The
 * report is built below that frame when the stack has room there (the fault
 * path needs about 250 bytes); when the frame sits near or beyond the bottom of
 * the stack (an overflow), it starts over at the top instead, which is then far
 * from the frame. Either way the frame is read before anything overwrites it. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov r1, lr\n\t"
        "ldr r2, =__stack_bottom__ + 512\n\t"
        "cmp r0, r2\n\t"
        "blo 1f\n\t"
        "ldr r2, =__stack_top__\n\t"
        "cmp r0, r2\n\t"
        "bls 2f\n\t"
        "1:\n\t"
        "ldr r2, =__stack_top__\n\t"
        "mov sp, r2\n\t"
        "2:\n\t"
        "b cortex_m_fault\n\t");
}

/* MemManage, BusFault and UsageFault stay disabled and escalate to HardFault;
 * an NMI or an interrupt nobody enabled is reported the same way. */
void NMI_Handler(void) __attribute__((alias("HardFault_Handler")));
void Default_Handler(void) __attribute__((alias("HardFault_Handler")));

__attribute__((noreturn, used)) void cortex_m_fault(const uint32_t *frame, uint32_t exc_return)
{
    __asm__ volatile("cpsid i" ::: "memory");
    board_fault_t fault = {0};
    uintptr_t at = (uintptr_t)frame;
    fault.sp = (uint32_t)at;
    if ((at & 3u) == 0 && at >= (uintptr_t)&__ram_start__ && at + 32u <= (uintptr_t)&__ram_end__) {
        /* Basic frame: r0-r3, r12, lr, pc, xPSR; with FP context 18 more words. */
        fault.lr = frame[5];
        fault.pc = frame[6];
        fault.psr = frame[7];
        uint32_t words = (exc_return & 0x10u) ? 8u : 26u;
        if (fault.psr & (1u << 9)) {
            words += 1u; /* the core realigned the stack to 8 bytes */
        }
        fault.sp = (uint32_t)(at + 4u * words);
    }
    fault.cfsr = SCB_CFSR;
    fault.hfsr = SCB_HFSR;
    fault.mmfar = SCB_MMFAR;
    fault.bfar = SCB_BFAR;
    board_on_fault(&fault);
    for (;;) {
    }
}
