#ifndef PETREL_CORE_CTL_ACCOUNTS_H
#define PETREL_CORE_CTL_ACCOUNTS_H

/* petrelctl domain|account|alias|forward ...: argv[0] is the group. The
 * exit status, or -1 if argv[0] is not one of these commands. */
int ctl_accounts_main(const char *conf, int argc, char **argv);

#endif
