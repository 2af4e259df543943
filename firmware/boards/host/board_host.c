/* The firmware as a Linux process, for running it under AddressSanitizer and
 * UBSan: the serial line is a TCP server on 127.0.0.1 (one client at a time),
 * the counter is CLOCK_MONOTONIC in ns.
 *
 *     tinytrain_host [PORT [NV_FILE]]     PORT 0 or none: pick a free one
 *
 * It prints "listening on socket://127.0.0.1:PORT" once it accepts clients.
 *
 * Non-volatile storage (checkpoints): NV_FILE, 2 sectors of 256 KB like the STM32F746's slots, mapped
 * shared so that every programmed unit is in the file the moment it is written, whatever kills the
 * process (created erased, all 0xFF, when missing); without NV_FILE the same in RAM, lost at exit.
 * A power cut during a write, for tests: TT_HOST_NV_CUT_AFTER=N ends the process at the N-th erase
 * chunk or program unit from the start, TT_HOST_NV_CUT_MODE says how: `before` it (the default),
 * `after` it, or `partial` (a unit half programmed, a chunk half erased, from TT_HOST_NV_CUT_SEED).
 *
 * Built with -DTT_HOST_UART_RING=N it behaves like the STM32F746's serial line instead of a socket
 * that waits: a 1 kHz timer signal (the "receive interrupt") moves up to TT_HOST_UART_BYTES_PER_MS
 * bytes per tick from the socket into an N-byte ring, whether the firmware is busy or not, and
 * bytes that find the ring full are dropped and counted (STATS rx_overruns). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boards/board.h"
#include "boards/nv_emulated.h"
#include "boards/uart_ring.h"

#ifdef TT_HOST_UART_RING
#ifndef TT_HOST_UART_BYTES_PER_MS
#define TT_HOST_UART_BYTES_PER_MS 12u /* 115200 baud */
#endif
#define RX_RING_BYTES (TT_HOST_UART_RING)
#else
#define RX_RING_BYTES 0u
#endif

static const board_info_t info = {
    .name = "host",
    .ram_bytes = 320u * 1024u, /* the MCU targets' budget, so limits mean the same */
    .flash_bytes = 1024u * 1024u,
    .clock_hz = 0,
    .counter_kind = BOARD_COUNTER_NANOSECONDS,
    .counter_hz = 1000000000u,
    .rx_ring_bytes = RX_RING_BYTES,
};

static int listen_fd = -1;
static int client_fd = -1;
#ifndef TT_HOST_UART_RING
static uint8_t inbox[4096];
#endif
static size_t inbox_len, inbox_pos;

/* Static sections of this executable, from the symbols GNU ld defines. */
extern char __data_start, _edata, __bss_start, _end;

static void die(const char *what)
{
    fprintf(stderr, "tinytrain_host: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void on_signal(int sig, siginfo_t *si, void *context)
{
    (void)context;
    board_fault_t fault = {0};
    fault.mmfar = fault.bfar = (uint32_t)(uintptr_t)si->si_addr;
    fault.cfsr = (uint32_t)sig;
    board_on_fault(&fault);
    /* Let the default action (or a sanitizer's report) follow. */
    signal(sig, SIG_DFL);
    raise(sig);
}

#ifdef TT_HOST_UART_RING
static uint8_t sim_bytes[TT_HOST_UART_RING];
static uart_ring_t sim_ring = {sim_bytes, TT_HOST_UART_RING, 0u, 0u, 0u};
static volatile sig_atomic_t sim_fd = -1;       /* the client the "interrupt" reads; -1: none */
static volatile sig_atomic_t sim_peer_closed;

static void on_uart_tick(int sig)
{
    (void)sig;
    int saved = errno;
    int fd = sim_fd;
    if (fd >= 0 && !sim_peer_closed) {
        uint8_t chunk[TT_HOST_UART_BYTES_PER_MS];
        ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            sim_peer_closed = 1;
        }
        for (ssize_t i = 0; i < n; ++i) {
            (void)uart_ring_put(&sim_ring, chunk[i]);
        }
    }
    errno = saved;
}

static void uart_tick_block(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(how, &set, NULL);
}

uint32_t board_rx_overruns(void) { return sim_ring.overruns; }
#else
uint32_t board_rx_overruns(void) { return 0u; }
#endif

/* ------------------------------------------------------------ non-volatile storage */

#define NV_SECTOR_BYTES (256u * 1024u)
#define NV_SECTORS 2u
#define NV_UNIT 4u
#define NV_CUT_EXIT_STATUS 86 /* what a test sees when the simulated power cut ended the process */

static board_nv_info_t nv_info = {NULL, NV_SECTOR_BYTES, NV_SECTORS, NV_UNIT, false};
static struct {
    unsigned long countdown; /* 0: no power cut planned */
    int mode;                /* 0 before, 1 after, 2 partial */
    uint32_t seed;
    int cut_after;           /* the unit just applied is the last one */
} cut;

static uint32_t cut_random(void)
{
    cut.seed = cut.seed * 1664525u + 1013904223u;
    return cut.seed >> 8;
}

static void nv_before(uint32_t offset, uint32_t len, const uint8_t *data)
{
    if (cut.countdown == 0u || --cut.countdown != 0u) {
        return;
    }
    volatile uint8_t *mem = (volatile uint8_t *)nv_info.base + offset;
    if (cut.mode == 1) {
        cut.cut_after = 1;
        return;
    }
    if (cut.mode == 2) {
        for (uint32_t i = 0; i < len; ++i) {
            if (data != NULL) {
                mem[i] = (uint8_t)(mem[i] & (data[i] | (uint8_t)cut_random())); /* some bits did not flip yet */
            } else if (cut_random() & 1u) {
                mem[i] = 0xFFu; /* some bytes were erased, others not */
            }
        }
    }
    _exit(NV_CUT_EXIT_STATUS);
}

static void nv_persist(uint32_t offset, uint32_t len)
{
    (void)offset;
    (void)len;
    if (cut.cut_after) {
        _exit(NV_CUT_EXIT_STATUS);
    }
}

static nv_emulated_t nv;

static void nv_init(const char *path)
{
#ifdef TT_HOST_NO_NV
    (void)path; /* like an MCU build without checkpoints: no storage at all */
    nv_info.sectors = 0u;
    return;
#endif
    size_t bytes = (size_t)NV_SECTOR_BYTES * NV_SECTORS;
    void *mem;
    if (path != NULL && path[0] != '\0') {
        int fd = open(path, O_RDWR | O_CREAT, 0644);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            die(path);
        }
        if (st.st_size == 0) {
            static uint8_t erased[4096];
            memset(erased, 0xFF, sizeof erased);
            for (size_t at = 0; at < bytes; at += sizeof erased) {
                if (write(fd, erased, sizeof erased) != (ssize_t)sizeof erased) {
                    die(path);
                }
            }
        } else if ((size_t)st.st_size != bytes) {
            fprintf(stderr, "tinytrain_host: %s has %lld bytes, not the %zu of the non-volatile storage.\n", path,
                    (long long)st.st_size, bytes);
            exit(2);
        }
        mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        nv_info.persistent = true;
    } else {
        mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem != MAP_FAILED) {
            memset(mem, 0xFF, bytes);
        }
    }
    if (mem == MAP_FAILED) {
        die("mmap");
    }
    nv_info.base = mem;
    const char *after = getenv("TT_HOST_NV_CUT_AFTER");
    const char *mode = getenv("TT_HOST_NV_CUT_MODE");
    const char *seed = getenv("TT_HOST_NV_CUT_SEED");
    cut.countdown = after != NULL ? strtoul(after, NULL, 10) : 0u;
    cut.mode = mode == NULL ? 0 : strcmp(mode, "after") == 0 ? 1 : strcmp(mode, "partial") == 0 ? 2 : 0;
    cut.seed = seed != NULL ? (uint32_t)strtoul(seed, NULL, 10) : 1u;
    nv = (nv_emulated_t){mem, NV_SECTOR_BYTES, NV_SECTORS, NV_UNIT, nv_before, nv_persist};
}

const board_nv_info_t *board_nv_info(void) { return &nv_info; }

int board_nv_erase(uint32_t sector) { return nv_emulated_erase(&nv, sector); }

int board_nv_program(uint32_t offset, const void *data, uint32_t len)
{
    return nv_emulated_program(&nv, offset, data, len);
}

void board_init(int argc, char **argv)
{
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    if (port < 0 || port > 65535) {
        fprintf(stderr, "tinytrain_host: the port must be 0..65535, not %s.\n", argv[1]);
        exit(2);
    }
    nv_init(argc > 2 ? argv[2] : NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);

    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0) {
        die("socket");
    }
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        die("bind");
    }
    if (listen(listen_fd, 1) != 0) {
        die("listen");
    }
    socklen_t len = sizeof addr;
    getsockname(listen_fd, (struct sockaddr *)&addr, &len);
    printf("tinytrain_host: listening on socket://127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);
#ifdef TT_HOST_UART_RING
    struct sigaction tick;
    memset(&tick, 0, sizeof tick);
    tick.sa_handler = on_uart_tick;
    tick.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &tick, NULL);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &every_ms, NULL);
#endif
}

static void drop_client(void)
{
#ifdef TT_HOST_UART_RING
    uart_tick_block(SIG_BLOCK);
    sim_fd = -1;
    sim_ring.tail = sim_ring.head;
#endif
    close(client_fd);
    client_fd = -1;
    inbox_len = inbox_pos = 0;
#ifdef TT_HOST_UART_RING
    uart_tick_block(SIG_UNBLOCK);
#endif
}

#ifdef TT_HOST_UART_RING
int board_getc(void)
{
    if (client_fd < 0) {
        struct pollfd pfd = {listen_fd, POLLIN, 0};
        if (poll(&pfd, 1, 1) > 0) {
            client_fd = accept(listen_fd, NULL, NULL);
            if (client_fd >= 0) {
                int one = 1;
                setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                sim_peer_closed = 0;
                sim_fd = client_fd;
            }
        }
        return -1;
    }
    int c = uart_ring_get(&sim_ring);
    if (c >= 0) {
        return c;
    }
    if (sim_peer_closed) {
        drop_client();
        return -1;
    }
    struct timespec pause = {0, 100000}; /* an idle main loop does not spin a core */
    nanosleep(&pause, NULL);
    return -1;
}
#else
int board_getc(void)
{
    if (inbox_pos < inbox_len) {
        return inbox[inbox_pos++];
    }
    /* Waiting up to 1 ms keeps the idle main loop from spinning a core. */
    struct pollfd pfd = {client_fd >= 0 ? client_fd : listen_fd, POLLIN, 0};
    if (poll(&pfd, 1, 1) <= 0) {
        return -1;
    }
    if (client_fd < 0) {
        client_fd = accept(listen_fd, NULL, NULL);
        if (client_fd >= 0) {
            int one = 1;
            setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        return -1;
    }
    ssize_t n = recv(client_fd, inbox, sizeof inbox, 0);
    if (n <= 0) {
        drop_client();
        return -1;
    }
    inbox_len = (size_t)n;
    inbox_pos = 1;
    return inbox[0];
}
#endif

void board_write(const void *data, size_t len)
{
    const uint8_t *p = data;
    while (client_fd >= 0 && len > 0) {
        ssize_t n = send(client_fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            drop_client(); /* like a UART with nobody listening: the bytes are lost */
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

uint64_t board_counter_read(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const board_info_t *board_info(void) { return &info; }

void board_memory(board_memory_t *out)
{
    /* The process has no painted stack of its own size: report none. */
    out->data_bytes = (uint32_t)(&_edata - &__data_start);
    out->bss_bytes = (uint32_t)(&_end - &__bss_start);
    out->stack_reserved_bytes = 0;
    out->stack_used_bytes = 0;
}
