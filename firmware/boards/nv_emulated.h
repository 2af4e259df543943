/* Flash rules in software, for the boards whose non-volatile storage is a stand-in (QEMU, the host
 * build, the fuzz targets): erase sets a sector to 0xFF a chunk at a time, programming ANDs bytes in
 * `unit` at a time and is refused over bytes that are not erased, exactly what the STM32F746 driver
 * promises (board.h). Each chunk or unit is announced to `before` (where a test cuts the power) and
 * handed to `persist` once it changed in memory (where a board writes it through to its file), so a
 * cut between two of them leaves a realistic partial erase or write. */
#ifndef TT_NV_EMULATED_H
#define TT_NV_EMULATED_H

#include <stdbool.h>
#include <stdint.h>

#include "boards/board.h"

/* Bytes an emulated erase clears at a time (a power cut lands between two of them). */
#define NV_EMULATED_ERASE_CHUNK 1024u

typedef struct {
    volatile uint8_t *mem;
    uint32_t sector_bytes;
    uint32_t sectors;
    uint32_t unit;
    /* Before each chunk or unit: data is what it programs (NULL: an erase). */
    void (*before)(uint32_t offset, uint32_t len, const uint8_t *data); /* NULL: nothing */
    void (*persist)(uint32_t offset, uint32_t len);           /* NULL: nothing */
} nv_emulated_t;

static inline int nv_emulated_erase(const nv_emulated_t *nv, uint32_t sector)
{
    if (nv->mem == NULL || sector >= nv->sectors) {
        return BOARD_NV_BAD_RANGE;
    }
    uint32_t chunk = nv->sector_bytes < NV_EMULATED_ERASE_CHUNK ? nv->sector_bytes : NV_EMULATED_ERASE_CHUNK;
    for (uint32_t off = sector * nv->sector_bytes; off < (sector + 1u) * nv->sector_bytes; off += chunk) {
        if (nv->before != NULL) {
            nv->before(off, chunk, NULL);
        }
        for (uint32_t i = 0; i < chunk; ++i) {
            nv->mem[off + i] = 0xFFu;
        }
        if (nv->persist != NULL) {
            nv->persist(off, chunk);
        }
    }
    return BOARD_NV_OK;
}

static inline int nv_emulated_program(const nv_emulated_t *nv, uint32_t offset, const void *data, uint32_t len)
{
    const uint8_t *src = data;
    uint32_t size = nv->sector_bytes * nv->sectors;
    if (nv->mem == NULL || offset % nv->unit != 0u || len % nv->unit != 0u || offset > size || len > size - offset) {
        return BOARD_NV_BAD_RANGE;
    }
    for (uint32_t i = 0; i < len; ++i) {
        if (nv->mem[offset + i] != 0xFFu) {
            return BOARD_NV_NOT_ERASED;
        }
    }
    for (uint32_t at = 0; at < len; at += nv->unit) {
        if (nv->before != NULL) {
            nv->before(offset + at, nv->unit, src + at);
        }
        for (uint32_t i = 0; i < nv->unit; ++i) {
            nv->mem[offset + at + i] = (uint8_t)(nv->mem[offset + at + i] & src[at + i]);
        }
        if (nv->persist != NULL) {
            nv->persist(offset + at, nv->unit);
        }
    }
    for (uint32_t i = 0; i < len; ++i) {
        if (nv->mem[offset + i] != src[i]) {
            return BOARD_NV_VERIFY;
        }
    }
    return BOARD_NV_OK;
}

#endif
