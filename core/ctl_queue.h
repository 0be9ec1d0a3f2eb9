/* petrelctl queue: lists and changes the processing module's queue files
 * directly (modules/processing/envelope.h describes them). Entries are
 * locked the way the daemon's queue runner locks them, so the commands
 * work the same with petreld running or not. */
#ifndef PETREL_CORE_CTL_QUEUE_H
#define PETREL_CORE_CTL_QUEUE_H

/* argv[0] is the command group. -1 when it is not "queue"; otherwise the
 * exit status: 0 done, 1 failed (printed), 2 usage error. */
int ctl_queue_main(const char *conf, int argc, char **argv);

#endif
