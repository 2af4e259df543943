/* Code generation hints of the engine's hot loops (GCC; other compilers get plain C). Internal to the engine. */
#ifndef TT_COMPILER_HINTS_H
#define TT_COMPILER_HINTS_H

#include <string.h>

/* Hot-loop helpers must be inlined even where GCC's size heuristics would not. */
#if defined(__GNUC__)
#define TT_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TT_ALWAYS_INLINE static inline
#endif

/* Complete unrolling of a loop with a small constant trip count (GCC; other compilers decide). */
#if defined(__GNUC__) && !defined(__clang__)
#define TT_UNROLL(n) _Pragma(TT_STR(GCC unroll n))
#define TT_STR(x) #x
#else
#define TT_UNROLL(n)
#endif

/* The builtin even under -ffreestanding, where a plain memcpy would be a call per load. */
#if defined(__GNUC__)
#define TT_MEMCPY __builtin_memcpy
#else
#define TT_MEMCPY memcpy
#endif

/* A function kept out of line: its stack frame (scratch tables) stays out of its callers' frames, or
 * each instantiation of a template body stays one function. */
#if defined(__GNUC__)
#define TT_NOINLINE __attribute__((noinline))
#else
#define TT_NOINLINE
#endif

/* The same without GCC's pre-allocation scheduler, which hoists every load of an unrolled block and
 * spills what it cannot hold. */
#if defined(__GNUC__) && !defined(__clang__)
#define TT_NOINLINE_NOSCHED __attribute__((noinline, optimize("no-schedule-insns")))
#else
#define TT_NOINLINE_NOSCHED TT_NOINLINE
#endif

/* Tells the compiler a fact it cannot derive (no instruction; undefined behaviour if false). */
#if defined(__GNUC__)
#define TT_ASSUME(c) ((c) ? (void)0 : __builtin_unreachable())
#else
#define TT_ASSUME(c) ((void)0)
#endif

/* Makes the compiler forget what it knows about x (no instruction): keeps a load that uses x as its
 * address inside the loop where it is written, instead of hoisted into a register that then spills. */
#if defined(__GNUC__)
#define TT_OPAQUE(x) __asm__("" : "+r"(x))
#else
#define TT_OPAQUE(x) ((void)0)
#endif

#endif
