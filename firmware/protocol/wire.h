/* Little-endian field encoding for message payloads, byte by byte so that it
 * is independent of the CPU's byte order and of alignment. */
#ifndef TT_WIRE_H
#define TT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow; /* a put did not fit; len stops growing */
} wire_writer_t;

static inline wire_writer_t wire_writer(uint8_t *buf, size_t cap)
{
    wire_writer_t w = {buf, cap, 0, false};
    return w;
}

static inline void wire_put_le(wire_writer_t *w, uint64_t value, unsigned bytes)
{
    if (w->len + bytes > w->cap) {
        w->overflow = true;
        return;
    }
    for (unsigned i = 0; i < bytes; ++i) {
        w->buf[w->len++] = (uint8_t)(value >> (8u * i));
    }
}

static inline void wire_u8(wire_writer_t *w, uint8_t v) { wire_put_le(w, v, 1); }
static inline void wire_u16(wire_writer_t *w, uint16_t v) { wire_put_le(w, v, 2); }
static inline void wire_u32(wire_writer_t *w, uint32_t v) { wire_put_le(w, v, 4); }
static inline void wire_u64(wire_writer_t *w, uint64_t v) { wire_put_le(w, v, 8); }

/* Protocol string: u8 length, then that many bytes. A string longer than 255
 * bytes or than the space left is cut (and overflow set), keeping the payload
 * well formed. */
static inline void wire_str(wire_writer_t *w, const char *s)
{
    if (w->len >= w->cap) {
        w->overflow = true;
        return;
    }
    size_t n = strlen(s);
    size_t room = w->cap - w->len - 1u;
    if (n > 255u || n > room) {
        n = room < 255u ? room : 255u;
        w->overflow = true;
    }
    w->buf[w->len++] = (uint8_t)n;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static inline uint64_t wire_get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; ++i) {
        v |= (uint64_t)p[i] << (8u * i);
    }
    return v;
}

static inline uint16_t wire_get_u16(const uint8_t *p) { return (uint16_t)wire_get_le(p, 2); }
static inline uint32_t wire_get_u32(const uint8_t *p) { return (uint32_t)wire_get_le(p, 4); }
static inline uint64_t wire_get_u64(const uint8_t *p) { return wire_get_le(p, 8); }

#endif
