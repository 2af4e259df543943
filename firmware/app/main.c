#include "app/app.h"
#include "app/engine_messages.h"
#include "boards/board.h"

int main(int argc, char **argv)
{
    board_init(argc, argv);
    app_init();
    engine_messages_init();
    for (;;) {
        app_poll();
    }
}
