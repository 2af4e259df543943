#include "app/core_messages.h"

#include "app/stats.h"
#include "boards/board.h"
#include "protocol/wire.h"

/* Defined by the build_info.c that the build generates; this default only
 * keeps builds without that step linking. */
__attribute__((weak)) const char tt_build_id[] = "unknown";

/* Longest CALIBRATE loop, so that the board stays responsive (the fuzz targets lower it). */
#ifndef CALIBRATE_MAX_ITERATIONS
#define CALIBRATE_MAX_ITERATIONS 100000000u
#endif

void handle_info(const request_t *req)
{
    const board_info_t *b = board_info();
    uint8_t buf[20 + 3 * 64]; /* strings beyond it are cut */
    wire_writer_t w = wire_writer(buf, sizeof buf);
    wire_u8(&w, PROTOCOL_VERSION);
    wire_u8(&w, (uint8_t)b->counter_kind);
    wire_u16(&w, (uint16_t)(b->rx_ring_bytes > 0xFFFFu ? 0xFFFFu : b->rx_ring_bytes));
    wire_u32(&w, TT_MAX_PAYLOAD);
    wire_u32(&w, b->ram_bytes);
    wire_u32(&w, b->flash_bytes);
    wire_u32(&w, b->clock_hz);
    wire_str(&w, TT_FIRMWARE_VERSION);
    wire_str(&w, b->name);
    wire_str(&w, tt_build_id);
    reply(req, buf, (uint32_t)w.len);
}

void handle_echo(const request_t *req) { reply(req, req->payload, req->len); }

void handle_stats(const request_t *req)
{
    const board_info_t *b = board_info();
    board_memory_t m;
    board_memory(&m);
    uint8_t buf[5 * 4 + 8 + 1 + 4];
    wire_writer_t w = wire_writer(buf, sizeof buf);
    wire_u32(&w, m.data_bytes);
    wire_u32(&w, m.bss_bytes);
    wire_u32(&w, m.stack_reserved_bytes);
    wire_u32(&w, m.stack_used_bytes);
    wire_u32(&w, m.data_bytes + m.bss_bytes + m.stack_used_bytes);
    wire_u64(&w, stats_last_count());
    wire_u8(&w, (uint8_t)b->counter_kind);
    wire_u32(&w, board_rx_overruns());
    reply(req, buf, (uint32_t)w.len);
}

bool claim_calibrate(uint32_t len, rx_claim_t *claim) { return claim_exactly(len, 4u, claim); }

/* Runs n iterations of a loop of known length: on Thumb-2 exactly two
 * instructions (subs, bne) per iteration. Returns instructions per iteration,
 * 0 where unknown. */
static uint32_t spin(uint32_t n)
{
#if defined(__arm__)
    __asm__ volatile("1:\n\t"
                     "subs %0, %0, #1\n\t"
                     "bne 1b\n\t"
                     : "+r"(n)
                     :
                     : "cc");
    return 2u;
#else
    for (volatile uint32_t i = 0; i < n; i = i + 1u) {
    }
    return 0u;
#endif
}

void handle_calibrate(const request_t *req)
{
    uint32_t n = wire_get_u32(req->payload);
    if (n == 0 || n > CALIBRATE_MAX_ITERATIONS) {
        reply_error(req, ERR_BAD_ARGUMENT, CALIBRATE_MAX_ITERATIONS, "iterations must be 1..100000000");
        return;
    }
    uint64_t t0 = board_counter_read();
    uint32_t per_iteration = spin(n);
    uint64_t count = board_counter_read() - t0;
    stats_set_last_count(count);

    uint8_t buf[8 + 4];
    wire_writer_t w = wire_writer(buf, sizeof buf);
    wire_u64(&w, count);
    wire_u32(&w, per_iteration);
    reply(req, buf, (uint32_t)w.len);
}
