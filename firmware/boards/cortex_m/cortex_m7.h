/* Cortex-M7 core registers (ARMv7-M ARM, Cortex-M7 TRM) shared by the MCU
 * boards. Vendor peripherals live in each board's own header. */
#ifndef TT_CORTEX_M7_H
#define TT_CORTEX_M7_H

#include <stdint.h>

#define TT_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* System control block */
#define SCB_ICSR TT_REG32(0xE000ED04u)
#define SCB_ICSR_PENDSTSET (1u << 26)
#define SCB_CCR TT_REG32(0xE000ED14u)
#define SCB_CCR_DC (1u << 16)
#define SCB_CCR_IC (1u << 17)
#define SCB_CFSR TT_REG32(0xE000ED28u)
#define SCB_HFSR TT_REG32(0xE000ED2Cu)
#define SCB_MMFAR TT_REG32(0xE000ED34u)
#define SCB_BFAR TT_REG32(0xE000ED38u)
#define SCB_CCSIDR TT_REG32(0xE000ED80u)
#define SCB_CSSELR TT_REG32(0xE000ED84u)
#define SCB_CPACR TT_REG32(0xE000ED88u)
#define SCB_CPACR_CP10_CP11_FULL (0xFu << 20)
#define SCB_ICIALLU TT_REG32(0xE000EF50u)
#define SCB_DCIMVAC TT_REG32(0xE000EF5Cu) /* invalidate the D-cache line holding an address */
#define SCB_DCISW TT_REG32(0xE000EF60u)
#define CORTEX_M7_DCACHE_LINE 32u

/* SysTick */
#define SYST_CSR TT_REG32(0xE000E010u)
#define SYST_RVR TT_REG32(0xE000E014u)
#define SYST_CVR TT_REG32(0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CPU (1u << 2)
#define SYST_RELOAD_MAX 0x00FFFFFFu

/* Debug: cycle counter */
#define DEMCR TT_REG32(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL TT_REG32(0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CYCCNT TT_REG32(0xE0001004u)
#define DWT_LAR TT_REG32(0xE0001FB0u)
#define DWT_LAR_UNLOCK 0xC5ACCE55u

/* NVIC */
#define NVIC_ISER(n) TT_REG32(0xE000E100u + 4u * (n))

/* The value of a linker-script symbol (its address), through an empty asm: C lets a compiler assume
 * that an object's address is never 0 and fold a test of it away, but such a symbol may be 0 (the
 * size of the checkpoint region of a build without checkpoints). */
static inline uint32_t cortex_m_linker_value(const void *symbol)
{
    uintptr_t v = (uintptr_t)symbol;
    __asm__("" : "+r"(v));
    return (uint32_t)v;
}

static inline void cortex_m_dsb(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }
static inline void cortex_m_isb(void) { __asm__ volatile("isb 0xF" ::: "memory"); }
static inline void cortex_m_irq_enable(void) { __asm__ volatile("cpsie i" ::: "memory"); }

/* Masks interrupts and returns the previous PRIMASK, for cortex_m_irq_restore(). */
static inline uint32_t cortex_m_irq_save(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void cortex_m_irq_restore(uint32_t primask)
{
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
}

static inline void cortex_m_nvic_enable(unsigned irq) { NVIC_ISER(irq / 32u) = 1u << (irq % 32u); }

/* Shared by the boards' vector tables (cortex_m/startup.c, cortex_m/fault.c). */
void Reset_Handler(void);
void HardFault_Handler(void);
void NMI_Handler(void);
void Default_Handler(void);
extern uint32_t __stack_top__;

#endif
