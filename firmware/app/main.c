#include "app/app.h"
#include "boards/board.h"

int main(int argc, char **argv)
{
    board_init(argc, argv);
    app_init();
    for (;;) {
        app_poll();
    }
}
