/* Exit statuses shared by the start-up code, the harness and the Python runner. */
#ifndef WL_BOARD_H
#define WL_BOARD_H

#define WL_EXIT_OK 0
#define WL_EXIT_IO 2        /* an input or output file could not be read or written */
#define WL_EXIT_MODEL 3     /* the model's run function returned an error */
#define WL_EXIT_FAULT 127   /* a HardFault or another fault exception */

#endif
