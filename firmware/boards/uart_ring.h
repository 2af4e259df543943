/* A single-producer single-consumer byte ring between a receive interrupt (or the host build's
 * simulated UART) and the main loop. A byte that finds the ring full is dropped and counted: the
 * frame it belonged to then fails its CRC or never ends, and STATS reports the count. */
#ifndef TT_UART_RING_H
#define TT_UART_RING_H

#include <stdint.h>

typedef struct {
    uint8_t *bytes;
    uint32_t size;
    volatile uint32_t head;     /* written by the producer */
    volatile uint32_t tail;     /* written by the consumer */
    volatile uint32_t overruns; /* written by the producer */
} uart_ring_t;

/* Producer side (interrupt): returns 0 when the byte was dropped. */
static inline int uart_ring_put(uart_ring_t *r, uint8_t byte)
{
    uint32_t head = r->head;
    if (head - r->tail >= r->size) {
        r->overruns = r->overruns + 1u;
        return 0;
    }
    r->bytes[head % r->size] = byte;
    r->head = head + 1u;
    return 1;
}

/* Consumer side: the next byte, or -1 when the ring is empty. */
static inline int uart_ring_get(uart_ring_t *r)
{
    uint32_t tail = r->tail;
    if (tail == r->head) {
        return -1;
    }
    int byte = r->bytes[tail % r->size];
    r->tail = tail + 1u;
    return byte;
}

#endif
